//! Module parameter strings: `name=value` words joined by spaces, quoted so that the kernel's
//! tokenizer reads back exactly the names and values given.
//!
//! The kernel splits the string `init_module`/`finit_module` receive with `next_arg()`
//! (lib/cmdline.c, the same in 6.1 and 6.12): a word ends at white space (`isspace()`, which
//! includes byte 0xA0) outside double quotes; every `"` toggles "inside quotes" and stays in the
//! value, except that a value starting with `"` loses that quote, and then also the word's last
//! byte if that is a `"`. There is no escape character. Call a white space byte of a value `v`
//! *even* or *odd* by the number of `"` before it in `v`. Three spellings of `name=v` exist:
//!
//! - as it is, `name=v`: when `v` does not start with `"`, has an even number of `"` and only
//!   odd white space (or none): `a=1`, `a=x"y z"w`;
//! - wrapped, `name="v"`: when `v` has an even number of `"` and only even white space:
//!   `a="x y"`, `a=""x""` for the value `"x"`;
//! - with a leading quote only, `name="v`: when `v` has an odd number of `"`, only even white
//!   space and does not end with `"`: `a="x"y` for the value `x"y`.
//!
//! [`quote`] picks the first that applies (as it is when possible). Nothing else reads back
//! right (a test tries every spelling of short values), so these are refused with a
//! [`ParamError`]:
//! - white space both even and odd (`a b"c d"`);
//! - only odd white space in a value that starts with `"` or has an odd number of `"`
//!   (`"a b"` with its quotes);
//! - an odd number of `"` with the last byte a `"` (`a"`);
//! - a name that is empty or holds `=`, `"` or white space;
//! - a NUL byte anywhere (the string ends there).
//!
//! `parse_args()` also stops at a bare `--` (no value): what follows is ignored by the module
//! loader. Such a word is passed as given.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use sim::params::ctype::isspace;

/// Why a parameter cannot be put into a parameter string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamProblem {
    /// The name is empty (the kernel would not see a name before `=`).
    EmptyName,
    /// The name holds `=` (the kernel splits at the first one).
    NameHasEquals,
    /// The name holds white space (it would end the word).
    NameHasSpace,
    /// The name holds `"` (it would change the quoting of the whole word).
    NameHasQuote,
    /// A NUL byte: the C string ends there.
    Nul,
    /// The value has white space both after an even and after an odd number of `"`.
    MixedSpaces,
    /// The value's white space all has an odd number of `"` before it, which only the
    /// unquoted spelling keeps inside quotes, and the value starts with `"` (which the kernel
    /// would drop) or has an odd number of them (which would run into the next parameters).
    SpacesInQuotes,
    /// The value has an odd number of `"` and ends with one, which the kernel would drop.
    TrailingQuote,
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamProblem::EmptyName => "a parameter needs a name before `=`",
            ParamProblem::NameHasEquals => "a parameter name cannot contain `=`",
            ParamProblem::NameHasSpace => "a parameter name cannot contain white space",
            ParamProblem::NameHasQuote => "a parameter name cannot contain `\"`",
            ParamProblem::Nul => "a NUL byte cannot be passed (the string ends there)",
            ParamProblem::MixedSpaces => {
                "this value cannot be passed: the kernel's quoting has no escape, and its white \
                 space lies both inside and outside pairs of `\"`"
            }
            ParamProblem::SpacesInQuotes => {
                "this value cannot be passed: its white space lies inside pairs of `\"`, so it \
                 would have to go unquoted, and unquoted the kernel would drop its leading `\"` or \
                 read the following parameters into it"
            }
            ParamProblem::TrailingQuote => {
                "this value cannot be passed: it has an odd number of `\"` and ends with one, \
                 which the kernel would drop"
            }
        })
    }
}

/// A parameter that cannot be expressed in a parameter string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parameter '{}': {problem}", String::from_utf8_lossy(word))]
pub struct ParamError {
    /// The parameter as given (`name=value`, or the name alone).
    pub word: Vec<u8>,
    /// What is wrong with it.
    pub problem: ParamProblem,
}

