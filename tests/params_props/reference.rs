//! An independent, deliberately plain model of how Linux 6.1/6.12 load module parameters,
//! written from `/work/shared/reference/params.md` (and checked against kernel/params.c,
//! lib/cmdline.c and lib/kstrtox.c where a property test disagreed). It shares no code with
//! `sim`: values are ordinary Rust values (no simulated memory), the argument string is
//! tokenised into slices (no in-place NUL writes), and the integer parser is written out
//! from the rules in the notes.
//!
//! What it covers: the 14 scalar standard types, `module_param_string`, arrays of scalars
//! (with or without a count variable), the unknown-parameter callback (`async_probe`,
//! `dyndbg` names, the warning), `--`, every error line of parse_args and the set functions.
//! What it does not: custom ops, lockdown/unsafe flags, sysfs page truncation (outputs are
//! far below a page for the tables used), and the text of dynamic-debug query errors (when
//! a `dyndbg` query runs, [`Loaded::log`] is `None`).

use std::collections::BTreeMap;

/// `EINVAL`.
pub const EINVAL: i32 = 22;
/// `ERANGE`.
pub const ERANGE: i32 = 34;
/// `ENOSPC`.
pub const ENOSPC: i32 = 28;
/// `EROFS`.
pub const EROFS: i32 = 30;

/// A parameter type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `byte`: u8.
    Byte,
    /// `short`: i16.
    Short,
    /// `ushort`: u16.
    Ushort,
    /// `int`: i32.
    Int,
    /// `uint`: u32.
    Uint,
    /// `long`: i64.
    Long,
    /// `ulong`: u64.
    Ulong,
    /// `ullong`: u64.
    Ullong,
    /// `hexint`: u32 shown in hex.
    Hexint,
    /// `charp`: a pointer to a string (NULL possible).
    Charp,
    /// `bool`.
    Bool,
    /// `bool_enable_only`.
    BoolEnableOnly,
    /// `invbool`: stores the negation.
    Invbool,
    /// `bint`: an int set like a bool.
    Bint,
    /// `module_param_string`: a buffer of `maxlen` bytes, NUL included.
    Str {
        /// The buffer size.
        maxlen: usize,
    },
    /// `module_param_array`.
    Array {
        /// The element kind (a scalar).
        elem: Box<Kind>,
        /// The number of elements.
        max: usize,
        /// Whether there is a count variable.
        counted: bool,
    },
}

/// What a parameter holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// A number (every integer type, and `bint`).
    Num(i128),
    /// A bool as stored (for `invbool`: the stored negation).
    Flag(bool),
    /// A string (`charp`: `None` is NULL; `string`: the C string in the buffer).
    Text(Option<Vec<u8>>),
    /// Array elements (always `max` of them) and the count variable.
    Arr {
        /// The elements.
        items: Vec<Cell>,
        /// The count (shown only when the array is counted).
        count: usize,
    },
}

/// One parameter of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The name.
    pub name: Vec<u8>,
    /// The type.
    pub kind: Kind,
    /// The initial contents.
    pub init: Cell,
}

/// What loading gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// `None`: the parameter step succeeded; else the errno.
    pub errno: Option<i32>,
    /// Every parameter's sysfs text afterwards (also after a failure: the values as left in
    /// memory), by name.
    pub values: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The log messages (level, text) in order; `None` if a dynamic-debug query ran (its
    /// messages are not modelled).
    pub log: Option<Vec<(u8, Vec<u8>)>>,
    /// `async_probe_requested`.
    pub async_probe: bool,
}

const ERR: u8 = 3;
const WARN: u8 = 4;

/// The kernel's `isspace` (lib/ctype.c is Latin-1: 0xA0 is a space).
pub fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0xa0)
}

/// One token of the argument string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The name as the parser sees it.
    pub name: Vec<u8>,
    /// The value (`None`: no `=`).
    pub value: Option<Vec<u8>>,
    /// Where the name lies in the original string (start, end).
    pub name_span: (usize, usize),
}

