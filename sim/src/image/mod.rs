//! Byte views over a module image and the validated representations the load path decides on.
//!
//! smoltcp-style: the views read fields out of the bytes through checked accessors (the ELF
//! structures through `object`'s low-level API, little-endian 64-bit as both modelled kernels
//! read them); the representations ([`Section`], [`Symbol`], [`Rela`], [`ModInfo`],
//! [`VersionEntry`], [`ModuleSignature`], [`Pkcs7Info`], [`LoadInfo`]) are owned values built
//! from them.
//!
//! *Invariant:* nothing here panics on any input, and no allocation is larger than what the
//! input can hold (every count read from the file is capped by the bytes that back it); a bad
//! offset or size is an [`ImageError`].
#![warn(missing_docs)]

mod elf;
mod load_info;
mod modinfo;
pub(crate) mod pkcs7;
mod signature;
mod versions;

pub use elf::{
    ELF_HEADER_SIZE, ElfHeader, LE, RELA_SIZE, Rela, SECTION_HEADER_SIZE, SYMBOL_SIZE, Section,
    Symbol,
};
pub use load_info::{Indices, LoadInfo};
pub use modinfo::{ModInfo, ModInfoEntry};
pub use pkcs7::{
    CertificateId, Pkcs7Error, Pkcs7Info, SignerId, SignerInfoSummary, parse_certificate_id,
    parse_pkcs7,
};
pub use signature::{MODULE_SIG_STRING, ModuleSignature, PKEY_ID_PKCS7};
pub use versions::{MODVERSION_INFO_SIZE, VersionEntry, parse_versions};

/// `MODULE_NAME_LEN` on 64-bit kernels: `64 - sizeof(unsigned long)`.
pub const MODULE_NAME_LEN: usize = 56;

/// Why a view could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// A range of bytes lies (partly) outside the image.
    #[error("{what}: {size:#x} bytes at offset {offset:#x} are outside the {len:#x}-byte image")]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Its offset in the image.
        offset: u64,
        /// Its size.
        size: u64,
        /// The image length the read was bounded by.
        len: usize,
    },
    /// A section index that the image does not have.
    #[error("no section with index {0}")]
    NoSection(usize),
    /// A structure that does not have the expected shape.
    #[error("{0}")]
    Malformed(String),
}

/// Text from bytes of the image (names, `.modinfo` values) as the kernel log and the recordings
/// show them: valid UTF-8 is kept, each byte of an invalid sequence becomes the character
/// U+00XX (the convention of `tests/conformance/FORMAT.md`). Cannot fail.
pub fn decode_bytes(bytes: &[u8]) -> String {
    decode_text(bytes).into_owned()
}

/// [`decode_bytes`] without a copy when the bytes are UTF-8. Cannot fail.
pub fn decode_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(decode_invalid(bytes))
}

fn decode_invalid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    out
}

/// `size` bytes at `offset` of `data`, or [`ImageError::OutOfBounds`].
pub(crate) fn bytes_at<'a>(
    data: &'a [u8],
    offset: u64,
    size: u64,
    what: &'static str,
) -> Result<&'a [u8], ImageError> {
    let oob = || ImageError::OutOfBounds {
        what,
        offset,
        size,
        len: data.len(),
    };
    let start = usize::try_from(offset).map_err(|_| oob())?;
    let n = usize::try_from(size).map_err(|_| oob())?;
    let end = start.checked_add(n).ok_or_else(oob)?;
    data.get(start..end).ok_or_else(oob)
}

/// The C string at `offset` of `data`: the bytes up to the first NUL, or up to the end of `data`
/// when there is none (the kernel would read on; the model stops at the end of what it has).
/// `None` when `offset` is outside `data`.
pub(crate) fn cstr_at(data: &[u8], offset: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let rest = data.get(start..)?;
    Some(match rest.iter().position(|&b| b == 0) {
        Some(n) => rest.get(..n).unwrap_or(rest),
        None => rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_at_rejects_ranges_past_the_end_and_overflowing_ones() {
        let d = [1u8, 2, 3, 4];
        assert_eq!(bytes_at(&d, 1, 2, "x"), Ok(&d[1..3]));
        assert_eq!(bytes_at(&d, 4, 0, "x"), Ok(&d[4..4]));
        assert!(bytes_at(&d, 3, 2, "x").is_err());
        assert!(bytes_at(&d, u64::MAX, 2, "x").is_err());
        assert!(bytes_at(&d, 1, u64::MAX, "x").is_err());
    }

    #[test]
    fn cstr_at_stops_at_nul_or_at_the_end() {
        let d = b"ab\0cd";
        assert_eq!(cstr_at(d, 0), Some(&b"ab"[..]));
        assert_eq!(cstr_at(d, 3), Some(&b"cd"[..]));
        assert_eq!(cstr_at(d, 5), Some(&b""[..]));
        assert_eq!(cstr_at(d, 6), None);
    }

    #[test]
    fn decode_bytes_keeps_utf8_and_maps_invalid_bytes_to_latin1() {
        assert_eq!(decode_bytes(b"caf\xc3\xa9"), "café");
        assert_eq!(decode_bytes(b"\x7fELF\xff"), "\u{7f}ELF\u{ff}");
    }
}
