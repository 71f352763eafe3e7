//! `fnmatch(pattern, string, 0)` as glibc does it in the C locale (kmod never sets a locale):
//! `*`, `?`, bracket expressions (`[a-z]`, `[!x]`, `[^x]`, `[]x]`, `[[:digit:]]`), backslash
//! escapes; `/` and leading dots are ordinary characters. An unterminated `[` is an ordinary
//! character.

/// Whether `s` matches the pattern `p`.
pub(crate) fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    // The last `*` seen (pattern index after it) and the string index it is tried from: every
    // other token matches exactly one byte, so backtracking to the last star is enough.
    let mut star: Option<(usize, usize)> = None;
    loop {
        let step = match p.get(pi) {
            None if si == s.len() => return true,
            None => None,
            Some(b'*') => {
                while p.get(pi) == Some(&b'*') {
                    pi += 1;
                }
                if pi == p.len() {
                    return true;
                }
                star = Some((pi, si));
                continue;
            }
            Some(_) => match s.get(si) {
                None => None,
                Some(&c) => one(p, pi, c),
            },
        };
        match step {
            Some(next) => {
                pi = next;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) if ss < s.len() => {
                    star = Some((sp, ss + 1));
                    pi = sp;
                    si = ss + 1;
                }
                _ => return false,
            },
        }
    }
}

/// Whether the token at `p[pi]` (not a `*`) matches byte `c`; the index after the token if so.
fn one(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    match *p.get(pi)? {
        b'?' => Some(pi + 1),
        b'\\' => {
            // A trailing backslash matches nothing.
            let e = *p.get(pi + 1)?;
            (e == c).then_some(pi + 2)
        }
        b'[' => match bracket(p, pi + 1, c) {
            Some((true, next)) => Some(next),
            Some((false, _)) => None,
            None => (c == b'[').then_some(pi + 1),
        },
        x => (x == c).then_some(pi + 1),
    }
}

/// A bracket expression starting at `p[start]` (after the `[`) against byte `c`: whether it
/// matches and the index after its `]`; `None` when it is unterminated (then `[` is literal).
fn bracket(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut b = *p.get(i)?;
        i += 1;
        if b == b']' && !first {
            return Some((matched != negate, i));
        }
        first = false;
        if b == b'[' && p.get(i) == Some(&b':') {
            let rest = p.get(i + 1..)?;
            if let Some(end) = rest.windows(2).position(|w| w == b":]") {
                let name = rest.get(..end)?;
                i += 1 + end + 2;
                match class(name, c) {
                    Some(true) => matched = true,
                    Some(false) => {}
                    // An unknown class makes the whole pattern fail.
                    None => return Some((false, i)),
                }
                continue;
            }
        }
        if b == b'\\' {
            b = *p.get(i)?;
            i += 1;
        }
        // A range `b-e`, unless the `-` is last before `]`.
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&n| n != b']') {
            let mut e = *p.get(i + 1)?;
            i += 2;
            if e == b'\\' {
                e = *p.get(i)?;
                i += 1;
            }
            if b <= c && c <= e {
                matched = true;
            }
        } else if b == c {
            matched = true;
        }
    }
}

/// Membership of byte `c` in a POSIX character class, C locale; `None` for an unknown class
/// (glibc then matches nothing).
fn class(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn globs() {
        let yes: [(&str, &str); 12] = [
            (
                "pci:v00008086d*sv*sd*bc*sc*i*",
                "pci:v00008086d00001000sv0sd0bc02sc00i00",
            ),
            ("*", ""),
            ("a?c", "abc"),
            ("a[bc]d", "acd"),
            ("a[!b]d", "acd"),
            ("a[^b]d", "acd"),
            ("a[]]d", "a]d"),
            ("a[a-c]d", "abd"),
            ("a[[:digit:]]", "a7"),
            ("a\\*", "a*"),
            ("a[", "a["),
            ("x*y*z", "xayyybzz"),
        ];
        for (p, s) in yes {
            assert!(fnmatch(p.as_bytes(), s.as_bytes()), "{p} {s}");
        }
        let no: [(&str, &str); 8] = [
            ("pci:v00008086d*sv*", "pci:v00001234d0sv0"),
            ("a?c", "ac"),
            ("a[!b]d", "abd"),
            ("a[[:digit:]]", "ax"),
            ("a[[:bogus:]]", "ax"),
            ("a\\", "a\\"),
            ("x*y*z", "xayyybzza"),
            ("abc", "abcd"),
        ];
        for (p, s) in no {
            assert!(!fnmatch(p.as_bytes(), s.as_bytes()), "{p} {s}");
        }
    }
}
