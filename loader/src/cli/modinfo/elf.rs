//! Reading a module file and its `.modinfo` strings exactly as libkmod does (libkmod-file.c,
//! libkmod-elf.c), with the same errno for each failure, which modinfo prints:
//!
//! - a file shorter than 6 bytes (the longest compression magic): `EINVAL`;
//! - zstd (`28 b5 2f fd`) or xz (`fd 37 7a 58 5a 00`) data, and gzip (`1f 8b`) when enabled, are
//!   decompressed; corrupt data are `EINVAL`. libkmod stops reading zstd at the end of the file
//!   without checking the last frame is complete, so truncated zstd data give what was decoded;
//! - the ELF identification: no magic or at most 16 bytes: `ENOEXEC`; an unknown class or byte
//!   order, a header cut short, a section header size other than the class's, a section table or
//!   section-name table outside the file, a name table not ending in NUL: `EINVAL`;
//! - `.modinfo` is the first section so named whose extent lies inside the file (none:
//!   `ENOENT`); its strings are the NUL-separated runs, leading padding skipped.
//!
//! Where libkmod trips an `assert` (Debian builds them in) and aborts — a name table index 0 or
//! past the table, a name table or `.modinfo` section of size 0 placed exactly at the end of the
//! file — this reader reports `EINVAL` instead.

use std::io::Read;

use crate::errno::Errno;
use crate::file::DEFAULT_MAX_SIZE;

const MAGIC_ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const MAGIC_XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const MAGIC_GZIP: &[u8] = &[0x1f, 0x8b];
/// libkmod reads this many bytes to find the compression (the longest magic).
const MAGIC_MAX: usize = 6;
/// `EI_NIDENT`.
const EI_NIDENT: usize = 16;

/// Reads a module file as `kmod_file_open` does: the decompressed image, or the errno.
/// `gzip` says whether gzip data are decompressed (else they are read as they are).
pub(crate) fn load(path: &std::path::Path, gzip: bool) -> Result<Vec<u8>, Errno> {
    let mut f = std::fs::File::open(path).map_err(|e| Errno::from_io(&e))?;
    let mut data = Vec::new();
    (&mut f)
        .take(DEFAULT_MAX_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Errno::from_io(&e))?;
    if data.len() as u64 > DEFAULT_MAX_SIZE {
        return Err(Errno::ENOMEM);
    }
    decode(data, gzip)
}

/// The image in `data` (a whole file), decompressed by its magic.
pub(crate) fn decode(data: Vec<u8>, gzip: bool) -> Result<Vec<u8>, Errno> {
    if data.len() < MAGIC_MAX {
        return Err(Errno::EINVAL);
    }
    if data.starts_with(MAGIC_ZSTD) {
        zstd(&data)
    } else if data.starts_with(MAGIC_XZ) {
        let dec = liblzma::read::XzDecoder::new_multi_decoder(data.as_slice());
        bounded(dec)
    } else if gzip && data.starts_with(MAGIC_GZIP) {
        bounded(flate2::read::MultiGzDecoder::new(data.as_slice()))
    } else {
        Ok(data)
    }
}

/// Reads a decoder to its end; any failure is `EINVAL`, output past the size limit `ENOMEM`.
fn bounded(r: impl Read) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    r.take(DEFAULT_MAX_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|_| Errno::EINVAL)?;
    if out.len() as u64 > DEFAULT_MAX_SIZE {
        return Err(Errno::ENOMEM);
    }
    Ok(out)
}

