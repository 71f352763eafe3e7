//! The argument string and its tokenizer: `strndup_user` (mm/util.c) makes `mod->args`,
//! `next_arg` (lib/cmdline.c) splits it in place, `parameq`/`parameqn` (kernel/params.c) match
//! names. Identical in 6.1 and 6.12.
//!
//! The kernel edits the string in place (NULs over separators and quotes), and later code
//! prints from it, so [`ArgBuf`] keeps the bytes and positions play the role of `char *`.

use super::ctype::isspace;
use crate::errno::Errno;

/// `KMALLOC_MAX_SIZE` on both kernels' x86_64 and arm64 (4 KiB pages): `1 << 22`. A copy of
/// the argument string larger than this fails with `ENOMEM` in `memdup_user`.
pub const KMALLOC_MAX_SIZE: usize = 1 << 22;

/// `mod->args`: a mutable, always NUL-terminated byte string (`strndup_user`'s copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgBuf {
    bytes: Vec<u8>,
}

impl ArgBuf {
    /// A copy of `s` up to its first NUL, NUL-terminated (what `strndup_user` copies).
    pub fn new(s: &[u8]) -> Self {
        let body = super::kstrtox::cstr(s);
        let mut bytes = Vec::with_capacity(body.len() + 1);
        bytes.extend_from_slice(body);
        bytes.push(0);
        ArgBuf { bytes }
    }

    /// `strndup_user(uargs, ~0UL >> 1)` (mm/util.c) as `load_module` calls it: `None` is an
    /// unreadable pointer (`EFAULT`); a copy longer than [`KMALLOC_MAX_SIZE`] is `ENOMEM`.
    pub fn strndup_user(user: Option<&[u8]>) -> Result<Self, Errno> {
        let s = user.ok_or(Errno::EFAULT)?;
        let len = super::kstrtox::cstr(s).len() + 1;
        if len > KMALLOC_MAX_SIZE {
            return Err(Errno::ENOMEM);
        }
        Ok(ArgBuf::new(s))
    }

    /// Every byte, the final NUL included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Byte at `pos` (0 past the end, like the terminating NUL).
    pub fn at(&self, pos: usize) -> u8 {
        self.bytes.get(pos).copied().unwrap_or(0)
    }

    /// Overwrite byte `pos` (no effect past the end).
    pub fn set(&mut self, pos: usize, b: u8) {
        if let Some(x) = self.bytes.get_mut(pos) {
            *x = b;
        }
    }

    /// The C string starting at `pos` (up to the next NUL).
    pub fn cstr(&self, pos: usize) -> &[u8] {
        super::kstrtox::cstr(self.bytes.get(pos..).unwrap_or(&[]))
    }

    /// The C string starting at `pos` with its terminating NUL and everything after it, for
    /// a `set` function that may edit it in place.
    pub fn tail_mut(&mut self, pos: usize) -> &mut [u8] {
        let len = self.bytes.len();
        self.bytes.get_mut(pos.min(len)..).unwrap_or_default()
    }
}

/// `skip_spaces` (lib/string_helpers.c): the first position at or after `pos` that is not
/// [`isspace`].
pub fn skip_spaces(buf: &ArgBuf, pos: usize) -> usize {
    let mut p = pos;
    while isspace(buf.at(p)) {
        p += 1;
    }
    p
}

/// One token found by [`next_arg`]: where `param` and `val` point in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// `param`: start of the name.
    pub param: usize,
    /// `val`: start of the value, `None` for NULL (no `=`).
    pub val: Option<usize>,
}

/// `next_arg` (lib/cmdline.c): splits the token at `pos` in place; returns it and the start of
/// the next token (after trailing spaces).
pub fn next_arg(buf: &mut ArgBuf, pos: usize) -> (Arg, usize) {
    let mut args = pos;
    let mut equals = 0usize;
    let mut in_quote = false;
    let mut quoted = false;
    if buf.at(args) == b'"' {
        args += 1;
        in_quote = true;
        quoted = true;
    }
    let mut i = 0usize;
    loop {
        let c = buf.at(args + i);
        if c == 0 {
            break;
        }
        if isspace(c) && !in_quote {
            break;
        }
        if equals == 0 && c == b'=' {
            equals = i;
        }
        if c == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let param = args;
    let val = if equals == 0 {
        None
    } else {
        buf.set(args + equals, 0);
        let mut v = args + equals + 1;
        // Don't include quotes in value.
        if buf.at(v) == b'"' {
            v += 1;
            if i > 0 && buf.at(args + i - 1) == b'"' {
                buf.set(args + i - 1, 0);
            }
        }
        Some(v)
    };
    if quoted && i > 0 && buf.at(args + i - 1) == b'"' {
        buf.set(args + i - 1, 0);
    }
    let next = if buf.at(args + i) != 0 {
        buf.set(args + i, 0);
        args + i + 1
    } else {
        args + i
    };
    (Arg { param, val }, skip_spaces(buf, next))
}

/// `dash2underscore` (kernel/params.c).
fn dash2underscore(c: u8) -> u8 {
    if c == b'-' { b'_' } else { c }
}

/// `parameqn` (kernel/params.c): the first `n` bytes of two C strings are equal with `-` and
/// `_` the same (bytes past a string's end compare as NUL).
pub fn parameqn(a: &[u8], b: &[u8], n: usize) -> bool {
    let a = super::kstrtox::cstr(a);
    let b = super::kstrtox::cstr(b);
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        if dash2underscore(x) != dash2underscore(y) {
            return false;
        }
        if x == 0 && y == 0 {
            // Both ended: every later byte the kernel would compare lies beyond the strings
            // (it only reads them because n said so); for parameq this is the NUL itself.
            return true;
        }
    }
    true
}

