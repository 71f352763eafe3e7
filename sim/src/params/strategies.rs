//! [`proptest`](mod@proptest) strategies for module parameter strings over a parameter table
//! (`&[ParamDecl]`), and a formatter that writes `name=value` strings the kernel reads back
//! unchanged. Only built with the `proptest` feature of `sim`.
//!
//! - Valid strings: [`valid_args`] (every token sets its parameter and the load succeeds).
//!   Numbers come in every base form the kernel accepts (`0x`/`0X`, leading-zero octal,
//!   decimal, `+`, `-`, `-0`, a trailing newline) and at their boundaries; bools in every
//!   accepted spelling (`y Y t T 1 n N f F 0`, `on`/`off` in any case, trailing garbage);
//!   `charp` and `string` values with spaces, tabs, newlines, 0xA0, quotes, commas, `=`,
//!   high bytes, up to the length limits; arrays of 1 to `max` elements; names with `_` and
//!   `-` swapped; every quoting [`Form`] that reads back the same.
//! - Invalid and mixed strings: [`failing_token`], [`unknown_token`], [`dashes_token`],
//!   [`stray_quote_token`], [`mixed_args`]: out of range numbers, bad digits, bad bools,
//!   values too long, too many array elements, empty elements, bare names for types that need
//!   a value, unknown names, `--` in various places, unbalanced quotes, every separator.
//! - Arbitrary bytes: [`arbitrary_args`].
//! - The formatter: [`format_params`] / [`format_params_bytes`]; the text a sysfs read gives
//!   afterwards: [`sysfs_after`].
//!
//! Every generated token carries its predicted [`Effect`], so a test can check the kernel
//! model against the generator as well as against other loads.
//!
//! # What the formatter cannot express
//!
//! `next_arg` (lib/cmdline.c) has no escapes: a `"` anywhere toggles "inside quotes", only
//! whitespace outside quotes ends a token, one leading `"` of the value (or of the token) is
//! dropped, and one trailing `"` is dropped when the value or the token started with one. The
//! kernel's whitespace is `\t \n \v \f \r`, space and **0xA0** (also as the second byte of a
//! UTF-8 character: U+00A0 is `C2 A0`, `à` is `C3 A0`). With `q` the number of `"` in the
//! value, the seven spellings of [`Form`] cover every value except:
//!
//! 1. **Mixed quote parity at whitespace**: some whitespace byte of the value follows an even
//!    number of `"` and another an odd number (`a b"c d`, `" x"y z`). Whether a byte is inside
//!    quotes is fixed by the parity of the quotes before it, so no prefix makes both
//!    whitespace bytes quoted: whitespace both outside and inside a quoted part, as in
//!    `x "y z"`. (A value with whitespace and quotes is fine when all its whitespace has the
//!    same parity: `a"b c"d`, `a"b c`, `a b"c"`.)
//! 2. **Last token only** (a second such value, or one whose parameter is set again later in
//!    the list, makes the whole string inexpressible):
//!    - whitespace after an odd number of quotes, `q` even, and the value both starts and
//!      ends with `"` (`" "`, `"a" "b"`): every spelling that keeps both quotes leaves the
//!      token inside quotes at its end, so it would swallow the next token;
//!    - whitespace after an even number of quotes, `q` odd, and the value ends with `"`
//!      (`a b"`): likewise.
//!
//!    [`format_params`] moves such a value to the end of the string when no later entry
//!    names the same parameter (names equal with `-` and `_` the same), which changes the
//!    order of log lines only.
//! 3. **NUL bytes**: the argument string is a C string (`strndup_user` stops at the first
//!    NUL).
//! 4. **NULL**: `Value::Str(None)`; nothing sets a `charp` back to NULL.
//! 5. **Arrays**: an empty array (`name=` is one empty element, not zero elements), an
//!    element containing `,` (the element separator; no escape), a NULL or nested element.
//! 6. **Names**: empty, or containing `=`, `"`, whitespace or NUL.
//! 7. [`format_params`] only: values that are not UTF-8 (it returns a `String`; use
//!    [`format_params_bytes`]).
//!
//! Values are also written in one spelling per type (integers in decimal, bools as `1`/`0`);
//! whether the parameter accepts them (range, length, `bool_enable_only`) is the caller's
//! business: [`valid_value`] generates only accepted ones.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::standalone::{ParamDecl, ParamType, Value};
use crate::errno::Errno;

/// The kernel's whitespace (`isspace` of lib/ctype.c, a Latin-1 table): tab, newline,
/// vertical tab, form feed, carriage return, space, and 0xA0 (no-break space).
pub const SPACES: [u8; 7] = [b'\t', b'\n', 0x0b, 0x0c, b'\r', b' ', 0xa0];

/// The longest `charp` value `param_set_charp` accepts.
pub const CHARP_MAX: usize = 1024;

/// Whether the kernel's `isspace` is true for `b` (see [`SPACES`]).
pub fn is_space(b: u8) -> bool {
    SPACES.contains(&b)
}

/// Where a spelled token may go in a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Anywhere: the token ends at the whitespace after it.
    Anywhere,
    /// Only at the very end: it leaves `next_arg` inside quotes, so it would run on into the
    /// next token.
    LastOnly,
}

/// A way of writing `name=value` (`n` the name, `v` the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// `n=v`: `v` must not start with `"`.
    Plain,
    /// `n="v"`.
    Quoted,
    /// `"n="v"`: the token's quote opens, the value's quote closes.
    TokenValueQuoted,
    /// `n="v` (no closing quote): `v` must not end with `"`.
    OpenQuote,
    /// `"n="v`: `v` must not end with `"`.
    TokenValueOpen,
    /// `"n=v"`: `v` must not start with `"`.
    TokenQuoted,
    /// `"n=v`: `v` must neither start nor end with `"`.
    TokenOpen,
}

impl Form {
    /// Every form, in the order [`format_params`] prefers them.
    pub const ALL: [Form; 7] = [
        Form::Plain,
        Form::Quoted,
        Form::TokenValueQuoted,
        Form::OpenQuote,
        Form::TokenValueOpen,
        Form::TokenQuoted,
        Form::TokenOpen,
    ];

    /// The bytes of the token (`name` is written as is).
    pub fn spell(self, name: &[u8], value: &[u8]) -> Vec<u8> {
        let (pre, mid, post): (&[u8], &[u8], &[u8]) = match self {
            Form::Plain => (b"", b"=", b""),
            Form::Quoted => (b"", b"=\"", b"\""),
            Form::TokenValueQuoted => (b"\"", b"=\"", b"\""),
            Form::OpenQuote => (b"", b"=\"", b""),
            Form::TokenValueOpen => (b"\"", b"=\"", b""),
            Form::TokenQuoted => (b"\"", b"=", b"\""),
            Form::TokenOpen => (b"\"", b"=", b""),
        };
        [pre, name, mid, value, post].concat()
    }