/// Tokens of `args` (already cut at its first NUL), and the text after a `--` if one ended
/// parsing.
pub fn tokenize(args: &[u8]) -> (Vec<Token>, Option<Vec<u8>>) {
    let n = args.len();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < n && is_space(args[pos]) {
        pos += 1;
    }
    while pos < n {
        // A token: an optional opening quote, then bytes up to whitespace outside quotes.
        let quoted = args[pos] == b'"';
        let start = if quoted { pos + 1 } else { pos };
        let mut in_quote = quoted;
        let mut end = start;
        while end < n && (in_quote || !is_space(args[end])) {
            if args[end] == b'"' {
                in_quote = !in_quote;
            }
            end += 1;
        }
        let body = &args[start..end];
        // The first '=' that is not the body's first byte separates name and value.
        let eq = body.iter().skip(1).position(|&b| b == b'=').map(|k| k + 1);
        let last_is_quote = body.last() == Some(&b'"');
        let token = match eq {
            None => {
                // A quoted token loses one trailing quote.
                let len = if quoted && last_is_quote {
                    body.len() - 1
                } else {
                    body.len()
                };
                Token {
                    name: body[..len].to_vec(),
                    value: None,
                    name_span: (start, start + len),
                }
            }
            Some(eq) => {
                let mut vstart = eq + 1;
                let mut vend = body.len();
                let value_quoted = body.get(vstart) == Some(&b'"');
                if value_quoted {
                    vstart += 1;
                }
                // The last byte goes if it is a quote and the value or the token was quoted
                // (unless that quote is the one already skipped).
                if (value_quoted || quoted) && last_is_quote {
                    vend = body.len() - 1;
                }
                let value = if vend > vstart {
                    body[vstart..vend].to_vec()
                } else {
                    Vec::new()
                };
                Token {
                    name: body[..eq].to_vec(),
                    value: Some(value),
                    name_span: (start, start + eq),
                }
            }
        };
        // Past the token and the whitespace that ended it, then any further whitespace.
        pos = end;
        while pos < n && is_space(args[pos]) {
            pos += 1;
        }
        if token.value.is_none() && token.name == b"--" {
            return (out, Some(args[pos..].to_vec()));
        }
        out.push(token);
    }
    (out, None)
}

/// Names are equal with `-` and `_` the same.
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}