/// `parameq` (kernel/params.c): [`parameqn`] over `strlen(a) + 1` bytes, i.e. whole names.
pub fn parameq(a: &[u8], b: &[u8]) -> bool {
    parameqn(a, b, super::kstrtox::cstr(a).len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Token = (Vec<u8>, Option<Vec<u8>>);

    /// Tokenize the whole string: (name, value) pairs as C strings, and the rest after `--`.
    fn tokens(s: &[u8]) -> (Vec<Token>, Option<Vec<u8>>) {
        let mut b = ArgBuf::new(s);
        let mut pos = skip_spaces(&b, 0);
        let mut out = Vec::new();
        while b.at(pos) != 0 {
            let (a, next) = next_arg(&mut b, pos);
            pos = next;
            if a.val.is_none() && b.cstr(a.param) == b"--" {
                return (out, Some(b.cstr(pos).to_vec()));
            }
            out.push((b.cstr(a.param).to_vec(), a.val.map(|v| b.cstr(v).to_vec())));
        }
        (out, None)
    }

    fn t(name: &str, val: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
        (name.as_bytes().to_vec(), val.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn quoting_and_splitting() {
        assert_eq!(tokens(b"a=1 b").0, vec![t("a", Some("1")), t("b", None)]);
        assert_eq!(
            tokens(b"c=\"hello world\"").0,
            vec![t("c", Some("hello world"))]
        );
        assert_eq!(
            tokens(b"\"c=hello world\"").0,
            vec![t("c", Some("hello world"))]
        );
        assert_eq!(tokens(b"c=a\"b c\"d").0, vec![t("c", Some("a\"b c\"d"))]);
        assert_eq!(tokens(b"c=\"a\"b").0, vec![t("c", Some("a\"b"))]);
        assert_eq!(tokens(b"\"c\"=x").0, vec![t("c\"", Some("x"))]);
        assert_eq!(
            tokens(b"c='x y'").0,
            vec![t("c", Some("'x")), t("y'", None)]
        );
        assert_eq!(tokens(b"i=5\" u=2").0, vec![t("i", Some("5\" u=2"))]);
        assert_eq!(tokens(b"c=\"\"").0, vec![t("c", Some(""))]);
        assert_eq!(tokens(b"c=\"").0, vec![t("c", Some(""))]);
        assert_eq!(
            tokens(b"c=\"unterminated").0,
            vec![t("c", Some("unterminated"))]
        );
        assert_eq!(tokens(b"=5").0, vec![t("=5", None)]);
        assert_eq!(tokens(b"a==5").0, vec![t("a", Some("=5"))]);
        assert_eq!(tokens(b"\"\"").0, vec![t("", None)]);
        assert_eq!(tokens(b"\"").0, vec![t("", None)]);
        assert_eq!(
            tokens(b"\"a=\"b c\"\"").0,
            vec![t("a", Some("b")), t("c\"\"", None)]
        );
        assert_eq!(
            tokens(b"i=1\xa0u=2").0,
            vec![t("i", Some("1")), t("u", Some("2"))]
        );
        assert_eq!(
            tokens(b"\t i=1\x0c\x0bu=2\r\n").0,
            vec![t("i", Some("1")), t("u", Some("2"))]
        );
        assert_eq!(tokens(b"").0, vec![]);
        assert_eq!(tokens(b"   ").0, vec![]);
    }

    #[test]
    fn dashes_end_parsing() {
        assert_eq!(
            tokens(b"a=1 -- b=2 c"),
            (vec![t("a", Some("1"))], Some(b"b=2 c".to_vec()))
        );
        assert_eq!(
            tokens(b"a=1 --"),
            (vec![t("a", Some("1"))], Some(Vec::new()))
        );
        assert_eq!(tokens(b"\"--\" b").1, Some(b"b".to_vec()));
        assert_eq!(tokens(b"--=1").0, vec![t("--", Some("1"))]);
    }

    #[test]
    fn names_match_with_dashes_as_underscores() {
        assert!(parameq(b"p-int", b"p_int"));
        assert!(parameq(b"p_int", b"p-int"));
        assert!(parameq(b"--", b"__"));
        assert!(!parameq(b"p_int", b"p_in"));
        assert!(!parameq(b"p_in", b"p_int"));
        assert!(!parameq(b"P_INT", b"p_int"));
        assert!(parameq(b"", b""));
        assert!(parameqn(b"abc", b"abd", 2));
    }

    #[test]
    fn strndup_user_limits() {
        assert_eq!(ArgBuf::strndup_user(None), Err(Errno::EFAULT));
        assert_eq!(
            ArgBuf::strndup_user(Some(b"a\0b")).map(|b| b.cstr(0).to_vec()),
            Ok(b"a".to_vec())
        );
        let big = vec![b'x'; KMALLOC_MAX_SIZE];
        assert_eq!(ArgBuf::strndup_user(Some(&big)), Err(Errno::ENOMEM));
        assert!(ArgBuf::strndup_user(Some(&big[1..])).is_ok());
    }
}
