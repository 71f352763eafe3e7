//! The `dyndbg` module parameter (lib/dynamic_debug.c with CONFIG_DYNAMIC_DEBUG_CORE, or the
//! stub in include/linux/dynamic_debug.h without it).
//!
//! Only what is visible is modelled: the in-place truncation of the parameter name at its
//! first `.`, the return value, and the `pr_err` lines of the query parser
//! (`ddebug_exec_queries`). Which call sites a valid query changes is not modelled (nothing is
//! printed for it unless `dynamic_debug.verbose` is set, which it is not by default).

use super::cmdline::{ArgBuf, skip_spaces};
use super::ctype::{isalpha, isspace};
use super::kstrtox::{cstr, kstrtouint};
use super::{ParamEnv, decode_bytes};
use crate::errno::Errno;
use crate::log::KernelLog;
use crate::profile::KernelVersion;

/// `pr_fmt` of lib/dynamic_debug.c.
const PR_FMT: &str = "dyndbg: ";

/// `MAXWORDS` of `ddebug_exec_query`.
const MAXWORDS: usize = 9;

/// `ddebug_dyndbg_module_param_cb` (lib/dynamic_debug.c, or its
/// `!CONFIG_DYNAMIC_DEBUG_CORE` stub in include/linux/dynamic_debug.h): 0 when the parameter
/// is `dyndbg` or `<mod>.dyndbg` (the query is run), else `-ENOENT` (stub: `-EINVAL`).
/// With DYNAMIC_DEBUG_CORE a `.` in the name is overwritten with NUL in `buf`.
pub fn ddebug_dyndbg_module_param_cb(
    buf: &mut ArgBuf,
    param: usize,
    val: Option<usize>,
    modname: &[u8],
    env: &ParamEnv,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    if !env.dynamic_debug_core {
        if buf.cstr(param) == b"dyndbg" {
            log.warn("dyndbg param is supported only in CONFIG_DYNAMIC_DEBUG builds");
            return Ok(());
        }
        return Err(Errno::EINVAL);
    }
    // ddebug_dyndbg_param_cb(param, val, modname, -ENOENT)
    let mut modname = modname.to_vec();
    let mut name_pos = param;
    if let Some(dot) = buf.cstr(param).iter().position(|&b| b == b'.') {
        buf.set(param + dot, 0);
        modname = buf.cstr(param).to_vec();
        name_pos = param + dot + 1;
    }
    if buf.cstr(name_pos) != b"dyndbg" {
        return Err(Errno::ENOENT);
    }
    let query = match val {
        Some(v) => buf.cstr(v).to_vec(),
        None => b"+p".to_vec(),
    };
    // The query's result is ignored: "query failure shouldn't stop module load".
    let _ = ddebug_exec_queries(&query, Some(&modname), env.version, log);
    Ok(())
}