/// The value of one digit byte, if it is one (0-9, a-f, A-F).
fn digit(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'f' => Some(u32::from(c - b'a') + 10),
        b'A'..=b'F' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

/// An unsigned number without sign, base detected from the prefix: `0x` + hex digit is hex,
/// a leading 0 octal, else decimal. Overflow past 64 bits is ERANGE, and wins over later
/// garbage; no digits is EINVAL; one trailing newline is allowed.
fn magnitude(s: &[u8]) -> Result<u128, i32> {
    let (base, digits): (u32, &[u8]) = if s.first() == Some(&b'0')
        && matches!(s.get(1), Some(b'x' | b'X'))
        && s.get(2).and_then(|&c| digit(c)).is_some()
    {
        (16, &s[2..])
    } else if s.first() == Some(&b'0') {
        (8, s)
    } else {
        (10, s)
    };
    let mut value: u128 = 0;
    let mut overflow = false;
    let mut used = 0;
    for &c in digits {
        match digit(c) {
            Some(d) if d < base => {
                value = value * u128::from(base) + u128::from(d);
                if value > u128::from(u64::MAX) {
                    overflow = true;
                    value &= u128::from(u64::MAX);
                }
                used += 1;
            }
            _ => break,
        }
    }
    if overflow {
        return Err(ERANGE);
    }
    if used == 0 {
        return Err(EINVAL);
    }
    let rest = &digits[used..];
    if rest.is_empty() || rest == b"\n" {
        Ok(value)
    } else {
        Err(EINVAL)
    }
}

/// A number for a type with range `lo..=hi`: signed types accept `-` (and nothing after it
/// but digits), every type accepts one leading `+` (not after `-`).
fn number(s: &[u8], lo: i128, hi: i128) -> Result<i128, i32> {
    let signed = lo < 0;
    let v: i128 = if let Some(rest) = s.strip_prefix(b"-") {
        if !signed {
            return Err(EINVAL);
        }
        let m = magnitude(rest)?;
        if m > 1u128 << 63 {
            return Err(ERANGE);
        }
        -(m as i128)
    } else {
        let rest = s.strip_prefix(b"+").unwrap_or(s);
        let m = magnitude(rest)?;
        if signed && m > i64::MAX as u128 {
            return Err(ERANGE);
        }
        m as i128
    };
    if v < lo || v > hi {
        return Err(ERANGE);
    }
    Ok(v)
}

/// `kstrtobool`: the first byte (or two, for `on`/`of`) decides.
fn boolean(s: Option<&[u8]>) -> Result<bool, i32> {
    let s = s.ok_or(EINVAL)?;
    match (s.first().copied(), s.get(1).copied()) {
        (Some(b'y' | b'Y' | b't' | b'T' | b'1'), _) => Ok(true),
        (Some(b'n' | b'N' | b'f' | b'F' | b'0'), _) => Ok(false),
        (Some(b'o' | b'O'), Some(b'n' | b'N')) => Ok(true),
        (Some(b'o' | b'O'), Some(b'f' | b'F')) => Ok(false),
        _ => Err(EINVAL),
    }
}

fn range(kind: &Kind) -> (i128, i128) {
    match kind {
        Kind::Byte => (0, 255),
        Kind::Short => (i16::MIN.into(), i16::MAX.into()),
        Kind::Ushort => (0, u16::MAX.into()),
        Kind::Int => (i32::MIN.into(), i32::MAX.into()),
        Kind::Uint | Kind::Hexint => (0, u32::MAX.into()),
        Kind::Long => (i64::MIN.into(), i64::MAX.into()),
        _ => (0, u64::MAX.into()),
    }
}

/// Whether the type may be given without `=value`.
fn takes_no_value(kind: &Kind) -> bool {
    matches!(kind, Kind::Bool | Kind::BoolEnableOnly | Kind::Bint)
}

/// Set one (scalar or string) parameter. `name` is for messages.
fn set_scalar(
    kind: &Kind,
    cell: &mut Cell,
    val: Option<&[u8]>,
    name: &[u8],
    log: &mut Vec<(u8, Vec<u8>)>,
) -> Result<(), i32> {
    match kind {
        Kind::Bool => *cell = Cell::Flag(boolean(Some(val.unwrap_or(b"1")))?),
        Kind::Invbool => *cell = Cell::Flag(!boolean(val)?),
        Kind::Bint => *cell = Cell::Num(i128::from(boolean(Some(val.unwrap_or(b"1")))?)),
        Kind::BoolEnableOnly => {
            let new = boolean(Some(val.unwrap_or(b"1")))?;
            let now = *cell == Cell::Flag(true);
            if now && !new {
                return Err(EROFS);
            }
            if new {
                *cell = Cell::Flag(true);
            }
        }
        Kind::Charp => {
            let v = val.ok_or(EINVAL)?;
            if v.len() > 1024 {
                log.push((ERR, [name, b": string parameter too long"].concat()));
                return Err(ENOSPC);
            }
            *cell = Cell::Text(Some(v.to_vec()));
        }
        Kind::Str { maxlen } => {
            let v = val.ok_or(EINVAL)?;
            if v.len() + 1 > *maxlen {
                let msg = format!(": string doesn't fit in {} chars.", maxlen - 1);
                log.push((ERR, [name, msg.as_bytes()].concat()));
                return Err(ENOSPC);
            }
            *cell = Cell::Text(Some(v.to_vec()));
        }
        Kind::Array { .. } => return Err(EINVAL),
        numeric => {
            let (lo, hi) = range(numeric);
            *cell = Cell::Num(number(val.ok_or(EINVAL)?, lo, hi)?);
        }
    }
    Ok(())
}

/// Set a parameter from its value (`None`: bare name).
fn set(
    param: &Param,
    cell: &mut Cell,
    val: Option<&[u8]>,
    log: &mut Vec<(u8, Vec<u8>)>,
) -> Result<(), i32> {
    if val.is_none() && !takes_no_value(&param.kind) {
        return Err(EINVAL);
    }
    let Kind::Array { elem, max, .. } = &param.kind else {
        return set_scalar(&param.kind, cell, val, &param.name, log);
    };
    let Cell::Arr { items, count } = cell else {
        return Err(EINVAL);
    };
    let val = val.unwrap_or_default();
    // The count restarts at 0 and grows with each element that was set.
    *count = 0;
    let mut parts = val.split(|&b| b == b',');
    for part in parts.by_ref() {
        if *count == *max {
            let msg = format!(": can only take {max} arguments");
            log.push((ERR, [&param.name[..], msg.as_bytes()].concat()));
            return Err(EINVAL);
        }
        set_scalar(elem, &mut items[*count], Some(part), &param.name, log)?;
        *count += 1;
    }
    Ok(())
}

/// A scalar's sysfs text without the newline.
fn show_scalar(kind: &Kind, cell: &Cell) -> Vec<u8> {
    match (kind, cell) {
        (Kind::Hexint, Cell::Num(v)) => format!("0x{v:06x}").into_bytes(),
        (Kind::Invbool, Cell::Flag(b)) => if *b { b"N" } else { b"Y" }.to_vec(),
        (_, Cell::Flag(b)) => if *b { b"Y" } else { b"N" }.to_vec(),
        (_, Cell::Num(v)) => v.to_string().into_bytes(),
        (Kind::Str { .. }, Cell::Text(t)) => t.clone().unwrap_or_default(),
        (_, Cell::Text(Some(t))) => t.clone(),
        (_, Cell::Text(None)) => b"(null)".to_vec(),
        (_, Cell::Arr { .. }) => Vec::new(),
    }
}

/// The sysfs text of a parameter.
pub fn show(kind: &Kind, cell: &Cell) -> Vec<u8> {
    match (kind, cell) {
        (
            Kind::Array {
                elem, max, counted, ..
            },
            Cell::Arr { items, count },
        ) => {
            let n = if *counted { *count } else { *max };
            if n == 0 {
                return Vec::new();
            }
            let shown: Vec<Vec<u8>> = items[..n].iter().map(|c| show_scalar(elem, c)).collect();
            let mut out = shown.join(&b","[..]);
            out.push(b'\n');
            out
        }
        _ => {
            let mut out = show_scalar(kind, cell);
            out.push(b'\n');
            out
        }
    }
}

/// Load a module named `modname` with this parameter table and argument string (the
/// kernel's copy stops at the first NUL), with dynamic debug built in and `async_probe` off.
pub fn load(modname: &[u8], params: &[Param], args: &[u8]) -> Loaded {
    let args = match args.iter().position(|&b| b == 0) {
        Some(n) => &args[..n],
        None => args,
    };
    let mut cells: Vec<Cell> = params.iter().map(|p| p.init.clone()).collect();
    let mut log: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut log_known = true;
    let mut async_probe = false;
    let mut errno = None;
    let (tokens, rest) = tokenize(args);
    for t in &tokens {
        let Some(i) = params.iter().position(|p| same_name(&p.name, &t.name)) else {
            // Unknown: async_probe (exact spelling), [mod.]dyndbg, or a warning.
            if t.name == b"async_probe" {
                async_probe = boolean(t.value.as_deref()).unwrap_or(true);
                continue;
            }
            let (shown, last) = match t.name.iter().position(|&b| b == b'.') {
                Some(d) => (&t.name[..d], &t.name[d + 1..]),
                None => (&t.name[..], &t.name[..]),
            };
            if last == b"dyndbg" {
                log_known = false;
            } else {
                log.push((
                    WARN,
                    [modname, b": unknown parameter '", shown, b"' ignored"].concat(),
                ));
            }
            continue;
        };
        if let Err(e) = set(&params[i], &mut cells[i], t.value.as_deref(), &mut log) {
            // An array's value is printed up to its first comma (the kernel cut it there).
            let mut val = t.value.clone().unwrap_or_default();
            let is_array = matches!(params[i].kind, Kind::Array { .. });
            let comma = val.iter().position(|&b| b == b',').filter(|_| is_array);
            if let Some(c) = comma {
                val.truncate(c);
            }
            let what: &[u8] = if e == ENOSPC {
                b"' too large for parameter `"
            } else {
                b"' invalid for parameter `"
            };
            log.push((ERR, [modname, b": `", &val, what, &t.name, b"'"].concat()));
            errno = Some(e);
        }
    }
    if let (None, Some(rest)) = (errno, rest) {
        log.push((
            WARN,
            [modname, b": parameters '", &rest, b"' after `--' ignored"].concat(),
        ));
    }
    let values = params
        .iter()
        .zip(&cells)
        .map(|(p, c)| (p.name.clone(), show(&p.kind, c)))
        .collect();
    Loaded {
        errno,
        values,
        log: log_known.then_some(log),
        async_probe,
    }
}