/// zstd frames until the input ends, as libkmod's `load_zstd` feeds them to libzstd: skippable
/// frames are skipped, corrupt data are `EINVAL`, and input that ends inside a frame is no
/// error: what the complete blocks decode to stands (a missing checksum included).
fn zstd(data: &[u8]) -> Result<Vec<u8>, Errno> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    /// An empty last raw block and a checksum: ends a frame whose input ended, so that the
    /// decoder gives up everything decoded (it keeps back a window while a frame is open).
    const END: [u8; 7] = [1, 0, 0, 0, 0, 0, 0];
    let mut out = Vec::new();
    let mut input = data;
    let mut frame = FrameDecoder::new();
    // libzstd's default limit (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`, 2^27): larger windows are errors.
    frame.set_max_window_size(1 << 27);
    while !input.is_empty() {
        match frame.reset(&mut input) {
            Ok(()) => {}
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                let skip = usize::try_from(length).unwrap_or(usize::MAX);
                input = input.get(skip..).unwrap_or_default();
                continue;
            }
            Err(e) if truncated(&e) => break,
            Err(_) => return Err(Errno::EINVAL),
        }
        let mut complete = true;
        loop {
            let r = frame.decode_blocks(&mut input, BlockDecodingStrategy::UptoBlocks(1));
            if let Err(e) = &r {
                if !truncated(e) {
                    return Err(Errno::EINVAL);
                }
                complete = false;
                if frame
                    .decode_blocks(&END[..], BlockDecodingStrategy::All)
                    .is_err()
                {
                    return Err(Errno::EINVAL);
                }
            }
            if let Some(c) = frame.collect() {
                out.extend_from_slice(&c);
            }
            if out.len() as u64 > DEFAULT_MAX_SIZE {
                return Err(Errno::ENOMEM);
            }
            if !matches!(r, Ok(false)) {
                break;
            }
        }
        if !complete {
            break;
        }
        if let (Some(want), Some(got)) = (
            frame.get_checksum_from_data(),
            frame.get_calculated_checksum(),
        ) && want != got
        {
            return Err(Errno::EINVAL);
        }
    }
    Ok(out)
}

/// Whether a decoder error says its input ended early.
fn truncated(e: &impl std::fmt::Debug) -> bool {
    format!("{e:?}").contains("UnexpectedEof")
}

/// The byte order and class of an ELF image.
#[derive(Clone, Copy)]
struct Class {
    is_64: bool,
    big_endian: bool,
}

impl Class {
    fn uint(self, data: &[u8], at: u64, size: usize) -> Option<u64> {
        let at = usize::try_from(at).ok()?;
        let b = data.get(at..at.checked_add(size)?)?;
        let mut v = 0u64;
        if self.big_endian {
            for &x in b {
                v = v << 8 | u64::from(x);
            }
        } else {
            for &x in b.iter().rev() {
                v = v << 8 | u64::from(x);
            }
        }
        Some(v)
    }
}

/// A section's file extent and name offset (`elf_get_section_info`), `None` when the header is
/// missing or the extent passes the end of the file.
struct SectionInfo {
    offset: u64,
    size: u64,
    name: u64,
}

struct Elf<'d> {
    data: &'d [u8],
    class: Class,
    shoff: u64,
    shnum: u16,
    shentsize: u64,
    names: &'d [u8],
}