    /// Whether the value starts inside quotes in this form.
    fn value_starts_quoted(self) -> bool {
        matches!(
            self,
            Form::Quoted | Form::OpenQuote | Form::TokenQuoted | Form::TokenOpen
        )
    }

    /// The quotes the form adds.
    fn added_quotes(self) -> usize {
        match self {
            Form::Plain => 0,
            Form::OpenQuote | Form::TokenOpen => 1,
            Form::Quoted | Form::TokenValueOpen | Form::TokenQuoted => 2,
            Form::TokenValueQuoted => 3,
        }
    }

    /// Where `name=value` spelled in this form reads back as exactly `value` (for a valid
    /// name, see [`name_is_expressible`]); `None` if it never does.
    pub fn placement(self, value: &[u8]) -> Option<Placement> {
        if value.contains(&0) {
            return None;
        }
        let starts = value.first() == Some(&b'"');
        let ends = value.last() == Some(&b'"');
        let bad_start = matches!(self, Form::Plain | Form::TokenQuoted | Form::TokenOpen);
        let bad_end = matches!(
            self,
            Form::OpenQuote | Form::TokenValueOpen | Form::TokenOpen
        );
        if (starts && bad_start) || (ends && bad_end) {
            return None;
        }
        let mut inside = self.value_starts_quoted();
        let mut quotes = 0;
        for &b in value {
            if b == b'"' {
                inside = !inside;
                quotes += 1;
            } else if is_space(b) && !inside {
                return None;
            }
        }
        Some(if (quotes + self.added_quotes()).is_multiple_of(2) {
            Placement::Anywhere
        } else {
            Placement::LastOnly
        })
    }
}

/// The forms in which `value` reads back unchanged anywhere in a string.
pub fn forms_anywhere(value: &[u8]) -> Vec<Form> {
    Form::ALL
        .into_iter()
        .filter(|f| f.placement(value) == Some(Placement::Anywhere))
        .collect()
}

/// The preferred spelling of `value`: the first [`Form::ALL`] form that works anywhere,
/// else the first that works as the last token; `None` if there is none.
pub fn best_form(value: &[u8]) -> Option<(Form, Placement)> {
    let anywhere = Form::ALL
        .into_iter()
        .find(|f| f.placement(value) == Some(Placement::Anywhere));
    if let Some(f) = anywhere {
        return Some((f, Placement::Anywhere));
    }
    Form::ALL
        .into_iter()
        .find(|f| f.placement(value) == Some(Placement::LastOnly))
        .map(|f| (f, Placement::LastOnly))
}

/// Whether `name` can be written as a parameter name: not empty, no `=`, `"`, whitespace
/// (see [`SPACES`]) or NUL.
pub fn name_is_expressible(name: &[u8]) -> bool {
    !name.is_empty()
        && !name
            .iter()
            .any(|&b| b == 0 || b == b'=' || b == b'"' || is_space(b))
}

/// Parameter names as `parameq` (kernel/params.c) compares them: `-` and `_` are the same.
pub fn names_match(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}

/// The text [`format_params`] writes for a value, before quoting: integers in decimal, bools
/// as `1`/`0` (which every bool type and every integer type reads as 1/0), strings as they
/// are, arrays as their elements joined by `,`. `None` for what cannot be written: NULL
/// (`Str(None)`), NUL bytes, an empty array, an element that is an array, NULL or contains
/// `,`.
pub fn value_text(v: &Value) -> Option<Vec<u8>> {
    let scalar = |v: &Value| -> Option<Vec<u8>> {
        match v {
            Value::Int(i) => Some(i.to_string().into_bytes()),
            Value::Bool(b) => Some(if *b { b"1" } else { b"0" }.to_vec()),
            Value::Str(Some(s)) if !s.contains(&0) => Some(s.clone()),
            Value::Str(_) | Value::Array(_) => None,
        }
    };
    match v {
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for it in items {
                let t = scalar(it)?;
                if t.contains(&b',') {
                    return None;
                }
                parts.push(t);
            }
            Some(parts.join(&b","[..]))
        }
        other => scalar(other),
    }
}

/// Write `name=value` tokens separated by single spaces so that the kernel sets each
/// parameter to exactly that value (loading the result gives the sysfs texts of
/// [`sysfs_after`]); `None` for what cannot be expressed (see the module documentation:
/// mixed quote parity at whitespace, values that must come last, NUL, NULL, empty arrays,
/// commas in array elements, bad names). Tokens keep their order, except that one value that
/// only works as the last token is moved to the end when no later entry names the same
/// parameter.
pub fn format_params_bytes<N: AsRef<str>>(params: &[(N, Value)]) -> Option<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = Vec::with_capacity(params.len());
    let mut last: Option<usize> = None;
    for (i, (name, value)) in params.iter().enumerate() {
        let name = name.as_ref().as_bytes();
        if !name_is_expressible(name) {
            return None;
        }
        let text = value_text(value)?;
        let (form, placement) = best_form(&text)?;
        if placement == Placement::LastOnly {
            if last.is_some() {
                return None;
            }
            let set_again = params
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .any(|(n, _)| names_match(n.as_ref().as_bytes(), name));
            if set_again {
                return None;
            }
            last = Some(i);
        }
        tokens.push(form.spell(name, &text));
    }
    if let Some(i) = last {
        let t = tokens.remove(i);
        tokens.push(t);
    }
    Some(tokens.join(&b" "[..]))
}

/// [`format_params_bytes`] as a `String`: also `None` when a value is not UTF-8.
pub fn format_params<N: AsRef<str>>(params: &[(N, Value)]) -> Option<String> {
    String::from_utf8(format_params_bytes(params)?).ok()
}

/// A value as a bool: `Bool(b)`, or `Int(0)` / `Int(1)`.
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Int(0) => Some(false),
        Value::Int(1) => Some(true),
        _ => None,
    }
}

/// A value as an integer: `Int(i)`, or a bool as 0/1.
fn as_int(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i128::from(*b)),
        _ => None,
    }
}

