//! Integer and boolean conversion exactly as `lib/kstrtox.c` does it (identical in 6.1 and
//! 6.12 for every input: 6.12 only spells `c | 0x20` as `_tolower(c)`).
//!
//! Inputs are C strings: a slice ends at its first NUL byte or at its end, whichever comes
//! first. Errors are `EINVAL` (syntax) and `ERANGE` (overflow), as the kernel returns them.

use super::ctype::{fast_tolower, isxdigit};
use crate::errno::Errno;

/// `KSTRTOX_OVERFLOW` (`lib/kstrtox.h`): the overflow bit of `_parse_integer_limit`'s result.
pub const KSTRTOX_OVERFLOW: u32 = 1 << 31;

/// Byte `i` of the C string `s`, 0 at and after its end.
pub(crate) fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// The C string in `s`: the bytes before the first NUL.
pub(crate) fn cstr(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(n) => s.get(..n).unwrap_or(s),
        None => s,
    }
}

/// `_parse_integer_fixup_radix` (`lib/kstrtox.c`): detects the base when `base` is 0 and
/// skips a `0x` prefix for base 16. Returns the new start offset and the base.
pub fn parse_integer_fixup_radix(s: &[u8], base: u32) -> (usize, u32) {
    let mut base = base;
    if base == 0 {
        if at(s, 0) == b'0' {
            if fast_tolower(at(s, 1)) == b'x' && isxdigit(at(s, 2)) {
                base = 16;
            } else {
                base = 8;
            }
        } else {
            base = 10;
        }
    }
    if base == 16 && at(s, 0) == b'0' && fast_tolower(at(s, 1)) == b'x' {
        (2, base)
    } else {
        (0, base)
    }
}

/// `_parse_integer_limit` (`lib/kstrtox.c`): converts at most `max_chars` digits of `base`;
/// returns the number of characters consumed, or-ed with [`KSTRTOX_OVERFLOW`] on overflow, and
/// the (wrapped) value.
pub fn parse_integer_limit(s: &[u8], base: u32, max_chars: usize) -> (u32, u64) {
    let mut res: u64 = 0;
    let mut rv: u32 = 0;
    let base64 = u64::from(base);
    for i in 0..max_chars {
        let c = at(s, i);
        let lc = fast_tolower(c);
        let val = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else if (b'a'..=b'f').contains(&lc) {
            u32::from(lc - b'a') + 10
        } else {
            break;
        };
        if val >= base {
            break;
        }
        let val = u64::from(val);
        if res & (!0u64 << 60) != 0 && base64 != 0 && res > (u64::MAX - val) / base64 {
            rv |= KSTRTOX_OVERFLOW;
        }
        res = res.wrapping_mul(base64).wrapping_add(val);
        rv = rv.wrapping_add(1);
    }
    (rv, res)
}

/// `_parse_integer` (`lib/kstrtox.c`): [`parse_integer_limit`] with `INT_MAX` characters.
pub fn parse_integer(s: &[u8], base: u32) -> (u32, u64) {
    parse_integer_limit(s, base, i32::MAX as usize)
}

/// `_kstrtoull` (`lib/kstrtox.c`): no sign; one trailing `\n` allowed; overflow is reported
/// before trailing garbage.
fn kstrtoull_nosign(s: &[u8], base: u32) -> Result<u64, Errno> {
    let (off, base) = parse_integer_fixup_radix(s, base);
    let s = s.get(off..).unwrap_or(&[]);
    let (rv, res) = parse_integer(s, base);
    if rv & KSTRTOX_OVERFLOW != 0 {
        return Err(Errno::ERANGE);
    }
    if rv == 0 {
        return Err(Errno::EINVAL);
    }
    let mut i = rv as usize;
    if at(s, i) == b'\n' {
        i += 1;
    }
    if at(s, i) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(res)
}

