//! `__versions`: the modversions CRCs a module was built against (`struct modversion_info`).

use super::{ImageError, MODULE_NAME_LEN, bytes_at, decode_bytes};

/// `sizeof(struct modversion_info)` on 64-bit: `unsigned long crc; char name[56]`.
pub const MODVERSION_INFO_SIZE: usize = 64;

/// One `struct modversion_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// The CRC (`unsigned long`; the kernels compare its low 32 bits or all of it, see
    /// `check_version()`).
    pub crc: u64,
    /// The symbol name: the bytes of `name[56]` up to the first NUL (all 56 without one).
    pub name: String,
}

impl VersionEntry {
    /// The 64 bytes of this entry (name truncated to 55 bytes and NUL-padded). Cannot fail.
    pub fn to_bytes(&self) -> [u8; MODVERSION_INFO_SIZE] {
        let mut out = [0u8; MODVERSION_INFO_SIZE];
        out[..8].copy_from_slice(&self.crc.to_le_bytes());
        let n = self.name.len().min(MODULE_NAME_LEN - 1);
        out[8..8 + n].copy_from_slice(&self.name.as_bytes()[..n]);
        out
    }
}

/// Reads the `size / 64` entries at `offset` of `image` (what `check_version()` walks); fails
/// with [`ImageError::OutOfBounds`] when they lie outside `image`.
pub fn parse_versions(
    image: &[u8],
    offset: u64,
    size: u64,
) -> Result<Vec<VersionEntry>, ImageError> {
    let count = size / MODVERSION_INFO_SIZE as u64;
    let bytes = bytes_at(
        image,
        offset,
        count.saturating_mul(MODVERSION_INFO_SIZE as u64),
        "__versions",
    )?;
    Ok(bytes
        .chunks_exact(MODVERSION_INFO_SIZE)
        .map(|e| {
            let (crc, name) = e.split_at(8);
            let mut c = [0u8; 8];
            c.copy_from_slice(crc);
            let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            VersionEntry {
                crc: u64::from_le_bytes(c),
                name: decode_bytes(&name[..n]),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_partial_entry_is_ignored() {
        let a = VersionEntry {
            crc: 0x5002_fa32,
            name: "module_layout".into(),
        };
        let b = VersionEntry {
            crc: 0xffff_ffff_bbbe_da21,
            name: "param_ops_int".into(),
        };
        let mut bytes = [a.to_bytes(), b.to_bytes()].concat();
        bytes.extend_from_slice(&[1, 2, 3]);
        let n = bytes.len() as u64;
        assert_eq!(parse_versions(&bytes, 0, n), Ok(vec![a, b]));
        assert!(parse_versions(&bytes, 64, 128).is_err());
    }
}