/// The range of an integer type (`hexint` is an `unsigned int`); `None` for other types.
pub fn int_range(ty: &ParamType) -> Option<(i128, i128)> {
    Some(match ty {
        ParamType::Byte => (0, u8::MAX.into()),
        ParamType::Short => (i16::MIN.into(), i16::MAX.into()),
        ParamType::Ushort => (0, u16::MAX.into()),
        ParamType::Int => (i32::MIN.into(), i32::MAX.into()),
        ParamType::Uint | ParamType::Hexint => (0, u32::MAX.into()),
        ParamType::Long => (i64::MIN.into(), i64::MAX.into()),
        ParamType::Ulong | ParamType::Ullong => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// Whether a type may be given as a bare name (its ops have `KERNEL_PARAM_OPS_FL_NOARG`).
pub fn takes_bare_name(ty: &ParamType) -> bool {
    match ty {
        ParamType::Bool | ParamType::BoolEnableOnly | ParamType::Bint => true,
        ParamType::Custom { flags, .. } => flags & super::table::KERNEL_PARAM_OPS_FL_NOARG != 0,
        _ => false,
    }
}

/// A scalar's sysfs text without the newline. `written` says whether an `invbool` value is
/// the value written (shown as is) or the stored negation (a declaration's initial value).
fn show_scalar(ty: &ParamType, v: &Value, written: bool) -> Option<Vec<u8>> {
    let yn = |b: bool| if b { b"Y".to_vec() } else { b"N".to_vec() };
    Some(match ty {
        ParamType::Hexint => {
            let i = u32::try_from(as_int(v)?).ok()?;
            format!("0x{i:06x}").into_bytes()
        }
        ParamType::Charp => match v {
            Value::Str(Some(s)) => s.clone(),
            Value::Str(None) => b"(null)".to_vec(),
            _ => return None,
        },
        ParamType::String { .. } => match v {
            Value::Str(s) => s.clone().unwrap_or_default(),
            _ => return None,
        },
        ParamType::Bool | ParamType::BoolEnableOnly => yn(as_bool(v)?),
        ParamType::Invbool => yn(as_bool(v)? == written),
        ParamType::Bint => i128::from(as_bool(v)?).to_string().into_bytes(),
        other => {
            let (lo, hi) = int_range(other)?;
            let i = as_int(v)?;
            if i < lo || i > hi {
                return None;
            }
            i.to_string().into_bytes()
        }
    })
}

/// What reading the sysfs file of `decl` gives after the kernel set it from
/// `name=<value_text(value)>` (once, starting from the declared initial value). For
/// `invbool`, `value` is the value written, which is what sysfs shows. An array without a
/// count variable shows all `max` elements: the ones written, then the initial ones. `None`
/// for custom ops and for values of the wrong kind or out of range.
pub fn sysfs_after(decl: &ParamDecl, value: &Value) -> Option<Vec<u8>> {
    let mut out = match &decl.ty {
        ParamType::Custom { .. } => return None,
        ParamType::Array {
            elem,
            max,
            with_num,
        } => {
            let Value::Array(items) = value else {
                return None;
            };
            let max = *max as usize;
            if items.is_empty() || items.len() > max {
                return None;
            }
            let mut shown = Vec::with_capacity(max);
            for it in items {
                shown.push(show_scalar(elem, it, true)?);
            }
            if !*with_num {
                let init = match &decl.init {
                    Value::Array(v) => v.as_slice(),
                    _ => &[],
                };
                for i in items.len()..max {
                    let v = init.get(i).cloned().unwrap_or(match **elem {
                        ParamType::Charp => Value::Str(None),
                        _ => Value::Int(0),
                    });
                    shown.push(show_scalar(elem, &v, false)?);
                }
            }
            shown.join(&b","[..])
        }
        ty => show_scalar(ty, value, true)?,
    };
    out.push(b'\n');
    Some(out)
}

/// What a token does when the kernel gets to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Sets table entry `param` to `value` (for `invbool`: the value written).
    Sets {
        /// Index into the table.
        param: usize,
        /// The value set.
        value: Value,
    },
    /// Names no table entry: ignored with a warning, or taken by the unknown-parameter
    /// callback (`async_probe`, `dyndbg`); never an error, never changes a parameter.
    Ignored,
    /// `ops->set` (or the bare-name check) fails with `errno`: the load fails, parsing goes
    /// on. An array may keep the elements set before the failing one.
    Fails {
        /// Index into the table.
        param: usize,
        /// The errno.
        errno: Errno,
    },
    /// `--`: parsing stops, the rest of the string is ignored.
    Stops,
    /// Its quotes do not balance: it runs on into whatever follows, so neither it nor
    /// anything after it is predicted.
    Unpredictable,
}

/// One generated token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The bytes written into the string.
    pub text: Vec<u8>,
    /// The name as the kernel sees it (quotes removed).
    pub name: Vec<u8>,
    /// The value as the kernel sees it (`None`: no `=`).
    pub value: Option<Vec<u8>>,
    /// What it does.
    pub effect: Effect,
}

/// A generated parameter string: whitespace, then tokens each followed by whitespace (the
/// last one possibly by none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamString {
    /// Whitespace before the first token.
    pub lead: Vec<u8>,
    /// The tokens, each with the whitespace after it.
    pub tokens: Vec<(Token, Vec<u8>)>,
}

/// What a [`ParamString`] is predicted to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    /// The errno of the last failing token before any `--` (`None`: the load succeeds).
    pub errno: Option<Errno>,
    /// The successful sets before any `--`, in order: (table index, value).
    pub sets: Vec<(usize, Value)>,
    /// Whether a `--` stopped parsing.
    pub stopped: bool,
}

impl ParamString {
    /// The string.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.lead.clone();
        for (t, sep) in &self.tokens {
            out.extend_from_slice(&t.text);
            out.extend_from_slice(sep);
        }
        out
    }

    /// The same string without token `i` (and the whitespace after it).
    pub fn without(&self, i: usize) -> ParamString {
        let mut s = self.clone();
        if i < s.tokens.len() {
            s.tokens.remove(i);
        }
        s
    }

    /// What the tokens predict, or `None` if an [`Effect::Unpredictable`] token is reached.
    pub fn prediction(&self) -> Option<Prediction> {
        let mut p = Prediction {
            errno: None,
            sets: Vec::new(),
            stopped: false,
        };
        for (t, _) in &self.tokens {
            match &t.effect {
                Effect::Sets { param, value } => p.sets.push((*param, value.clone())),
                Effect::Fails { errno, .. } => p.errno = Some(*errno),
                Effect::Ignored => {}
                Effect::Stops => {
                    p.stopped = true;
                    return Some(p);
                }
                Effect::Unpredictable => return None,
            }
        }
        Some(p)
    }
}