fn pr_err(log: &mut KernelLog, msg: &[u8]) {
    let mut s = PR_FMT.as_bytes().to_vec();
    s.extend_from_slice(msg);
    log.err(decode_bytes(&s));
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `ddebug_exec_queries` (lib/dynamic_debug.c): queries separated by `;` or `\n`, each run
/// with [`ddebug_exec_query`]; errors are printed and do not stop the others. Returns the last
/// error, if any.
pub fn ddebug_exec_queries(
    query: &[u8],
    modname: Option<&[u8]>,
    version: KernelVersion,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let mut exitcode = Ok(());
    for q in cstr(query).split(|&b| b == b';' || b == b'\n') {
        let mut b = ArgBuf::new(q);
        let start = skip_spaces(&b, 0);
        if b.at(start) == 0 || b.at(start) == b'#' {
            continue;
        }
        if let Err(e) = ddebug_exec_query(&mut b, start, modname, version, log) {
            exitcode = Err(e);
        }
    }
    exitcode
}

/// The parsed match-spec of a query (`struct ddebug_query`), as far as messages need it.
#[derive(Default)]
struct Query {
    function: Option<Vec<u8>>,
    filename: Option<Vec<u8>>,
    module: Option<Vec<u8>>,
    format: Option<Vec<u8>>,
    class_string: Option<Vec<u8>>,
    first_lineno: u32,
    last_lineno: u32,
}

/// `ddebug_exec_query` (lib/dynamic_debug.c): tokenize, parse the flags (last word), parse the
/// match-spec pairs.
fn ddebug_exec_query(
    buf: &mut ArgBuf,
    start: usize,
    modname: Option<&[u8]>,
    version: KernelVersion,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let words = match ddebug_tokenize(buf, start, log) {
        Ok(w) if !w.is_empty() => w,
        _ => {
            pr_err(log, b"tokenize failed");
            return Err(Errno::EINVAL);
        }
    };
    let Some((flags, pairs)) = words.split_last() else {
        return Err(Errno::EINVAL);
    };
    if ddebug_parse_flags(flags, version, log).is_err() {
        pr_err(log, b"flags parse failed");
        return Err(Errno::EINVAL);
    }
    let mut query = Query::default();
    if ddebug_parse_query(pairs, &mut query, modname, log).is_err() {
        pr_err(log, b"query parse failed");
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `ddebug_tokenize` (lib/dynamic_debug.c): words separated by spaces, `"` or `'` quoted
/// (no escapes), `#` starts a comment; at most [`MAXWORDS`].
fn ddebug_tokenize(
    buf: &mut ArgBuf,
    start: usize,
    log: &mut KernelLog,
) -> Result<Vec<Vec<u8>>, Errno> {
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut p = start;
    while buf.at(p) != 0 {
        p = skip_spaces(buf, p);
        if buf.at(p) == 0 || buf.at(p) == b'#' {
            break;
        }
        let (wstart, mut end);
        let c = buf.at(p);
        if c == b'"' || c == b'\'' {
            wstart = p + 1;
            end = wstart;
            while buf.at(end) != 0 && buf.at(end) != c {
                end += 1;
            }
            if buf.at(end) == 0 {
                pr_err(log, &cat(&[b"unclosed quote: ", buf.cstr(wstart)]));
                return Err(Errno::EINVAL);
            }
        } else {
            wstart = p;
            end = p;
            while buf.at(end) != 0 && !isspace(buf.at(end)) {
                end += 1;
            }
            if end == wstart {
                let last = words.last().map_or(&b"<none>"[..], |w| &w[..]);
                let msg = format!("parse err after word:{}=", words.len()).into_bytes();
                pr_err(log, &cat(&[&msg, last]));
                return Err(Errno::EINVAL);
            }
        }
        if words.len() == MAXWORDS {
            pr_err(
                log,
                format!("too many words, legal max <={MAXWORDS}").as_bytes(),
            );
            return Err(Errno::EINVAL);
        }
        let word = buf
            .as_bytes()
            .get(wstart..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        if buf.at(end) != 0 {
            buf.set(end, 0);
            end += 1;
        }
        words.push(word);
        p = end;
    }
    Ok(words)
}

/// `opt_array` of lib/dynamic_debug.c: 6.12 added `s` (source file name).
fn flag_char_known(c: u8, version: KernelVersion) -> bool {
    match c {
        b'p' | b'm' | b'f' | b'l' | b't' | b'_' => true,
        b's' => version == KernelVersion::V6_12,
        _ => false,
    }
}

/// `ddebug_parse_flags` (lib/dynamic_debug.c): `[-+=]` then known flag characters.
fn ddebug_parse_flags(
    word: &[u8],
    version: KernelVersion,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let first = word.first().copied().unwrap_or(0);
    match first {
        b'+' | b'-' | b'=' => {}
        _ => {
            pr_err(
                log,
                &cat(&[b"bad flag-op ", &[first], b", at start of ", word]),
            );
            return Err(Errno::EINVAL);
        }
    }
    for &c in word.iter().skip(1) {
        if !flag_char_known(c, version) {
            pr_err(log, &cat(&[b"unknown flag '", &[c], b"'"]));
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// `check_set` (lib/dynamic_debug.c): a match-spec keyword given twice is an error.
fn check_set(
    dest: &mut Option<Vec<u8>>,
    src: &[u8],
    name: &str,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let mut rc = Ok(());
    if let Some(old) = dest {
        let msg = format!("match-spec:{name} val:").into_bytes();
        pr_err(log, &cat(&[&msg, old, b" overridden by ", src]));
        rc = Err(Errno::EINVAL);
    }
    *dest = Some(src.to_vec());
    rc
}

/// `parse_lineno` (lib/dynamic_debug.c): "" is 0, else decimal.
fn parse_lineno(s: &[u8], log: &mut KernelLog) -> Result<u32, Errno> {
    if s.is_empty() {
        return Ok(0);
    }
    kstrtouint(s, 10).map_err(|_| {
        pr_err(log, &cat(&[b"bad line-number: ", s]));
        Errno::EINVAL
    })
}

/// `parse_linerange` (lib/dynamic_debug.c): `N`, `N-M`, `N-`, `-M`.
fn parse_linerange(q: &mut Query, first: &[u8], log: &mut KernelLog) -> Result<(), Errno> {
    if q.first_lineno != 0 || q.last_lineno != 0 {
        pr_err(log, b"match-spec: line used 2x");
        return Err(Errno::EINVAL);
    }
    let (first, last) = match first.iter().position(|&b| b == b'-') {
        Some(i) => (
            first.get(..i).unwrap_or(&[]),
            Some(first.get(i + 1..).unwrap_or(&[])),
        ),
        None => (first, None),
    };
    q.first_lineno = parse_lineno(first, log)?;
    match last {
        Some(l) => {
            q.last_lineno = parse_lineno(l, log)?;
            if q.last_lineno == 0 {
                q.last_lineno = u32::MAX;
            }
            if q.last_lineno < q.first_lineno {
                pr_err(
                    log,
                    format!(
                        "last-line:{} < 1st-line:{}",
                        q.last_lineno as i32, q.first_lineno as i32
                    )
                    .as_bytes(),
                );
                return Err(Errno::EINVAL);
            }
        }
        None => q.last_lineno = q.first_lineno,
    }
    Ok(())
}

/// `string_unescape_inplace(s, UNESCAPE_SPACE | UNESCAPE_OCTAL | UNESCAPE_SPECIAL)`
/// (lib/string_helpers.c).
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    while at(i) != 0 {
        if at(i) == b'\\' && at(i + 1) != 0 {
            i += 1;
            let c = at(i);
            let space = match c {
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'v' => Some(0x0b),
                b'f' => Some(0x0c),
                _ => None,
            };
            if let Some(x) = space {
                out.push(x);
                i += 1;
                continue;
            }
            if (b'0'..=b'7').contains(&c) {
                let start = i;
                let mut num: u8 = c & 7;
                i += 1;
                while num < 32 && (b'0'..=b'7').contains(&at(i)) && i - start < 3 {
                    num = (num << 3) + (at(i) & 7);
                    i += 1;
                }
                out.push(num);
                continue;
            }
            let special = match c {
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'a' => Some(0x07),
                b'e' => Some(0x1b),
                _ => None,
            };
            if let Some(x) = special {
                out.push(x);
                i += 1;
                continue;
            }
            out.push(b'\\');
        }
        out.push(at(i));
        i += 1;
    }
    out
}

/// `ddebug_parse_query` (lib/dynamic_debug.c): `keyword value` pairs.
fn ddebug_parse_query(
    words: &[Vec<u8>],
    q: &mut Query,
    modname: Option<&[u8]>,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    if !words.len().is_multiple_of(2) {
        pr_err(log, b"expecting pairs of match-spec <value>");
        return Err(Errno::EINVAL);
    }
    for pair in words.chunks_exact(2) {
        let (keyword, arg) = match pair {
            [k, a] => (k.as_slice(), a.as_slice()),
            _ => continue,
        };
        match keyword {
            b"func" => check_set(&mut q.function, arg, "func", log)?,
            b"file" => {
                check_set(&mut q.filename, arg, "file", log)?;
                let Some(colon) = arg.iter().position(|&b| b == b':') else {
                    continue;
                };
                let file = arg.get(..colon).unwrap_or(&[]).to_vec();
                q.filename = Some(file);
                let fline = arg.get(colon + 1..).unwrap_or(&[]);
                let f0 = fline.first().copied().unwrap_or(0);
                if isalpha(f0) || f0 == b'*' || f0 == b'?' {
                    check_set(&mut q.function, fline, "func", log)?;
                } else {
                    parse_linerange(q, fline, log)?;
                }
            }
            b"module" => check_set(&mut q.module, arg, "module", log)?,
            b"format" => {
                let un = unescape(arg);
                check_set(&mut q.format, &un, "format", log)?;
            }
            b"line" => parse_linerange(q, arg, log)?,
            b"class" => check_set(&mut q.class_string, arg, "class", log)?,
            _ => {
                pr_err(log, &cat(&[b"unknown keyword \"", keyword, b"\""]));
                return Err(Errno::EINVAL);
            }
        }
    }
    if q.module.is_none() {
        q.module = modname.map(<[u8]>::to_vec);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: &str, v: KernelVersion) -> Vec<String> {
        let mut log = KernelLog::new();
        let _ = ddebug_exec_queries(q.as_bytes(), Some(b"m"), v, &mut log);
        log.texts()
    }

    #[test]
    fn valid_queries_print_nothing() {
        for q in [
            "+p",
            "-p",
            "=_",
            "func foo +p",
            "file a.c:10-20 +pmflt",
            "file a.c:foo +p",
            "line 5- +p",
            "module x format \"a b\" +p",
            "; ;#x\n+p",
        ] {
            assert_eq!(run(q, KernelVersion::V6_12), Vec::<String>::new(), "{q}");
        }
    }

    #[test]
    fn errors_print_the_kernel_lines() {
        let v = KernelVersion::V6_12;
        assert_eq!(
            run("p", v),
            [
                "dyndbg: bad flag-op p, at start of p",
                "dyndbg: flags parse failed"
            ]
        );
        assert_eq!(
            run("+x", v),
            ["dyndbg: unknown flag 'x'", "dyndbg: flags parse failed"]
        );
        assert_eq!(
            run("+s", KernelVersion::V6_1),
            ["dyndbg: unknown flag 's'", "dyndbg: flags parse failed"]
        );
        assert!(run("+s", v).is_empty());
        assert_eq!(
            run("func +p", v),
            [
                "dyndbg: expecting pairs of match-spec <value>",
                "dyndbg: query parse failed"
            ]
        );
        assert_eq!(
            run("foo bar +p", v),
            [
                "dyndbg: unknown keyword \"foo\"",
                "dyndbg: query parse failed"
            ]
        );
        assert_eq!(
            run("func a func b +p", v),
            [
                "dyndbg: match-spec:func val:a overridden by b",
                "dyndbg: query parse failed"
            ]
        );
        assert_eq!(
            run("line 9-3 +p", v),
            [
                "dyndbg: last-line:3 < 1st-line:9",
                "dyndbg: query parse failed"
            ]
        );
        assert_eq!(
            run("line x +p", v),
            ["dyndbg: bad line-number: x", "dyndbg: query parse failed"]
        );
        assert_eq!(
            run("line 1 line 2 +p", v),
            [
                "dyndbg: match-spec: line used 2x",
                "dyndbg: query parse failed"
            ]
        );
        assert_eq!(
            run("'abc +p", v),
            ["dyndbg: unclosed quote: abc +p", "dyndbg: tokenize failed"]
        );
        assert_eq!(
            run("a b c d e f g h i +p", v),
            [
                "dyndbg: too many words, legal max <=9",
                "dyndbg: tokenize failed"
            ]
        );
        assert_eq!(
            run("x;+y", v),
            [
                "dyndbg: bad flag-op x, at start of x",
                "dyndbg: flags parse failed",
                "dyndbg: unknown flag 'y'",
                "dyndbg: flags parse failed"
            ]
        );
    }

    #[test]
    fn unescape_handles_the_three_classes() {
        assert_eq!(unescape(b"a\\tb"), b"a\tb");
        assert_eq!(unescape(b"\\101\\1012"), b"AA2");
        assert_eq!(unescape(b"\\\"\\\\\\e"), b"\"\\\x1b");
        assert_eq!(unescape(b"\\x41\\q"), b"\\x41\\q");
        assert_eq!(unescape(b"end\\"), b"end\\");
    }
}