/// `kstrtoull` (`lib/kstrtox.c`): one leading `+` is skipped; `-` is an error.
pub fn kstrtoull(s: &[u8], base: u32) -> Result<u64, Errno> {
    let s = if at(s, 0) == b'+' {
        s.get(1..).unwrap_or(&[])
    } else {
        s
    };
    kstrtoull_nosign(s, base)
}

/// `kstrtoll` (`lib/kstrtox.c`): `-` then the unsigned digits (no `+` after it), or
/// [`kstrtoull`].
pub fn kstrtoll(s: &[u8], base: u32) -> Result<i64, Errno> {
    if at(s, 0) == b'-' {
        let tmp = kstrtoull_nosign(s.get(1..).unwrap_or(&[]), base)?;
        let neg = tmp.wrapping_neg() as i64;
        if neg > 0 {
            return Err(Errno::ERANGE);
        }
        Ok(neg)
    } else {
        let tmp = kstrtoull(s, base)?;
        if (tmp as i64) < 0 {
            return Err(Errno::ERANGE);
        }
        Ok(tmp as i64)
    }
}

/// `kstrtoul` (`include/linux/kstrtox.h`): [`kstrtoull`] on LP64.
pub fn kstrtoul(s: &[u8], base: u32) -> Result<u64, Errno> {
    kstrtoull(s, base)
}

/// `kstrtol` (`include/linux/kstrtox.h`): [`kstrtoll`] on LP64.
pub fn kstrtol(s: &[u8], base: u32) -> Result<i64, Errno> {
    kstrtoll(s, base)
}

/// `kstrtouint` (`lib/kstrtox.c`).
pub fn kstrtouint(s: &[u8], base: u32) -> Result<u32, Errno> {
    let tmp = kstrtoull(s, base)?;
    u32::try_from(tmp).map_err(|_| Errno::ERANGE)
}

/// `kstrtoint` (`lib/kstrtox.c`).
pub fn kstrtoint(s: &[u8], base: u32) -> Result<i32, Errno> {
    let tmp = kstrtoll(s, base)?;
    i32::try_from(tmp).map_err(|_| Errno::ERANGE)
}

/// `kstrtou16` (`lib/kstrtox.c`).
pub fn kstrtou16(s: &[u8], base: u32) -> Result<u16, Errno> {
    let tmp = kstrtoull(s, base)?;
    u16::try_from(tmp).map_err(|_| Errno::ERANGE)
}

/// `kstrtos16` (`lib/kstrtox.c`).
pub fn kstrtos16(s: &[u8], base: u32) -> Result<i16, Errno> {
    let tmp = kstrtoll(s, base)?;
    i16::try_from(tmp).map_err(|_| Errno::ERANGE)
}

/// `kstrtou8` (`lib/kstrtox.c`).
pub fn kstrtou8(s: &[u8], base: u32) -> Result<u8, Errno> {
    let tmp = kstrtoull(s, base)?;
    u8::try_from(tmp).map_err(|_| Errno::ERANGE)
}

/// `kstrtos8` (`lib/kstrtox.c`).
pub fn kstrtos8(s: &[u8], base: u32) -> Result<i8, Errno> {
    let tmp = kstrtoll(s, base)?;
    i8::try_from(tmp).map_err(|_| Errno::ERANGE)
}