/// Relabel `bool_enable_only` sets that the kernel refuses (`EROFS`: clearing it once it is
/// true), following the tokens in order up to a `--` or an unpredictable token.
fn settle(table: &[ParamDecl], tokens: &mut [(Token, Vec<u8>)]) {
    let mut state: Vec<bool> = table
        .iter()
        .map(|d| as_bool(&d.init).unwrap_or(false))
        .collect();
    for (t, _) in tokens.iter_mut() {
        match &t.effect {
            Effect::Stops | Effect::Unpredictable => return,
            Effect::Sets { param, value } => {
                let p = *param;
                if table.get(p).map(|d| &d.ty) != Some(&ParamType::BoolEnableOnly) {
                    continue;
                }
                let now = state.get(p).copied().unwrap_or(false);
                match as_bool(value) {
                    Some(false) if now => {
                        t.effect = Effect::Fails {
                            param: p,
                            errno: Errno::EROFS,
                        };
                    }
                    Some(true) => {
                        if let Some(s) = state.get_mut(p) {
                            *s = true;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Whitespace between tokens: one to three bytes of [`SPACES`], mostly a single space.
pub fn separator() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        6 => Just(b" ".to_vec()),
        2 => select(SPACES.to_vec()).prop_map(|b| vec![b]),
        1 => vec(select(SPACES.to_vec()), 1..=3),
    ]
    .boxed()
}

/// Spellings of `name` with every `_` or `-` chosen independently as `_` or `-`.
pub fn name_variant(name: &str) -> BoxedStrategy<Vec<u8>> {
    let bytes = name.as_bytes().to_vec();
    let n = bytes.iter().filter(|&&b| b == b'_' || b == b'-').count();
    vec(any::<bool>(), n)
        .prop_map(move |flips| {
            let mut flips = flips.into_iter();
            bytes
                .iter()
                .map(|&b| match b {
                    b'_' | b'-' => {
                        if flips.next().unwrap_or(false) {
                            b'-'
                        } else {
                            b'_'
                        }
                    }
                    other => other,
                })
                .collect()
        })
        .boxed()
}

/// Integers of `lo..=hi`, biased to the boundaries (the ends, ±1 around them and 0, powers of
/// two) and to small numbers.
pub fn int_value(lo: i128, hi: i128) -> BoxedStrategy<i128> {
    let mut edges: Vec<i128> = vec![lo, lo + 1, -1, 0, 1, hi - 1, hi];
    for k in [7u32, 8, 15, 16, 31, 32, 63] {
        let p = 1i128 << k;
        edges.extend([p - 1, p, -p, -p - 1]);
    }
    edges.retain(|v| (lo..=hi).contains(v));
    edges.sort_unstable();
    edges.dedup();
    prop_oneof![
        3 => select(edges),
        3 => lo..=hi,
        2 => (-300i128..300).prop_map(move |v| v.clamp(lo, hi)),
    ]
    .boxed()
}

/// Spellings the kernel (`kstrto*` with base 0) reads as `v`: decimal, `0x`/`0X` hex with
/// either case of digits and leading zeros, leading-zero octal, an optional `+` (when `v` is
/// not negative), `-0` for 0 (when `signed`), an optional trailing newline.
pub fn int_spelling(v: i128, signed: bool) -> BoxedStrategy<Vec<u8>> {
    let mag = v.unsigned_abs();
    let body = prop_oneof![
        3 => Just(mag.to_string()),
        2 => (any::<bool>(), any::<bool>(), 0usize..3).prop_map(move |(big_x, upper, zeros)| {
            let digits = if upper { format!("{mag:X}") } else { format!("{mag:x}") };
            format!("0{}{}{digits}", if big_x { 'X' } else { 'x' }, "0".repeat(zeros))
        }),
        1 => (0usize..3).prop_map(move |zeros| format!("0{}{mag:o}", "0".repeat(zeros))),
    ];
    let sign: BoxedStrategy<&'static str> = if v < 0 {
        Just("-").boxed()
    } else if v == 0 && signed {
        prop_oneof![Just(""), Just("+"), Just("-")].boxed()
    } else {
        prop_oneof![3 => Just(""), 1 => Just("+")].boxed()
    };
    let newline = prop_oneof![9 => Just(""), 1 => Just("\n")];
    (sign, body, newline)
        .prop_map(|(s, b, n)| format!("{s}{b}{n}").into_bytes())
        .boxed()
}

/// Bytes allowed after a bool's deciding one or two bytes (no `,`, `"` or NUL, so that the
/// spelling also works as an array element).
const BOOL_TAIL: &[u8] = b"abcdefnosuwyzEFNOSY0129-_.+ \t";

/// Spellings `kstrtobool` reads as `b`: `y Y t T 1` / `n N f F 0`, or `o`/`O` then `n`/`N`
/// (true) or `f`/`F` (false), then up to four more bytes it ignores (`yes`, `true`, `off`).
pub fn bool_spelling(b: bool) -> BoxedStrategy<Vec<u8>> {
    let head: BoxedStrategy<Vec<u8>> = if b {
        prop_oneof![
            3 => select(b"yYtT1".to_vec()).prop_map(|c| vec![c]),
            1 => (select(b"oO".to_vec()), select(b"nN".to_vec())).prop_map(|(a, c)| vec![a, c]),
        ]
        .boxed()
    } else {
        prop_oneof![
            3 => select(b"nNfF0".to_vec()).prop_map(|c| vec![c]),
            1 => (select(b"oO".to_vec()), select(b"fF".to_vec())).prop_map(|(a, c)| vec![a, c]),
        ]
        .boxed()
    };
    let tail = prop_oneof![
        2 => Just(Vec::new()),
        1 => vec(select(BOOL_TAIL.to_vec()), 1..=4),
    ];
    (head, tail)
        .prop_map(|(mut h, t)| {
            h.extend(t);
            h
        })
        .boxed()
}

/// Pieces of string values: letters, digits, punctuation, the kernel's whitespace, quotes,
/// commas, `=`, control and high bytes, UTF-8 characters (some containing 0xA0).
fn string_piece() -> BoxedStrategy<Vec<u8>> {
    const PUNCT: &[u8] = b",=-_.'\\/:;%#*!?()[]{}<>@&|~`^$+";
    const UTF8: [&str; 6] = [
        "\u{e9}",
        "\u{e0}",
        "\u{a0}",
        "\u{20ac}",
        "\u{1f600}",
        "\u{3b1}",
    ];
    prop_oneof![
        12 => select(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_vec())
            .prop_map(|c| vec![c]),
        3 => select(PUNCT.to_vec()).prop_map(|c| vec![c]),
        3 => select(SPACES.to_vec()).prop_map(|c| vec![c]),
        2 => Just(b"\"".to_vec()),
        1 => (1u8..0x20).prop_map(|c| vec![c]),
        1 => (0x7fu8..=0xff).prop_map(|c| vec![c]),
        1 => select(UTF8.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
    ]
    .boxed()
}

/// String values of at most `max` bytes (no NUL): mostly short, sometimes within 8 bytes
/// of `max`.
pub fn string_bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    let short = vec(string_piece(), 0..=max.min(24)).prop_map(move |ps| {
        let mut v = ps.concat();
        v.truncate(max);
        v
    });
    let long = (
        vec(string_piece(), 0..=6),
        max.saturating_sub(8)..=max,
        select(b"abcxyz019".to_vec()),
    )
        .prop_map(|(ps, n, fill)| {
            let mut v = ps.concat();
            v.resize(n.max(v.len()), fill);
            v.truncate(n);
            v
        });
    prop_oneof![6 => short, 1 => long].boxed()
}

/// Replace `"` by `'` if `text` (as a value) has no form that works anywhere: then all its
/// whitespace is outside quotes and [`Form::Quoted`] works.
fn make_expressible(text: &mut [u8]) {
    if forms_anywhere(text).is_empty() {
        for b in text.iter_mut() {
            if *b == b'"' {
                *b = b'\'';
            }
        }
    }
}

/// Values the kernel accepts for `decl` from a fresh instance (what [`sysfs_after`] and
/// [`format_params`] take): integers in range (biased to the boundaries), bools (only true
/// for a `bool_enable_only` that starts true), strings up to 1024 bytes (`charp`) or
/// `maxlen - 1` (`string`) that may contain anything but NUL, arrays of 1 to `max` elements
/// (`charp` elements without `,`). The strings are not restricted to what
/// [`format_params`] can express. `Custom` parameters get integers.
pub fn valid_value(decl: &ParamDecl) -> BoxedStrategy<Value> {
    scalar_value(&decl.ty, &decl.init, false)
}

fn scalar_value(ty: &ParamType, init: &Value, element: bool) -> BoxedStrategy<Value> {
    match ty {
        ParamType::Bool | ParamType::Invbool | ParamType::Bint => {
            any::<bool>().prop_map(Value::Bool).boxed()
        }
        ParamType::BoolEnableOnly => {
            if element || as_bool(init) == Some(true) {
                Just(Value::Bool(true)).boxed()
            } else {
                any::<bool>().prop_map(Value::Bool).boxed()
            }
        }
        ParamType::Charp => string_bytes(CHARP_MAX)
            .prop_map(move |mut s| {
                if element {
                    s.retain(|&b| b != b',');
                }
                Value::Str(Some(s))
            })
            .boxed(),
        ParamType::String { maxlen } => string_bytes((*maxlen as usize).saturating_sub(1))
            .prop_map(|s| Value::Str(Some(s)))
            .boxed(),
        ParamType::Array { elem, max, .. } => {
            let max = (*max as usize).max(1);
            vec(scalar_value(elem, &Value::Int(0), true), 1..=max)
                .prop_map(Value::Array)
                .boxed()
        }
        ParamType::Custom { storage, .. } => scalar_value(storage, init, element),
        other => {
            let (lo, hi) = int_range(other).unwrap_or((0, 0));
            int_value(lo, hi).prop_map(Value::Int).boxed()
        }
    }
}

/// Spellings of a valid scalar value of `ty` (no quoting): numbers via [`int_spelling`],
/// bools via [`bool_spelling`], strings as they are.
fn scalar_spelling(ty: &ParamType, v: &Value) -> BoxedStrategy<Vec<u8>> {
    match (ty, v) {
        (ParamType::Bool | ParamType::Invbool | ParamType::Bint | ParamType::BoolEnableOnly, v) => {
            bool_spelling(as_bool(v).unwrap_or(true))
        }
        (_, Value::Str(s)) => Just(s.clone().unwrap_or_default()).boxed(),
        (ty, v) => {
            let signed = int_range(ty).is_some_and(|(lo, _)| lo < 0);
            int_spelling(as_int(v).unwrap_or(0), signed)
        }
    }
}

/// A token `name<form>value` with a form chosen among those that work anywhere (the value
/// must have one).
fn spelled(name: BoxedStrategy<Vec<u8>>, text: Vec<u8>, effect: Effect) -> BoxedStrategy<Token> {
    let forms = forms_anywhere(&text);
    (name, any::<Index>())
        .prop_map(move |(name, ix)| {
            let form = if forms.is_empty() {
                Form::Quoted
            } else {
                forms[ix.index(forms.len())]
            };
            Token {
                text: form.spell(&name, &text),
                name,
                value: Some(text.clone()),
                effect: effect.clone(),
            }
        })
        .boxed()
}

/// A bare name, written plain or as `"name"`.
fn bare(name: BoxedStrategy<Vec<u8>>, effect: Effect) -> BoxedStrategy<Token> {
    (name, any::<bool>())
        .prop_map(move |(name, quoted)| Token {
            text: if quoted {
                [&b"\""[..], &name, b"\""].concat()
            } else {
                name.clone()
            },
            name,
            value: None,
            effect: effect.clone(),
        })
        .boxed()
}

/// A token that sets `table[param]` to a valid value (see [`valid_value`]), written with a
/// dash/underscore variant of the name, a spelling of the value (see [`int_spelling`],
/// [`bool_spelling`]) and any quoting [`Form`] that reads back the same; bare names for the
/// bool types. Strings that no form can express anywhere have their `"` turned into `'`.
/// Its effect is [`Effect::Sets`] (a `bool_enable_only` cleared after being set is relabelled
/// by the string strategies).
pub fn valid_token(table: &[ParamDecl], param: usize) -> BoxedStrategy<Token> {
    let Some(decl) = table.get(param).cloned() else {
        return Just(dummy_token()).boxed();
    };
    let ty = match &decl.ty {
        ParamType::Custom { storage, .. } => (**storage).clone(),
        t => t.clone(),
    };
    let name = name_variant(&decl.name);
    let bare_ok = takes_bare_name(&decl.ty);
    let with_value = {
        let name = name.clone();
        let ty = ty.clone();
        valid_value(&decl)
            .prop_flat_map(move |v| {
                let (text, v) = value_spelling(&ty, v);
                let name = name.clone();
                text.prop_flat_map(move |text| {
                    spelled(
                        name.clone(),
                        text,
                        Effect::Sets {
                            param,
                            value: v.clone(),
                        },
                    )
                })
            })
            .boxed()
    };
    if bare_ok {
        let b = bare(
            name,
            Effect::Sets {
                param,
                value: Value::Bool(true),
            },
        );
        prop_oneof![3 => with_value, 1 => b].boxed()
    } else {
        with_value
    }
}

/// Spellings of a valid value of `ty` (arrays: elements spelled and joined by `,`), made
/// expressible anywhere (see [`make_expressible`]); the value adjusted to match.
fn value_spelling(ty: &ParamType, v: Value) -> (BoxedStrategy<Vec<u8>>, Value) {
    match (ty, &v) {
        (ParamType::Array { elem, .. }, Value::Array(items)) => {
            let elem = (**elem).clone();
            let items = items.clone();
            // Strings whose quotes would not balance in the joined text lose them.
            let mut joined: Vec<u8> = Vec::new();
            let mut fixed = items.clone();
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                if let Value::Str(Some(s)) = it {
                    joined.extend_from_slice(s);
                }
            }
            if forms_anywhere(&joined).is_empty() {
                for it in fixed.iter_mut() {
                    if let Value::Str(Some(s)) = it {
                        make_expressible_all(s);
                    }
                }
            }
            let parts: Vec<BoxedStrategy<Vec<u8>>> =
                fixed.iter().map(|it| scalar_spelling(&elem, it)).collect();
            let text = parts
                .prop_map(|ps| {
                    let mut t = ps.join(&b","[..]);
                    make_expressible(&mut t);
                    t
                })
                .boxed();
            (text, Value::Array(fixed))
        }
        (_, Value::Str(Some(s))) => {
            let mut s = s.clone();
            make_expressible(&mut s);
            (Just(s.clone()).boxed(), Value::Str(Some(s)))
        }
        _ => (scalar_spelling(ty, &v), v),
    }
}

/// Replace every `"` by `'`.
fn make_expressible_all(s: &mut [u8]) {
    for b in s.iter_mut() {
        if *b == b'"' {
            *b = b'\'';
        }
    }
}

fn dummy_token() -> Token {
    Token {
        text: b"x".to_vec(),
        name: b"x".to_vec(),
        value: None,
        effect: Effect::Ignored,
    }
}

/// Number spellings that `kstrto*` rejects whatever the type (`EINVAL`), with no `,`
/// (usable as array elements).
const BAD_NUMBERS: [&str; 24] = [
    "", "08", "09", "0x", "0X", "0xg", "1e3", "0b1", "+-5", "-+5", "--5", "+", "-", " 5", "5 ",
    "5\n\n", "5\r", "x", "1.0", "0x-1", "5x", "++1", "\n", "0x\n",
];

/// Bool spellings `kstrtobool` rejects (`EINVAL`), with no `,`.
const BAD_BOOLS: [&str; 12] = [
    "", "2", "o", "O", "ox", "o1", " y", "\ny", "x", "-1", "+1", "#",
];

/// Values of an integer type that fail, with their errno: out of range above (and beyond 64
/// bits) is `ERANGE`, below is `ERANGE` for signed types and `EINVAL` (a `-`) for unsigned
/// ones, bad syntax is `EINVAL`, overflow before garbage is `ERANGE`.
fn bad_int(lo: i128, hi: i128) -> BoxedStrategy<(Vec<u8>, Errno)> {
    let signed = lo < 0;
    let above = prop_oneof![Just(hi + 1), (hi + 1)..=(hi + (1i128 << 70))]
        .prop_flat_map(move |v| int_spelling(v, signed))
        .prop_map(|s| (s, Errno::ERANGE));
    let below = if signed {
        prop_oneof![Just(lo - 1), (lo - (1i128 << 70))..=(lo - 1)]
            .prop_flat_map(move |v| int_spelling(v, signed))
            .prop_map(|s| (s, Errno::ERANGE))
            .boxed()
    } else {
        prop_oneof![
            (1i128..=(1i128 << 70)).prop_map(|v| format!("-{v}").into_bytes()),
            Just(b"-0".to_vec()),
        ]
        .prop_map(|s| (s, Errno::EINVAL))
        .boxed()
    };
    let syntax = select(BAD_NUMBERS.to_vec()).prop_map(|s| (s.as_bytes().to_vec(), Errno::EINVAL));
    let garbage = Just((b"99999999999999999999x".to_vec(), Errno::ERANGE));
    prop_oneof![3 => above, 3 => below, 3 => syntax, 1 => garbage].boxed()
}

/// A failing value (not bare) for a scalar of `ty`, with its errno; `None` if there is none
/// for this type (a `bool_enable_only` element).
fn bad_scalar(ty: &ParamType, init: &Value) -> Option<BoxedStrategy<(Vec<u8>, Errno)>> {
    let bad_bool = || {
        select(BAD_BOOLS.to_vec())
            .prop_map(|s| (s.as_bytes().to_vec(), Errno::EINVAL))
            .boxed()
    };
    Some(match ty {
        ParamType::Bool | ParamType::Invbool | ParamType::Bint => bad_bool(),
        ParamType::BoolEnableOnly => {
            if as_bool(init) == Some(true) {
                prop_oneof![
                    bad_bool(),
                    bool_spelling(false).prop_map(|s| (s, Errno::EROFS)),
                ]
                .boxed()
            } else {
                bad_bool()
            }
        }
        ParamType::Charp => string_bytes(80)
            .prop_flat_map(|s| {
                (CHARP_MAX + 1..=CHARP_MAX + 40).prop_map(move |n| {
                    let mut v = s.clone();
                    v.retain(|&b| b != b',');
                    v.resize(n, b'c');
                    make_expressible(&mut v);
                    (v, Errno::ENOSPC)
                })
            })
            .boxed(),
        ParamType::String { maxlen } => {
            let m = *maxlen as usize;
            (string_bytes(m + 8), m.max(1)..=m + 8)
                .prop_map(|(mut v, n)| {
                    v.resize(n, b's');
                    v.truncate(n);
                    make_expressible(&mut v);
                    (v, Errno::ENOSPC)
                })
                .boxed()
        }
        ParamType::Array { .. } | ParamType::Custom { .. } => return None,
        other => {
            let (lo, hi) = int_range(other)?;
            bad_int(lo, hi)
        }
    })
}

/// A token for `table[param]` that fails ([`Effect::Fails`] with the errno the kernel
/// returns): out of range or malformed numbers, bad bools, clearing a `bool_enable_only` that
/// starts true (`EROFS`), `charp` values over 1024 bytes and `string` values of `maxlen`
/// bytes or more (`ENOSPC`), a bare name for a type that needs a value, arrays with too many
/// elements, a trailing comma at `max`, or a bad element after good ones. Written like
/// [`valid_token`]; failing strings that no form can express lose their quotes.
pub fn failing_token(table: &[ParamDecl], param: usize) -> BoxedStrategy<Token> {
    let Some(decl) = table.get(param).cloned() else {
        return Just(dummy_token()).boxed();
    };
    let ty = match &decl.ty {
        ParamType::Custom { storage, .. } => (**storage).clone(),
        t => t.clone(),
    };
    let name = name_variant(&decl.name);
    let fails = move |errno: Errno| Effect::Fails { param, errno };
    let with_text = |s: BoxedStrategy<(Vec<u8>, Errno)>, name: BoxedStrategy<Vec<u8>>| {
        s.prop_flat_map(move |(text, errno)| spelled(name.clone(), text, fails(errno)))
            .boxed()
    };
    let bare_fails = if takes_bare_name(&decl.ty) {
        None
    } else {
        Some(bare(name.clone(), fails(Errno::EINVAL)))
    };
    let valued: BoxedStrategy<Token> = match &ty {
        ParamType::Array { elem, max, .. } => {
            let max = *max as usize;
            let elem = (**elem).clone();
            let good = scalar_value(&elem, &Value::Int(0), true).prop_flat_map({
                let elem = elem.clone();
                move |v| {
                    let (s, _) = value_spelling(&elem, v);
                    s.prop_map(|mut s| {
                        s.retain(|&b| b != b',');
                        s
                    })
                }
            });
            let too_many = vec(good.clone(), max + 1..=max + 3)
                .prop_map(|es| (es.join(&b","[..]), Errno::EINVAL))
                .boxed();
            let trailing_comma = vec(good.clone(), max..=max)
                .prop_map(|es| {
                    let mut t = es.join(&b","[..]);
                    t.push(b',');
                    (t, Errno::EINVAL)
                })
                .boxed();
            let mut choices = vec![too_many, trailing_comma];
            if let Some(bad) = bad_scalar(&elem, &Value::Int(0)) {
                // Failing element values contain no `,` (see BAD_NUMBERS, BAD_BOOLS and the
                // long strings of bad_scalar), so the bad one stays one element, at a
                // position below `max`: its errno is the token's.
                let bad_elem = (vec(good.clone(), 0..max), bad, vec(good, 0..=2))
                    .prop_map(|(pre, (b, e), post)| {
                        let mut all = pre;
                        all.push(b);
                        all.extend(post);
                        (all.join(&b","[..]), e)
                    })
                    .boxed();
                choices.push(bad_elem);
            }
            let strat = proptest::strategy::Union::new(choices)
                .prop_map(|(mut t, e)| {
                    make_expressible(&mut t);
                    (t, e)
                })
                .boxed();
            with_text(strat, name.clone())
        }
        ty => match bad_scalar(ty, &decl.init) {
            Some(s) => with_text(s, name.clone()),
            None => return bare_fails.unwrap_or_else(|| Just(dummy_token()).boxed()),
        },
    };
    match bare_fails {
        Some(b) => prop_oneof![5 => valued, 1 => b].boxed(),
        None => valued,
    }
}

/// Names that match no entry of `table` (with `-` and `_` the same) and are not `dyndbg`,
/// `<x>.dyndbg` or `async_probe`: random names (with dots, dashes, digits), names of the
/// table in upper case or with something appended or after a dot, and `--` (which, with a
/// value, is an ordinary name).
pub fn unknown_name(table: &[ParamDecl]) -> BoxedStrategy<Vec<u8>> {
    let names: Vec<Vec<u8>> = table.iter().map(|d| d.name.as_bytes().to_vec()).collect();
    let known = names.clone();
    let derived = if names.is_empty() {
        Just(b"zz".to_vec()).boxed()
    } else {
        (select(names), 0u8..4)
            .prop_map(|(n, how)| match how {
                0 => n.to_ascii_uppercase(),
                1 => [&n[..], b"x"].concat(),
                2 => [&n[..], b".x"].concat(),
                _ => [&b"x"[..], &n[..]].concat(),
            })
            .boxed()
    };
    let random = (
        select(b"abcdefghijklmnopqrstuvwxyz".to_vec()),
        vec(
            select(b"abcdefghijklmnopqrstuvwxyz0123456789_-.".to_vec()),
            0..=8,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut n = vec![first];
            n.extend(rest);
            n
        });
    prop_oneof![
        4 => random,
        2 => derived,
        1 => select(vec!["x.y", "foo.bar.baz", "A", "--", "async-probe", "dyndbg.x", "_"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
    .prop_filter("matches the table or a callback", move |n| {
        let last = n.rsplit(|&b| b == b'.').next().unwrap_or(n);
        let after_dot = match n.iter().position(|&b| b == b'.') {
            Some(d) => &n[d + 1..],
            None => &n[..],
        };
        !known.iter().any(|k| names_match(k, n))
            && last != b"dyndbg"
            && after_dot != b"dyndbg"
            && n != b"async_probe"
    })
    .boxed()
}

/// A token the kernel ignores ([`Effect::Ignored`]): an unknown name (see [`unknown_name`])
/// bare or with a value, `async_probe` with or without a value, or a `dyndbg` query (for the
/// module, or for another module with `<name>.dyndbg`).
pub fn unknown_token(table: &[ParamDecl]) -> BoxedStrategy<Token> {
    let names = unknown_name(table);
    let value = prop_oneof![
        2 => vec(select(b"abcxyz0123-_=.,".to_vec()), 0..=6),
        1 => bool_spelling(true),
        1 => bool_spelling(false),
    ];
    let named = (names, proptest::option::weighted(0.7, value)).prop_filter_map(
        "bare --",
        |(name, value)| match value {
            None if name == b"--" => None,
            None => Some(Token {
                text: name.clone(),
                name,
                value: None,
                effect: Effect::Ignored,
            }),
            Some(v) => Some(Token {
                // The value may hold whitespace (a bool's tail): quote it if needed.
                text: best_form(&v)
                    .map(|(f, _)| f.spell(&name, &v))
                    .unwrap_or_default(),
                name,
                value: Some(v),
                effect: Effect::Ignored,
            }),
        },
    );
    let special = select(vec![
        ("async_probe", None),
        ("async_probe", Some("1")),
        ("async_probe", Some("0")),
        ("async_probe", Some("maybe")),
        ("dyndbg", Some("+p")),
        ("dyndbg", None),
        ("other.dyndbg", Some("-p")),
        ("dyndbg", Some("bogus query")),
    ])
    .prop_map(|(n, v)| {
        let name = n.as_bytes().to_vec();
        let value = v.map(|v| v.as_bytes().to_vec());
        let text = match &value {
            None => name.clone(),
            Some(v) => best_form(v)
                .map(|(f, _)| f.spell(&name, v))
                .unwrap_or_default(),
        };
        Token {
            text,
            name,
            value,
            effect: Effect::Ignored,
        }
    });
    prop_oneof![6 => named, 1 => special].boxed()
}

/// `--` or `"--"`: [`Effect::Stops`].
pub fn dashes_token() -> BoxedStrategy<Token> {
    any::<bool>()
        .prop_map(|quoted| Token {
            text: if quoted {
                b"\"--\"".to_vec()
            } else {
                b"--".to_vec()
            },
            name: b"--".to_vec(),
            value: None,
            effect: Effect::Stops,
        })
        .boxed()
}

/// A valid or unknown token with one `"` inserted somewhere (or a lone `"`):
/// [`Effect::Unpredictable`].
pub fn stray_quote_token(table: &[ParamDecl]) -> BoxedStrategy<Token> {
    let base = prop_oneof![any_valid_token(table), unknown_token(table)];
    (base, any::<Index>(), 0u8..8)
        .prop_map(|(t, ix, lone)| {
            let text = if lone == 0 {
                b"\"".to_vec()
            } else {
                let mut text = t.text.clone();
                let at = ix.index(text.len() + 1);
                text.insert(at, b'"');
                text
            };
            Token {
                text,
                effect: Effect::Unpredictable,
                ..t
            }
        })
        .boxed()
}

/// Indices of the entries [`valid_token`] and [`failing_token`] handle (not `Custom`).
fn standard_params(table: &[ParamDecl]) -> Vec<usize> {
    table
        .iter()
        .enumerate()
        .filter(|(_, d)| !matches!(d.ty, ParamType::Custom { .. }))
        .map(|(i, _)| i)
        .collect()
}

/// [`valid_token`] for any standard (non-`Custom`) entry of `table`.
pub fn any_valid_token(table: &[ParamDecl]) -> BoxedStrategy<Token> {
    let t = table.to_vec();
    let idx = standard_params(table);
    if idx.is_empty() {
        return Just(dummy_token()).boxed();
    }
    select(idx)
        .prop_flat_map(move |i| valid_token(&t, i))
        .boxed()
}

/// [`failing_token`] for any standard (non-`Custom`) entry of `table`.
pub fn any_failing_token(table: &[ParamDecl]) -> BoxedStrategy<Token> {
    let t = table.to_vec();
    let idx = standard_params(table);
    if idx.is_empty() {
        return Just(dummy_token()).boxed();
    }
    select(idx)
        .prop_flat_map(move |i| failing_token(&t, i))
        .boxed()
}

/// A token that ends where it is written (no [`Effect::Stops`] or
/// [`Effect::Unpredictable`]): valid, failing or unknown, in proportions `valid`, `failing`,
/// `unknown`.
pub fn self_contained_token(
    table: &[ParamDecl],
    valid: u32,
    failing: u32,
    unknown: u32,
) -> BoxedStrategy<Token> {
    prop_oneof![
        valid => any_valid_token(table),
        failing => any_failing_token(table),
        unknown => unknown_token(table),
    ]
    .boxed()
}

/// Assemble tokens into a [`ParamString`] with generated whitespace (before, between, and
/// possibly after), then relabel refused `bool_enable_only` sets.
pub fn assemble(
    table: &[ParamDecl],
    tokens: BoxedStrategy<Vec<Token>>,
) -> BoxedStrategy<ParamString> {
    let t = table.to_vec();
    tokens
        .prop_flat_map(|toks| {
            let n = toks.len();
            (
                Just(toks),
                proptest::option::weighted(0.2, separator()),
                vec(separator(), n),
                any::<bool>(),
            )
        })
        .prop_map(move |(toks, lead, mut seps, trailing)| {
            if !trailing && let Some(s) = seps.last_mut() {
                s.clear();
            }
            let mut tokens: Vec<(Token, Vec<u8>)> = toks.into_iter().zip(seps).collect();
            settle(&t, &mut tokens);
            ParamString {
                lead: lead.unwrap_or_default(),
                tokens,
            }
        })
        .boxed()
}

/// Valid parameter strings for `table`: 0 to 12 [`valid_token`]s (names may repeat; the
/// last one wins) separated by any of the kernel's whitespace. Loading one succeeds; its
/// [`ParamString::prediction`] lists the values set.
pub fn valid_args(table: &[ParamDecl]) -> BoxedStrategy<ParamString> {
    let t = table.to_vec();
    assemble(table, vec(any_valid_token(table), 0..=12).boxed())
        .prop_map(move |mut s| {
            // A bool_enable_only cleared after being set fails: leave such tokens out.
            s.tokens
                .retain(|(tok, _)| !matches!(tok.effect, Effect::Fails { .. }));
            settle(&t, &mut s.tokens);
            s
        })
        .boxed()
}

/// Mixed parameter strings for `table`: 1 to 10 tokens, valid, failing, unknown, `--` and
/// unbalanced quotes mixed, with any whitespace between them.
pub fn mixed_args(table: &[ParamDecl]) -> BoxedStrategy<ParamString> {
    let tok = prop_oneof![
        5 => any_valid_token(table),
        4 => any_failing_token(table),
        2 => unknown_token(table),
        1 => dashes_token(),
        1 => stray_quote_token(table),
    ];
    assemble(table, vec(tok, 1..=10).boxed())
}

/// Arbitrary byte strings: any bytes; bytes the grammar cares about (quotes, `=`, `,`, `-`,
/// `.`, every separator, NUL, digits); pieces of parameter syntax and table names glued
/// together; and [`mixed_args`] strings with bytes inserted, removed or replaced.
pub fn arbitrary_args(table: &[ParamDecl]) -> BoxedStrategy<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = [
        "=",
        "\"",
        " ",
        "\t",
        "\n",
        ",",
        "--",
        "-",
        "_",
        "0x",
        "0",
        "1",
        "-1",
        "y",
        "off",
        ".",
        "dyndbg",
        "async_probe",
        "\0",
        "\u{a0}",
        "\u{e0}",
        "+p",
        "99999999999999999999",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    pieces.extend(table.iter().map(|d| d.name.as_bytes().to_vec()));
    let grammar = vec(
        select(b"\"=,-_. \t\n\x0b\x0c\r\xa0\x00019axyp".to_vec()),
        0..=64,
    );
    let glued = vec(select(pieces), 0..=16).prop_map(|ps| ps.concat());
    let mutated = (
        mixed_args(table),
        vec((any::<Index>(), any::<u8>(), 0u8..3), 1..=4),
    )
        .prop_map(|(s, edits)| {
            let mut b = s.to_bytes();
            for (ix, byte, op) in edits {
                let at = ix.index(b.len() + 1);
                match op {
                    0 => b.insert(at, byte),
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    _ if at < b.len() => b[at] = byte,
                    _ => b.push(byte),
                }
            }
            b
        });
    prop_oneof![
        2 => vec(any::<u8>(), 0..=64),
        2 => grammar,
        2 => glued,
        3 => mutated,
    ]
    .boxed()
}