fn problem(name: &[u8], value: Option<&[u8]>, problem: ParamProblem) -> ParamError {
    let mut word = name.to_vec();
    if let Some(v) = value {
        word.push(b'=');
        word.extend_from_slice(v);
    }
    ParamError { word, problem }
}

/// Checks a parameter name: not empty, no `=`, `"`, white space or NUL.
fn check_name(name: &[u8], value: Option<&[u8]>) -> Result<(), ParamError> {
    let bad = if name.is_empty() {
        Some(ParamProblem::EmptyName)
    } else if name.contains(&0) {
        Some(ParamProblem::Nul)
    } else if name.contains(&b'=') {
        Some(ParamProblem::NameHasEquals)
    } else if name.contains(&b'"') {
        Some(ParamProblem::NameHasQuote)
    } else if name.iter().any(|&b| isspace(b)) {
        Some(ParamProblem::NameHasSpace)
    } else {
        None
    };
    match bad {
        Some(p) => Err(problem(name, value, p)),
        None => Ok(()),
    }
}

/// One parameter as the kernel's `next_arg()` reads it back: `name`, or `name=value` quoted as
/// the module documentation explains. The result holds no NUL byte.
///
/// Fails with a [`ParamError`] for what cannot be expressed (see the module documentation).
pub fn quote(name: &[u8], value: Option<&[u8]>) -> Result<Vec<u8>, ParamError> {
    check_name(name, value)?;
    let Some(v) = value else {
        return Ok(name.to_vec());
    };
    if v.contains(&0) {
        return Err(problem(name, value, ParamProblem::Nul));
    }
    // For each white space byte: is the number of quotes before it even?
    let mut quotes = 0usize;
    let (mut space_even, mut space_odd) = (false, false);
    for &b in v {
        if b == b'"' {
            quotes += 1;
        } else if isspace(b) {
            if quotes.is_multiple_of(2) {
                space_even = true;
            } else {
                space_odd = true;
            }
        }
    }
    let first = v.first() == Some(&b'"');
    let last = v.last() == Some(&b'"');
    let even = quotes.is_multiple_of(2);
    // (leading quote, trailing quote) to add.
    let (open, close) = match (space_even, space_odd) {
        (true, true) => return Err(problem(name, value, ParamProblem::MixedSpaces)),
        (false, true) if first || !even => {
            return Err(problem(name, value, ParamProblem::SpacesInQuotes));
        }
        (false, true) => (false, false),
        _ if !even && last => return Err(problem(name, value, ParamProblem::TrailingQuote)),
        _ if !even => (true, false),
        (false, false) if !first => (false, false),
        _ => (true, true),
    };
    let mut out = Vec::with_capacity(name.len() + v.len() + 3);
    out.extend_from_slice(name);
    out.push(b'=');
    if open {
        out.push(b'"');
    }
    out.extend_from_slice(v);
    if close {
        out.push(b'"');
    }
    Ok(out)
}

/// A parameter string from `(name, value)` pairs (`None`: the name alone, which sets a `bool`
/// parameter), each quoted by [`quote`], separated by single spaces.
///
/// Fails with the [`ParamError`] of the first pair that cannot be expressed.
pub fn build<'a, I>(params: I) -> Result<CString, ParamError>
where
    I: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    let mut out = Vec::new();
    for (name, value) in params {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend(quote(name, value)?);
    }
    // `quote` never lets a NUL through.
    CString::new(out).map_err(|e| ParamError {
        word: e.into_vec(),
        problem: ParamProblem::Nul,
    })
}

/// [`build`] for text pairs `(name, value)`.
///
/// Fails like [`build`].
pub fn build_str<'a, I>(params: I) -> Result<CString, ParamError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    build(
        params
            .into_iter()
            .map(|(n, v)| (n.as_bytes(), Some(v.as_bytes()))),
    )
}

