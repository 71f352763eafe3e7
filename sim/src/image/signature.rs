//! The appended module signature: `struct module_signature` and the marker
//! (`include/linux/module_signature.h`).

use super::{ImageError, bytes_at};

/// `MODULE_SIG_STRING`: the marker at the very end of a signed module.
pub const MODULE_SIG_STRING: &[u8; 28] = b"~Module signature appended~\n";

/// `PKEY_ID_PKCS7`: the only `id_type` the kernel accepts.
pub const PKEY_ID_PKCS7: u8 = 2;

/// `struct module_signature` (12 bytes, just before the marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSignature {
    /// Public-key crypto algorithm (must be 0 for PKCS#7).
    pub algo: u8,
    /// Digest algorithm (must be 0).
    pub hash: u8,
    /// Key identifier type (`PKEY_ID_PKCS7` = 2).
    pub id_type: u8,
    /// Length of the signer's name (must be 0).
    pub signer_len: u8,
    /// Length of the key identifier (must be 0).
    pub key_id_len: u8,
    /// Padding (must be 0).
    pub pad: [u8; 3],
    /// Length of the signature data (big-endian in the file).
    pub sig_len: u32,
}

impl ModuleSignature {
    /// `sizeof(struct module_signature)`.
    pub const SIZE: usize = 12;

    /// Reads the 12 bytes at `offset` of `data`; fails with [`ImageError::OutOfBounds`] when
    /// they are not all there.
    pub fn parse(data: &[u8], offset: u64) -> Result<ModuleSignature, ImageError> {
        let b = bytes_at(data, offset, Self::SIZE as u64, "module_signature")?;
        let mut raw = [0u8; Self::SIZE];
        raw.copy_from_slice(b);
        Ok(ModuleSignature {
            algo: raw[0],
            hash: raw[1],
            id_type: raw[2],
            signer_len: raw[3],
            key_id_len: raw[4],
            pad: [raw[5], raw[6], raw[7]],
            sig_len: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
        })
    }

    /// The 12 bytes of the structure. Cannot fail.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let l = self.sig_len.to_be_bytes();
        [
            self.algo,
            self.hash,
            self.id_type,
            self.signer_len,
            self.key_id_len,
            self.pad[0],
            self.pad[1],
            self.pad[2],
            l[0],
            l[1],
            l[2],
            l[3],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structure_round_trips_with_a_big_endian_length() {
        let ms = ModuleSignature {
            algo: 0,
            hash: 0,
            id_type: 2,
            signer_len: 0,
            key_id_len: 0,
            pad: [0; 3],
            sig_len: 0x2a9,
        };
        let b = ms.to_bytes();
        assert_eq!(&b[8..], &[0, 0, 2, 0xa9]);
        assert_eq!(ModuleSignature::parse(&b, 0), Ok(ms));
        assert!(ModuleSignature::parse(&b, 1).is_err());
    }
}