/// `kstrtobool` (`lib/kstrtox.c`; 6.1's `strtobool` is an inline alias): only the first one
/// or two bytes count. `None` is the NULL pointer (`EINVAL`).
pub fn kstrtobool(s: Option<&[u8]>) -> Result<bool, Errno> {
    let s = s.ok_or(Errno::EINVAL)?;
    match at(s, 0) {
        b'y' | b'Y' | b't' | b'T' | b'1' => Ok(true),
        b'n' | b'N' | b'f' | b'F' | b'0' => Ok(false),
        b'o' | b'O' => match at(s, 1) {
            b'n' | b'N' => Ok(true),
            b'f' | b'F' => Ok(false),
            _ => Err(Errno::EINVAL),
        },
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EINVAL: Errno = Errno::EINVAL;
    const ERANGE: Errno = Errno::ERANGE;

    #[test]
    fn radix_detection() {
        assert_eq!(parse_integer_fixup_radix(b"0x1f", 0), (2, 16));
        assert_eq!(parse_integer_fixup_radix(b"0X1f", 0), (2, 16));
        assert_eq!(parse_integer_fixup_radix(b"0x", 0), (0, 8));
        assert_eq!(parse_integer_fixup_radix(b"0xg", 0), (0, 8));
        assert_eq!(parse_integer_fixup_radix(b"017", 0), (0, 8));
        assert_eq!(parse_integer_fixup_radix(b"17", 0), (0, 10));
        assert_eq!(parse_integer_fixup_radix(b"", 0), (0, 10));
        // An explicit base 16 skips "0x" even without a digit after it.
        assert_eq!(parse_integer_fixup_radix(b"0x", 16), (2, 16));
        assert_eq!(parse_integer_fixup_radix(b"0x1", 10), (0, 10));
    }

    #[test]
    fn parse_integer_counts_and_flags_overflow() {
        assert_eq!(parse_integer(b"123z", 10), (3, 123));
        assert_eq!(parse_integer(b"fF", 16), (2, 255));
        assert_eq!(parse_integer(b"9", 8), (0, 0));
        assert_eq!(parse_integer(b"18446744073709551615", 10).0, 20);
        let (rv, _) = parse_integer(b"18446744073709551616", 10);
        assert_eq!(rv, KSTRTOX_OVERFLOW | 20);
        assert_eq!(parse_integer_limit(b"12345", 10, 2), (2, 12));
        assert_eq!(parse_integer(b"12\x0034", 10), (2, 12));
    }

    #[test]
    fn unsigned_edges() {
        assert_eq!(kstrtoull(b"0", 0), Ok(0));
        assert_eq!(kstrtoull(b"+0", 0), Ok(0));
        assert_eq!(kstrtoull(b"++0", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"-0", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"+", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b" 1", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"1 ", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"1\n", 0), Ok(1));
        assert_eq!(kstrtoull(b"1\n\n", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"1\r\n", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"\n", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"0x", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"0x\n", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"0xg", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"0x10", 0), Ok(16));
        assert_eq!(kstrtoull(b"0X1F\n", 0), Ok(31));
        assert_eq!(kstrtoull(b"010", 0), Ok(8));
        assert_eq!(kstrtoull(b"08", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"0b1", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"1e3", 0), Err(EINVAL));
        assert_eq!(kstrtoull(b"18446744073709551615", 0), Ok(u64::MAX));
        assert_eq!(kstrtoull(b"18446744073709551616", 0), Err(ERANGE));
        assert_eq!(kstrtoull(b"0xffffffffffffffff", 0), Ok(u64::MAX));
        assert_eq!(kstrtoull(b"0x10000000000000000", 0), Err(ERANGE));
        assert_eq!(kstrtoull(b"01777777777777777777777", 0), Ok(u64::MAX));
        assert_eq!(kstrtoull(b"02000000000000000000000", 0), Err(ERANGE));
        // Overflow wins over trailing garbage.
        assert_eq!(kstrtoull(b"99999999999999999999x", 0), Err(ERANGE));
        // The string ends at a NUL.
        assert_eq!(kstrtoull(b"12\x00zz", 0), Ok(12));
        // Explicit bases.
        assert_eq!(kstrtoull(b"ff", 16), Ok(255));
        assert_eq!(kstrtoull(b"0xff", 16), Ok(255));
        assert_eq!(kstrtoull(b"0x", 16), Err(EINVAL));
        assert_eq!(kstrtoull(b"0x12", 10), Err(EINVAL));
    }

    #[test]
    fn signed_edges() {
        assert_eq!(kstrtoll(b"-0", 0), Ok(0));
        assert_eq!(kstrtoll(b"-9223372036854775808", 0), Ok(i64::MIN));
        assert_eq!(kstrtoll(b"-9223372036854775809", 0), Err(ERANGE));
        assert_eq!(kstrtoll(b"9223372036854775807", 0), Ok(i64::MAX));
        assert_eq!(kstrtoll(b"9223372036854775808", 0), Err(ERANGE));
        assert_eq!(kstrtoll(b"+9223372036854775807", 0), Ok(i64::MAX));
        assert_eq!(kstrtoll(b"-+5", 0), Err(EINVAL));
        assert_eq!(kstrtoll(b"+-5", 0), Err(EINVAL));
        assert_eq!(kstrtoll(b"--5", 0), Err(EINVAL));
        assert_eq!(kstrtoll(b"-", 0), Err(EINVAL));
        assert_eq!(kstrtoll(b"-0x10", 0), Ok(-16));
        assert_eq!(kstrtoll(b"-010", 0), Ok(-8));
        assert_eq!(kstrtoll(b"0x-1", 0), Err(EINVAL));
        assert_eq!(kstrtoll(b"-18446744073709551616", 0), Err(ERANGE));
        assert_eq!(kstrtoll(b"-18446744073709551615", 0), Err(ERANGE));
        assert_eq!(kstrtoll(b"-5\n", 0), Ok(-5));
    }

    #[test]
    fn sized_wrappers() {
        assert_eq!(kstrtou8(b"255", 0), Ok(255));
        assert_eq!(kstrtou8(b"256", 0), Err(ERANGE));
        assert_eq!(kstrtou8(b"-1", 0), Err(EINVAL));
        assert_eq!(kstrtos8(b"-128", 0), Ok(-128));
        assert_eq!(kstrtos8(b"128", 0), Err(ERANGE));
        assert_eq!(kstrtou16(b"0xffff", 0), Ok(65535));
        assert_eq!(kstrtou16(b"65536", 0), Err(ERANGE));
        assert_eq!(kstrtos16(b"-0x8000", 0), Ok(-32768));
        assert_eq!(kstrtos16(b"0x8000", 0), Err(ERANGE));
        assert_eq!(kstrtos16(b"-32769", 0), Err(ERANGE));
        assert_eq!(kstrtouint(b"4294967295", 0), Ok(u32::MAX));
        assert_eq!(kstrtouint(b"4294967296", 0), Err(ERANGE));
        assert_eq!(kstrtouint(b"-1", 0), Err(EINVAL));
        assert_eq!(kstrtoint(b"-2147483648", 0), Ok(i32::MIN));
        assert_eq!(kstrtoint(b"2147483648", 0), Err(ERANGE));
        assert_eq!(kstrtoint(b"-2147483649", 0), Err(ERANGE));
        assert_eq!(kstrtoint(b"999999999999999999999999999999", 0), Err(ERANGE));
        assert_eq!(kstrtoul(b"18446744073709551615", 0), Ok(u64::MAX));
        assert_eq!(kstrtol(b"-1", 0), Ok(-1));
    }

    #[test]
    fn bools() {
        for s in [
            &b"y"[..],
            b"Y",
            b"yes",
            b"t",
            b"True",
            b"1",
            b"1234",
            b"on",
            b"ON",
            b"oN",
        ] {
            assert_eq!(kstrtobool(Some(s)), Ok(true), "{s:?}");
        }
        for s in [
            &b"n"[..],
            b"No",
            b"f",
            b"F",
            b"0",
            b"0x1",
            b"off",
            b"of",
            b"OF",
        ] {
            assert_eq!(kstrtobool(Some(s)), Ok(false), "{s:?}");
        }
        for s in [&b""[..], b"o", b"ox", b"2", b" y", b"\ny", b"x", b"\0y"] {
            assert_eq!(kstrtobool(Some(s)), Err(EINVAL), "{s:?}");
        }
        assert_eq!(kstrtobool(None), Err(EINVAL));
    }
}