/// The parameter string for insmod's command line words (`name=value` or `name`), as kmod's
/// `options_from_array()` builds it: a value already starting with `"` is passed as it is
/// (the caller quoted it for the kernel); any other word is split at its first `=` and quoted
/// by [`quote`] (kmod only wraps values holding a space in quotes, and passes the rest
/// unchecked). No words give the empty string.
///
/// Fails with the [`ParamError`] of the first word that cannot be expressed.
pub fn from_args<S: AsRef<OsStr>>(args: &[S]) -> Result<CString, ParamError> {
    let mut out = Vec::new();
    for arg in args {
        let word = arg.as_ref().as_bytes();
        if !out.is_empty() {
            out.push(b' ');
        }
        match word.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (name, rest) = word.split_at(eq);
                let value = rest.get(1..).unwrap_or_default();
                if value.first() == Some(&b'"') {
                    check_name(name, Some(value))?;
                    if value.contains(&0) {
                        return Err(problem(name, Some(value), ParamProblem::Nul));
                    }
                    out.extend_from_slice(word);
                } else {
                    out.extend(quote(name, Some(value))?);
                }
            }
            None => out.extend(quote(word, None)?),
        }
    }
    CString::new(out).map_err(|e| ParamError {
        word: e.into_vec(),
        problem: ParamProblem::Nul,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use sim::params::cmdline::{ArgBuf, next_arg, skip_spaces};

    /// What the kernel's `parse_args()` loop hands to `parse_one()`: `(param, val)` pairs.
    fn kernel_reads(s: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut buf = ArgBuf::new(s);
        let mut pos = skip_spaces(&buf, 0);
        let mut words = Vec::new();
        while buf.at(pos) != 0 {
            let (arg, next) = next_arg(&mut buf, pos);
            pos = next;
            words.push(arg);
        }
        words
            .into_iter()
            .map(|a| {
                (
                    buf.cstr(a.param).to_vec(),
                    a.val.map(|v| buf.cstr(v).to_vec()),
                )
            })
            .collect()
    }

    fn round_trip(name: &[u8], value: Option<&[u8]>) -> bool {
        let Ok(q) = quote(name, value) else {
            return false;
        };
        // Between two other parameters: nothing may leak into or out of it.
        let s = [b"x=1 ".as_slice(), &q, b" y=2"].concat();
        kernel_reads(&s)
            == vec![
                (b"x".to_vec(), Some(b"1".to_vec())),
                (name.to_vec(), value.map(<[u8]>::to_vec)),
                (b"y".to_vec(), Some(b"2".to_vec())),
            ]
    }

    #[test]
    fn plain_and_spaced_values() {
        assert_eq!(quote(b"a", Some(b"1")).unwrap(), b"a=1");
        assert_eq!(quote(b"a", Some(b"")).unwrap(), b"a=");
        assert_eq!(quote(b"a", None).unwrap(), b"a");
        assert_eq!(
            quote(b"s", Some(b"hello world")).unwrap(),
            b"s=\"hello world\""
        );
        assert_eq!(quote(b"s", Some(b"tab\there")).unwrap(), b"s=\"tab\there\"");
        // 0xA0 is white space to the kernel (its ctype table is Latin-1).
        assert_eq!(
            quote(b"s", Some("à".as_bytes())).unwrap(),
            b"s=\"\xc3\xa0\""
        );
        assert_eq!(quote(b"s", Some(b"\"x\"")).unwrap(), b"s=\"\"x\"\"");
        assert_eq!(quote(b"s", Some(b"a\"b c\"d")).unwrap(), b"s=a\"b c\"d");
        assert_eq!(quote(b"s", Some(b"a\"b")).unwrap(), b"s=\"a\"b");
        assert_eq!(quote(b"s", Some(b"\"a")).unwrap(), b"s=\"\"a");
        for (n, v) in [
            (b"a".as_slice(), b"1".as_slice()),
            (b"s", b"hello world"),
            (b"s", b"  lead and trail  "),
            (b"s", "à la".as_bytes()),
            (b"s", b"\"x\""),
            (b"s", b"a\"b c\"d"),
            (b"s", b"\"\""),
            (b"s", b"say \"\""),
            (b"s", b"a\"b"),
            (b"s", b"\"a"),
            (b"s", b"it's \"odd"),
        ] {
            assert!(round_trip(n, Some(v)), "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn what_cannot_be_expressed_is_refused() {
        let e = quote(b"s", Some(b"a\"")).unwrap_err();
        assert_eq!(e.problem, ParamProblem::TrailingQuote);
        assert!(e.to_string().starts_with("parameter 's=a\"': "), "{e}");
        assert_eq!(
            quote(b"s", Some(b"a b\"c d\"")).unwrap_err().problem,
            ParamProblem::MixedSpaces
        );
        assert_eq!(
            quote(b"s", Some(b"\"a b\"")).unwrap_err().problem,
            ParamProblem::SpacesInQuotes
        );
        assert_eq!(
            quote(b"s", Some(b"x\"a b")).unwrap_err().problem,
            ParamProblem::SpacesInQuotes
        );
        assert_eq!(
            quote(b"", Some(b"1")).unwrap_err().problem,
            ParamProblem::EmptyName
        );
        assert_eq!(
            quote(b"a=b", None).unwrap_err().problem,
            ParamProblem::NameHasEquals
        );
        assert_eq!(
            quote(b"a b", None).unwrap_err().problem,
            ParamProblem::NameHasSpace
        );
        assert_eq!(
            quote(b"a\"", None).unwrap_err().problem,
            ParamProblem::NameHasQuote
        );
        assert_eq!(
            quote(b"a", Some(b"x\0y")).unwrap_err().problem,
            ParamProblem::Nul
        );
    }

    /// Over a small alphabet, every value either round-trips or has no spelling at all that
    /// would: the refusals are exactly the inexpressible values.
    #[test]
    fn refused_exactly_when_no_spelling_exists() {
        let alphabet = [b'a', b' ', b'"'];
        let words = |len: usize| -> Vec<Vec<u8>> {
            let mut all = vec![Vec::new()];
            for _ in 0..len {
                all = all
                    .into_iter()
                    .flat_map(|w| {
                        alphabet.iter().map(move |&c| {
                            let mut w = w.clone();
                            w.push(c);
                            w
                        })
                    })
                    .collect();
            }
            all
        };
        let spellings: Vec<Vec<u8>> = (0..=6).flat_map(words).collect();
        for len in 0..=4 {
            for v in words(len) {
                let ok = round_trip(b"p", Some(&v));
                let any = spellings.iter().any(|sp| {
                    let s = [b"x=1 p=".as_slice(), sp, b" y=2"].concat();
                    kernel_reads(&s)
                        == vec![
                            (b"x".to_vec(), Some(b"1".to_vec())),
                            (b"p".to_vec(), Some(v.clone())),
                            (b"y".to_vec(), Some(b"2".to_vec())),
                        ]
                });
                assert_eq!(ok, any, "value {:?}", String::from_utf8_lossy(&v));
                if !ok {
                    assert!(quote(b"p", Some(&v)).is_err());
                }
            }
        }
    }

    #[test]
    fn build_joins_with_spaces() {
        let s = build_str([("a", "1"), ("s", "x y")]).unwrap();
        assert_eq!(s.as_bytes(), b"a=1 s=\"x y\"");
        let s = build([
            (b"flag".as_slice(), None),
            (b"n".as_slice(), Some(b"2".as_slice())),
        ])
        .unwrap();
        assert_eq!(s.as_bytes(), b"flag n=2");
        assert_eq!(build_str([]).unwrap().as_bytes(), b"");
        assert!(build_str([("a", "1"), ("b", "\"")]).is_err());
    }

    #[test]
    fn insmod_words_like_kmod() {
        let s = from_args(&["a=1", "s=hello world", "b", "q=\"x y\"", "--"]).unwrap();
        assert_eq!(s.as_bytes(), b"a=1 s=\"hello world\" b q=\"x y\" --");
        assert_eq!(from_args::<&str>(&[]).unwrap().as_bytes(), b"");
        let e = from_args(&["a b"]).unwrap_err();
        assert_eq!(e.problem, ParamProblem::NameHasSpace);
        let e = from_args(&["=1"]).unwrap_err();
        assert_eq!(e.problem, ParamProblem::EmptyName);
        // kmod would wrap this in quotes and break the rest of the line.
        let s = from_args(&["s=it's \"odd", "b=1"]).unwrap();
        assert_eq!(s.as_bytes(), b"s=\"it's \"odd b=1");
        let e = from_args(&["s=odd\""]).unwrap_err();
        assert_eq!(e.problem, ParamProblem::TrailingQuote);
    }
}