impl<'d> Elf<'d> {
    /// `kmod_elf_new`.
    fn parse(data: &'d [u8]) -> Result<Self, Errno> {
        if data.len() <= EI_NIDENT || !data.starts_with(crate::file::ELF_MAGIC) {
            return Err(Errno::ENOEXEC);
        }
        let is_64 = match data.get(4) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(Errno::EINVAL),
        };
        let ehdr_size = if is_64 { 64 } else { 52 };
        if data.len() <= ehdr_size {
            return Err(Errno::EINVAL);
        }
        let big_endian = match data.get(5) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(Errno::EINVAL),
        };
        let class = Class { is_64, big_endian };
        let field = |at: u64, size: usize| class.uint(data, at, size).ok_or(Errno::EINVAL);
        let (shoff, shentsize, shnum, shstrndx) = if is_64 {
            (field(40, 8)?, field(58, 2)?, field(60, 2)?, field(62, 2)?)
        } else {
            (field(32, 4)?, field(46, 2)?, field(48, 2)?, field(50, 2)?)
        };
        let shdr_size = if is_64 { 64 } else { 40 };
        if shentsize != shdr_size {
            return Err(Errno::EINVAL);
        }
        let shnum = u16::try_from(shnum).map_err(|_| Errno::EINVAL)?;
        match (shdr_size * u64::from(shnum)).checked_add(shoff) {
            Some(end) if end <= data.len() as u64 => {}
            _ => return Err(Errno::EINVAL),
        }
        let mut elf = Elf {
            data,
            class,
            shoff,
            shnum,
            shentsize,
            names: &[],
        };
        // (libkmod asserts on an index of 0 or past the table.)
        let strndx = u16::try_from(shstrndx).map_err(|_| Errno::EINVAL)?;
        let info = elf.section_info(strndx).ok_or(Errno::EINVAL)?;
        let names = elf.bytes(&info).ok_or(Errno::EINVAL)?;
        if names.last() != Some(&0) {
            return Err(Errno::EINVAL);
        }
        elf.names = names;
        Ok(elf)
    }

    fn section_info(&self, idx: u16) -> Option<SectionInfo> {
        if idx == 0 || idx >= self.shnum {
            return None;
        }
        let at = self.shoff + u64::from(idx) * self.shentsize;
        let c = self.class;
        let (name, offset, size) = if c.is_64 {
            (
                c.uint(self.data, at, 4)?,
                c.uint(self.data, at + 24, 8)?,
                c.uint(self.data, at + 32, 8)?,
            )
        } else {
            (
                c.uint(self.data, at, 4)?,
                c.uint(self.data, at + 16, 4)?,
                c.uint(self.data, at + 20, 4)?,
            )
        };
        match offset.checked_add(size) {
            Some(end) if end <= self.data.len() as u64 => Some(SectionInfo { offset, size, name }),
            _ => None,
        }
    }

    /// A section's bytes; `None` where libkmod's `elf_get_mem` would assert (offset at the end).
    fn bytes(&self, s: &SectionInfo) -> Option<&'d [u8]> {
        if s.offset >= self.data.len() as u64 {
            return None;
        }
        let start = usize::try_from(s.offset).ok()?;
        let end = usize::try_from(s.offset.checked_add(s.size)?).ok()?;
        self.data.get(start..end)
    }

    /// `kmod_elf_get_section`: the first section of that name with a valid extent.
    fn section(&self, name: &[u8]) -> Result<Option<&'d [u8]>, Errno> {
        for i in 1..self.shnum {
            let Some(info) = self.section_info(i) else {
                continue;
            };
            let Some(n) = usize::try_from(info.name)
                .ok()
                .and_then(|o| self.names.get(o..))
            else {
                continue;
            };
            let n = n.split(|&b| b == 0).next().unwrap_or(n);
            if n == name {
                return self.bytes(&info).map(Some).ok_or(Errno::EINVAL);
            }
        }
        Ok(None)
    }
}

/// `kmod_elf_get_strings(elf, ".modinfo")` on a module image: the strings, or the errno of an
/// image libkmod does not accept.
pub(crate) fn modinfo_strings(data: &[u8]) -> Result<Vec<&[u8]>, Errno> {
    let elf = Elf::parse(data)?;
    // No `.modinfo` section at all is an error (`ENOENT`), an empty one is not.
    let Some(mut sec) = elf.section(b".modinfo")? else {
        return Err(Errno::ENOENT);
    };
    // Leading padding, keeping at least one byte; one byte or less is no string at all.
    while sec.len() > 1 && sec.first() == Some(&0) {
        sec = sec.get(1..).unwrap_or_default();
    }
    if sec.len() <= 1 {
        return Ok(Vec::new());
    }
    Ok(sec.split(|&b| b == 0).filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn short_and_foreign_files() {
        assert_eq!(decode(Vec::new(), true), Err(Errno::EINVAL));
        assert_eq!(decode(b"\x7fELF\x02".to_vec(), true), Err(Errno::EINVAL));
        assert_eq!(
            modinfo_strings(b"hello world, not elf"),
            Err(Errno::ENOEXEC)
        );
        assert_eq!(modinfo_strings(b"\x7fELF\x02\x01\x01"), Err(Errno::ENOEXEC));
        let mut h = b"\x7fELF\x02\x01\x01".to_vec();
        h.resize(64, 0);
        assert_eq!(modinfo_strings(&h), Err(Errno::EINVAL));
        h.resize(65, 0);
        // Section header size 0 instead of 64.
        assert_eq!(modinfo_strings(&h), Err(Errno::EINVAL));
        h[4] = 3;
        assert_eq!(modinfo_strings(&h), Err(Errno::EINVAL));
    }

    #[test]
    fn gzip_only_when_enabled() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"\x7fELF and more").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decode(gz.clone(), true).unwrap(), b"\x7fELF and more");
        assert_eq!(decode(gz.clone(), false).unwrap(), gz);
        assert_eq!(
            decode(gz[..gz.len() - 3].to_vec(), true),
            Err(Errno::EINVAL)
        );
    }
}
