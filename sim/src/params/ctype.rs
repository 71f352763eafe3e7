//! The kernel's character classes (`lib/ctype.c` `_ctype[]`, `include/linux/ctype.h`), which
//! differ from the C library's: they are Latin-1, so 0xA0 (no-break space) is a space.

const C: u8 = 0x08; // cntrl
const S: u8 = 0x20; // white space
const P: u8 = 0x10; // punct
const D: u8 = 0x04; // digit
const U: u8 = 0x01; // upper
const L: u8 = 0x02; // lower
const X: u8 = 0x40; // hex digit
const SP: u8 = 0x80; // hard space

/// `_ctype[]` of `lib/ctype.c`, identical in 6.1 and 6.12.
const CTYPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i {
            0x09..=0x0d => C | S,
            0x00..=0x1f | 0x7f => C,
            0x20 => S | SP,
            0x30..=0x39 => D,
            0x41..=0x46 => U | X,
            0x47..=0x5a => U,
            0x61..=0x66 => L | X,
            0x67..=0x7a => L,
            0x21..=0x7e => P,
            0x80..=0x9f => 0,
            0xa0 => S | SP,
            0xa1..=0xbf => P,
            0xd7 => P,
            0xc0..=0xde => U,
            0xdf => L,
            0xf7 => P,
            _ => L, // 0xe0..=0xff
        };
        i += 1;
    }
    t
};

/// `isspace()` (`include/linux/ctype.h`): `\t \n \v \f \r`, space and 0xA0.
pub fn isspace(c: u8) -> bool {
    CTYPE[usize::from(c)] & S != 0
}

/// `isxdigit()` (`include/linux/ctype.h`): `0-9 a-f A-F`.
pub fn isxdigit(c: u8) -> bool {
    CTYPE[usize::from(c)] & (D | X) != 0
}

/// `isalpha()` (`include/linux/ctype.h`), Latin-1 letters included.
pub fn isalpha(c: u8) -> bool {
    CTYPE[usize::from(c)] & (U | L) != 0
}

/// `_tolower()` (`include/linux/ctype.h`): `c | 0x20`, only meaningful for letters.
pub fn fast_tolower(c: u8) -> u8 {
    c | 0x20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_the_kernel_set() {
        let spaces: Vec<u8> = (0..=255u8).filter(|&c| isspace(c)).collect();
        assert_eq!(spaces, vec![9, 10, 11, 12, 13, 32, 0xa0]);
        let hex: Vec<u8> = (0..=255u8).filter(|&c| isxdigit(c)).collect();
        assert_eq!(hex, b"0123456789ABCDEFabcdef".to_vec());
        assert!(isalpha(b'q') && isalpha(0xc0) && isalpha(0xff) && !isalpha(0xd7));
        assert!(!isalpha(0xa0) && !isalpha(b'_') && !isalpha(b'1'));
    }
}
