//! In-kernel decompression of `MODULE_INIT_COMPRESSED_FILE`: `module_decompress()` in
//! kernel/module/decompress.c.
//!
//! 6.1 (Debian: no `CONFIG_MODULE_DECOMPRESS`) refuses the flag with `EOPNOTSUPP`. Debian's 6.12
//! builds the xz variant: `module_xz_decompress()` checks the magic, then runs the kernel's xz
//! decoder (lib/xz, multi-call `XZ_DYNALLOC` mode, dictionary limit `(u32)-1`, i.e. none) one
//! output page per call while each call fills its page and returns `XZ_OK`; anything but
//! `XZ_STREAM_END` at the end is `"decompression failed with status %d"` and `EINVAL`.
//!
//! The container decisions of lib/xz/xz_dec_stream.c are made here, in its order and with its
//! `enum xz_ret` statuses: stream header (only check types None and CRC32), block headers (only
//! LZMA2, optionally after one BCJ filter the kernel was built with, no filter properties but
//! the dictionary size), block sizes, padding and CRC32, the index (record count and the
//! running hash of sizes) and the footer. Only the filter data (LZMA2 and BCJ) is decoded by
//! liblzma; any error it finds is `XZ_DATA_ERROR`, as every corruption inside LZMA2 data is in
//! the kernel. Input that ends early leaves the kernel's last call at `XZ_OK` with a page not
//! full, so the loop stops there: status 0. Data after the end of the first stream is ignored,
//! as `xz_dec_run()` ignores it.
#![warn(missing_docs)]

use liblzma::stream::{Action, Filters, LzmaOptions, Status, Stream};

use crate::errno::Errno;
use crate::log::KernelLog;
use crate::profile::{Arch, Profile};

/// `enum xz_ret` (include/linux/xz.h): the statuses `module_xz_decompress()` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XzRet {
    /// `XZ_OK` (0): more input or output needed.
    Ok = 0,
    /// `XZ_STREAM_END` (1): the stream was decoded.
    StreamEnd = 1,
    /// `XZ_UNSUPPORTED_CHECK` (2): not used by the kernel's build.
    UnsupportedCheck = 2,
    /// `XZ_MEM_ERROR` (3): the dictionary could not be allocated.
    MemError = 3,
    /// `XZ_MEMLIMIT_ERROR` (4): dictionary above the limit.
    MemlimitError = 4,
    /// `XZ_FORMAT_ERROR` (5): not the xz magic.
    FormatError = 5,
    /// `XZ_OPTIONS_ERROR` (6): an option the decoder does not support.
    OptionsError = 6,
    /// `XZ_DATA_ERROR` (7): corrupt data.
    DataError = 7,
    /// `XZ_BUF_ERROR` (8): no progress possible.
    BufError = 8,
}

/// `include/linux/xz.h` filter IDs of the BCJ decoders (lib/xz/xz_dec_bcj.c).
const BCJ_X86: u8 = 4;
const BCJ_ARM64: u8 = 10;
const BCJ_RISCV: u8 = 11;
const XZ_CHECK_CRC32: u8 = 1;
const STREAM_HEADER_SIZE: usize = 12;
const HEADER_MAGIC: &[u8; 6] = b"\xfd7zXZ\0";

/// Models `module_decompress()` in kernel/module/decompress.c for the profile's kernel: the
/// decompressed image, at most `limit` bytes.
///
/// Fails with `EOPNOTSUPP` without `CONFIG_MODULE_DECOMPRESS` (6.1), `EINVAL` with the kernel's
/// line for input its decompressor refuses, `ENOMEM` when the output would exceed `limit` (a
/// page allocation failing in the kernel). Only the xz build (Debian's) is modelled; a profile
/// built with gzip or zstd gets `EOPNOTSUPP`.
pub fn module_decompress(
    profile: &Profile,
    buf: &[u8],
    limit: usize,
    log: &mut KernelLog,
) -> Result<Vec<u8>, Errno> {
    if !profile.is_enabled("MODULE_DECOMPRESS") || !profile.is_enabled("MODULE_COMPRESS_XZ") {
        return Err(Errno::EOPNOTSUPP);
    }
    module_xz_decompress(profile, buf, limit, log)
}

/// Models `module_xz_decompress()` in kernel/module/decompress.c (6.12): the 6-byte magic
/// (`"not an xz compressed module"`), then the xz decoder; a final status other than
/// `XZ_STREAM_END` is `"decompression failed with status %d"`. Both are `EINVAL`.
pub fn module_xz_decompress(
    profile: &Profile,
    buf: &[u8],
    limit: usize,
    log: &mut KernelLog,
) -> Result<Vec<u8>, Errno> {
    if buf.len() < HEADER_MAGIC.len() || !buf.starts_with(HEADER_MAGIC) {
        log.err("not an xz compressed module");
        return Err(Errno::EINVAL);
    }
    let mut dec = XzDec {
        input: buf,
        pos: 0,
        out: Vec::new(),
        limit,
        bcj: bcj_filters(profile),
        check_type: 0,
        block_count: 0,
        block_hash: Hash::default(),
        index_size: 0,
    };
    match dec.run()? {
        XzRet::StreamEnd => Ok(dec.out),
        ret => {
            log.err(format!("decompression failed with status {}", ret as i32));
            Err(Errno::EINVAL)
        }
    }
}

/// The BCJ filters of the profile's kernel (`CONFIG_XZ_DEC_*`, not in the profiles): Debian
/// 6.12 amd64 has x86, ARM64 and RISC-V; arm64 has ARM64 and RISC-V.
fn bcj_filters(profile: &Profile) -> &'static [u8] {
    match profile.arch() {
        Arch::X86_64 => &[BCJ_X86, BCJ_ARM64, BCJ_RISCV],
        Arch::Aarch64 => &[BCJ_ARM64, BCJ_RISCV],
    }
}

/// `xz_crc32(buf, size, crc)`: CRC32 continued from `crc`.
fn crc32(data: &[u8], crc: u32) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

/// `struct xz_dec_hash`: running sizes and a CRC32 over them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Hash {
    unpadded: u64,
    uncompressed: u64,
    crc32: u32,
}

impl Hash {
    /// `hash.crc32 = xz_crc32(&hash, sizeof(hash), hash.crc32)` (24 bytes, 4 of padding).
    fn update(&mut self, unpadded: u64, uncompressed: u64) {
        self.unpadded = self.unpadded.wrapping_add(unpadded);
        self.uncompressed = self.uncompressed.wrapping_add(uncompressed);
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.unpadded.to_le_bytes());
        b[8..16].copy_from_slice(&self.uncompressed.to_le_bytes());
        b[16..20].copy_from_slice(&self.crc32.to_le_bytes());
        self.crc32 = crc32(&b, self.crc32);
    }
}

/// A variable-length integer of the xz format (`dec_vli()`).
enum Vli {
    Value(u64),
    /// Ran out of bytes (`XZ_OK`).
    Short,
    /// `XZ_DATA_ERROR`.
    Bad,
}

fn dec_vli(bytes: &[u8], pos: &mut usize) -> Vli {
    let mut vli = 0u64;
    let mut shift = 0u32;
    while let Some(&byte) = bytes.get(*pos) {
        *pos += 1;
        vli |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            if byte == 0 && shift != 0 {
                return Vli::Bad;
            }
            return Vli::Value(vli);
        }
        shift += 7;
        if shift == 7 * 9 {
            return Vli::Bad;
        }
    }
    Vli::Short
}

/// The block header fields `dec_block_header()` keeps.
struct BlockHeader {
    size: u64,
    compressed: Option<u64>,
    uncompressed: Option<u64>,
    bcj: Option<u8>,
    dict_size: u64,
}

/// The decoder state of lib/xz/xz_dec_stream.c over the whole input.
struct XzDec<'a> {
    input: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    limit: usize,
    bcj: &'static [u8],
    check_type: u8,
    block_count: u64,
    block_hash: Hash,
    index_size: u64,
}

/// Why decoding stopped before the end of the stream.
enum StepError {
    /// The kernel's final status.
    Status(XzRet),
    /// The output limit (a page allocation failing: `ENOMEM`).
    NoMem,
}

impl From<XzRet> for StepError {
    fn from(s: XzRet) -> Self {
        StepError::Status(s)
    }
}

/// `Err(status)` of a decoding step; `Err(XzRet::Ok)` means the input ended.
type Step<T> = Result<T, XzRet>;

impl XzDec<'_> {
    /// `n` bytes from the current position, or the end of input (`XZ_OK`).
    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let end = self.pos.checked_add(n).ok_or(XzRet::Ok)?;
        let b = self.input.get(self.pos..end).ok_or(XzRet::Ok)?;
        self.pos = end;
        Ok(b)
    }

    /// The final status of the kernel's decompression loop; `Err(ENOMEM)` past the limit.
    fn run(&mut self) -> Result<XzRet, Errno> {
        match self.dec_main() {
            Ok(()) => Ok(XzRet::StreamEnd),
            Err(StepError::Status(s)) => Ok(s),
            Err(StepError::NoMem) => Err(Errno::ENOMEM),
        }
    }

    /// `dec_main()`: stream header, blocks, index, footer.
    fn dec_main(&mut self) -> Result<(), StepError> {
        self.dec_stream_header()?;
        loop {
            // SEQ_BLOCK_START
            let first = *self.input.get(self.pos).ok_or(XzRet::Ok)?;
            if first == 0 {
                break;
            }
            let size = (u64::from(first) + 1) * 4;
            let header = self.dec_block_header(size as usize)?;
            self.dec_block(&header)?;
        }
        self.dec_index()?;
        self.dec_stream_footer()?;
        Ok(())
    }

    /// `dec_stream_header()`.
    fn dec_stream_header(&mut self) -> Step<()> {
        let h = self.take(STREAM_HEADER_SIZE)?;
        if !h.starts_with(HEADER_MAGIC) {
            return Err(XzRet::FormatError);
        }
        let (flags, crc) = (&h[6..8], le32(&h[8..12]));
        if crc32(flags, 0) != crc {
            return Err(XzRet::DataError);
        }
        if flags[0] != 0 || flags[1] > 15 {
            return Err(XzRet::OptionsError);
        }
        // Without XZ_DEC_ANY_CHECK (the kernel's build), only None and CRC32.
        if flags[1] > XZ_CHECK_CRC32 {
            return Err(XzRet::OptionsError);
        }
        self.check_type = flags[1];
        Ok(())
    }

    /// `dec_block_header()` on the `size` bytes of a block header.
    fn dec_block_header(&mut self, size: usize) -> Step<BlockHeader> {
        let bcj_supported = self.bcj;
        let raw = self.take(size)?;
        let body_len = size - 4;
        let (body, crc) = raw.split_at(body_len);
        if crc32(body, 0) != le32(crc) {
            return Err(XzRet::DataError);
        }
        let flags = body[1];
        let unsupported = if bcj_supported.is_empty() { 0x3f } else { 0x3e };
        if flags & unsupported != 0 {
            return Err(XzRet::OptionsError);
        }
        let mut p = 2usize;
        let vli = |p: &mut usize| match dec_vli(body, p) {
            Vli::Value(v) => Ok(v),
            Vli::Short | Vli::Bad => Err(XzRet::DataError),
        };
        let compressed = if flags & 0x40 != 0 {
            Some(vli(&mut p)?)
        } else {
            None
        };
        let uncompressed = if flags & 0x80 != 0 {
            Some(vli(&mut p)?)
        } else {
            None
        };
        let rest = |p: usize| body_len.saturating_sub(p);
        let byte = |p: &mut usize| {
            let b = body.get(*p).copied().unwrap_or(0);
            *p += 1;
            b
        };
        let mut bcj = None;
        if flags & 0x01 != 0 {
            if rest(p) < 2 {
                return Err(XzRet::OptionsError);
            }
            let id = byte(&mut p);
            if !bcj_supported.contains(&id) {
                return Err(XzRet::OptionsError);
            }
            if byte(&mut p) != 0 {
                return Err(XzRet::OptionsError);
            }
            bcj = Some(id);
        }
        if rest(p) < 2 {
            return Err(XzRet::DataError);
        }
        if byte(&mut p) != 0x21 || byte(&mut p) != 0x01 {
            return Err(XzRet::OptionsError);
        }
        if rest(p) < 1 {
            return Err(XzRet::DataError);
        }
        // xz_dec_lzma2_reset(): props > 39 refused; the dictionary (up to 3 GiB) is below the
        // (u32)-1 limit, and its vmalloc() is assumed to succeed.
        let props = byte(&mut p);
        if props > 39 {
            return Err(XzRet::OptionsError);
        }
        let dict_size = (2 + u64::from(props & 1)) << ((props >> 1) + 11);
        if body.get(p..).unwrap_or_default().iter().any(|&b| b != 0) {
            return Err(XzRet::OptionsError);
        }
        Ok(BlockHeader {
            size: size as u64,
            compressed,
            uncompressed,
            bcj,
            dict_size,
        })
    }

    /// `dec_block()` to the end of the filter data, then `SEQ_BLOCK_PADDING` and
    /// `SEQ_BLOCK_CHECK`.
    fn dec_block(&mut self, h: &BlockHeader) -> Result<(), StepError> {
        let start_out = self.out.len();
        let start_in = self.pos;
        let ended = self.decode_filters(h)?;
        let compressed = (self.pos - start_in) as u64;
        let uncompressed = (self.out.len() - start_out) as u64;
        if h.compressed.is_some_and(|c| compressed > c)
            || h.uncompressed.is_some_and(|u| uncompressed > u)
        {
            return Err(XzRet::DataError.into());
        }
        if !ended {
            return Err(XzRet::Ok.into()); // input ended inside the block
        }
        if h.compressed.is_some_and(|c| c != compressed)
            || h.uncompressed.is_some_and(|u| u != uncompressed)
        {
            return Err(XzRet::DataError.into());
        }
        let check_size = if self.check_type == XZ_CHECK_CRC32 {
            4
        } else {
            0
        };
        self.block_hash
            .update(h.size + compressed + check_size, uncompressed);
        self.block_count += 1;
        // SEQ_BLOCK_PADDING
        let mut c = compressed;
        while c & 3 != 0 {
            if self.take(1)? != [0] {
                return Err(XzRet::DataError.into());
            }
            c += 1;
        }
        // SEQ_BLOCK_CHECK: compared byte by byte
        if self.check_type == XZ_CHECK_CRC32 {
            let crc = crc32(self.out.get(start_out..).unwrap_or_default(), 0);
            self.crc32_validate(crc)?;
        }
        Ok(())
    }

    /// `crc32_validate()`: the four bytes of `crc`, little-endian, one at a time.
    fn crc32_validate(&mut self, crc: u32) -> Step<()> {
        for want in crc.to_le_bytes() {
            if self.take(1)? != [want] {
                return Err(XzRet::DataError);
            }
        }
        Ok(())
    }

    /// Decodes the block's filter data with liblzma up to the LZMA2 end marker; `Ok(false)`
    /// when the input ends first.
    fn decode_filters(&mut self, h: &BlockHeader) -> Result<bool, StepError> {
        // A match can reach back no further than what was written, and no more than `limit`
        // bytes are written, so a dictionary of min(declared, limit) decides the same.
        let dict = h.dict_size.min(self.limit.max(4096) as u64);
        let mut opts = LzmaOptions::new();
        opts.dict_size(u32::try_from(dict).unwrap_or(u32::MAX));
        let mut filters = Filters::new();
        match h.bcj {
            Some(BCJ_X86) => {
                filters.x86();
            }
            Some(BCJ_ARM64) => {
                filters.arm64();
            }
            Some(BCJ_RISCV) => {
                filters.riscv();
            }
            _ => {}
        }
        filters.lzma2(&opts);
        let mut stream = Stream::new_raw_decoder(&filters).map_err(|_| StepError::NoMem)?;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let input = self.input.get(self.pos..).unwrap_or_default();
            let (in0, out0) = (stream.total_in(), stream.total_out());
            let status = stream.process(input, &mut chunk, Action::Run);
            let used = (stream.total_in() - in0) as usize;
            let made = (stream.total_out() - out0) as usize;
            self.pos += used;
            // dec_block() compares the running sizes with the header's after every call, so
            // a block that outgrows them fails there, before more pages are allocated.
            if h.compressed.is_some_and(|c| stream.total_in() > c)
                || h.uncompressed.is_some_and(|u| stream.total_out() > u)
            {
                return Err(XzRet::DataError.into());
            }
            let need = self.out.len().saturating_add(made);
            if need > self.limit {
                return Err(StepError::NoMem);
            }
            // Grow by doubling, but never past the limit: the buffer is at most `limit` bytes,
            // as the kernel's pages are.
            if need > self.out.capacity() {
                let to = self
                    .out
                    .capacity()
                    .saturating_mul(2)
                    .max(need)
                    .min(self.limit);
                self.out
                    .try_reserve_exact(to - self.out.len())
                    .map_err(|_| StepError::NoMem)?;
            }
            self.out
                .extend_from_slice(chunk.get(..made).unwrap_or_default());
            match status {
                Ok(Status::StreamEnd) => return Ok(true),
                Ok(_) if used == 0 && made == 0 => return Ok(false),
                Ok(_) => {}
                Err(liblzma::stream::Error::Mem | liblzma::stream::Error::MemLimit) => {
                    return Err(StepError::NoMem);
                }
                Err(_) => return Err(XzRet::DataError.into()),
            }
        }
    }

    /// `dec_index()`, `SEQ_INDEX_PADDING` and `SEQ_INDEX_CRC32`.
    fn dec_index(&mut self) -> Step<()> {
        let start = self.pos;
        self.pos += 1; // the index indicator (0)
        let vli = |d: &mut Self| match dec_vli(d.input, &mut d.pos) {
            Vli::Value(v) => Ok(v),
            Vli::Short => Err(XzRet::Ok),
            Vli::Bad => Err(XzRet::DataError),
        };
        let mut count = vli(self)?;
        if count != self.block_count {
            return Err(XzRet::DataError);
        }
        let mut hash = Hash::default();
        while count > 0 {
            let unpadded = vli(self)?;
            let uncompressed = vli(self)?;
            hash.update(unpadded, uncompressed);
            count -= 1;
        }
        while (self.pos - start) & 3 != 0 {
            if self.take(1)? != [0] {
                return Err(XzRet::DataError);
            }
        }
        if hash != self.block_hash {
            return Err(XzRet::DataError);
        }
        let index = self.input.get(start..self.pos).unwrap_or_default();
        let (crc, size) = (crc32(index, 0), (self.pos - start) as u64);
        self.crc32_validate(crc)?;
        self.index_size = size;
        Ok(())
    }

    /// `dec_stream_footer()`.
    fn dec_stream_footer(&mut self) -> Step<()> {
        let (index_size, check_type) = (self.index_size, self.check_type);
        let f = self.take(STREAM_HEADER_SIZE)?;
        if &f[10..12] != b"YZ" {
            return Err(XzRet::DataError);
        }
        if crc32(&f[4..10], 0) != le32(&f[0..4]) {
            return Err(XzRet::DataError);
        }
        if index_size >> 2 != u64::from(le32(&f[4..8])) {
            return Err(XzRet::DataError);
        }
        if f[8] != 0 || f[9] != check_type {
            return Err(XzRet::DataError);
        }
        Ok(())
    }
}

/// `get_le32()` of (at least) four bytes; 0 for fewer.
fn le32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use liblzma::stream::Check;

    use super::*;
    use crate::load::elf_check::tests::{KERNELS, fixture, profile};

    const LIMIT: usize = 64 << 20;

    fn run(kernel: &str, data: &[u8], limit: usize) -> (Result<Vec<u8>, Errno>, Vec<String>) {
        let mut log = KernelLog::new();
        let r = module_decompress(profile(kernel), data, limit, &mut log);
        (r, log.texts())
    }

    fn status(n: i32) -> Vec<String> {
        vec![format!("decompression failed with status {n}")]
    }

    /// An xz stream of `data` made by liblzma with `check` and an optional BCJ filter.
    fn encode(data: &[u8], check: Check, bcj: Option<u8>) -> Vec<u8> {
        let mut filters = Filters::new();
        match bcj {
            Some(BCJ_X86) => {
                filters.x86();
            }
            Some(7) => {
                filters.arm();
            }
            Some(BCJ_ARM64) => {
                filters.arm64();
            }
            _ => {}
        }
        let mut opts = LzmaOptions::new_preset(6).unwrap();
        opts.dict_size(1 << 20);
        filters.lzma2(&opts);
        let mut s = Stream::new_stream_encoder(&filters, check).unwrap();
        let mut out = Vec::with_capacity(data.len() + 1024);
        s.process_vec(data, &mut out, Action::Finish).unwrap();
        while out.len() == out.capacity() {
            out.reserve(1 << 16);
            if matches!(
                s.process_vec(&[], &mut out, Action::Finish),
                Ok(Status::StreamEnd)
            ) {
                break;
            }
        }
        out
    }

    #[test]
    fn the_6_1_kernels_have_no_in_kernel_decompression() {
        for kernel in &KERNELS[..2] {
            let (r, log) = run(kernel, &fixture(kernel, "mp_lib.ko.xz"), LIMIT);
            assert_eq!(r, Err(Errno::EOPNOTSUPP));
            assert!(log.is_empty());
        }
    }

    #[test]
    fn the_xz_fixtures_decompress_to_the_modules_on_6_12() {
        for kernel in &KERNELS[2..] {
            for m in ["mp_lib", "mp_types"] {
                let (r, log) = run(kernel, &fixture(kernel, &format!("{m}.ko.xz")), LIMIT);
                assert_eq!(r, Ok(fixture(kernel, &format!("{m}.ko"))), "{kernel} {m}");
                assert!(log.is_empty());
            }
        }
    }

    #[test]
    fn other_formats_are_not_xz_compressed_modules() {
        for kernel in &KERNELS[2..] {
            for f in ["mp_lib.ko", "mp_lib.ko.gz", "mp_lib.ko.zst", "empty.ko"] {
                let (r, log) = run(kernel, &fixture(kernel, f), LIMIT);
                assert_eq!(r, Err(Errno::EINVAL), "{f}");
                assert_eq!(log, ["not an xz compressed module"], "{f}");
            }
        }
    }

    /// Input that ends early leaves the decoder at XZ_OK: status 0, wherever the cut is.
    #[test]
    fn every_truncation_fails_with_status_0() {
        let k = "debian-6.12-amd64";
        let xz = fixture(k, "mp_lib.ko.xz");
        for n in HEADER_MAGIC.len()..xz.len() {
            let (r, log) = run(k, &xz[..n], LIMIT);
            assert_eq!(r, Err(Errno::EINVAL), "{n}");
            assert_eq!(log, status(0), "cut at {n}");
        }
    }

    #[test]
    fn corrupt_data_fails_with_status_7_and_trailing_bytes_are_ignored() {
        let k = "debian-6.12-arm64";
        let mut xz = fixture(k, "mp_types.ko.xz");
        let mut trailing = xz.clone();
        trailing.extend_from_slice(b"garbage after the stream");
        assert_eq!(run(k, &trailing, LIMIT).0, Ok(fixture(k, "mp_types.ko")));
        // a byte of the stream footer's CRC, of the block's check, of the LZMA2 data
        for at in [xz.len() - 12, xz.len() - 40, xz.len() / 2] {
            xz[at] ^= 0x55;
            let (r, log) = run(k, &xz, LIMIT);
            assert_eq!((r, log), (Err(Errno::EINVAL), status(7)), "byte {at}");
            xz[at] ^= 0x55;
        }
        // the stream header's flags CRC
        xz[8] ^= 1;
        assert_eq!(run(k, &xz, LIMIT).1, status(7));
    }

    /// The kernel's lib/xz knows only the None and CRC32 checks and the BCJ filters it was
    /// built with: XZ_OPTIONS_ERROR (6) for the others.
    #[test]
    fn unsupported_checks_and_filters_are_options_errors() {
        let module = fixture("debian-6.12-amd64", "mp_lib.ko");
        let k = "debian-6.12-amd64";
        assert_eq!(
            run(k, &encode(&module, Check::None, None), LIMIT).0,
            Ok(module.clone())
        );
        for check in [Check::Crc64, Check::Sha256] {
            let (r, log) = run(k, &encode(&module, check, None), LIMIT);
            assert_eq!((r, log), (Err(Errno::EINVAL), status(6)));
        }
        let x86 = encode(&module, Check::Crc32, Some(BCJ_X86));
        assert_eq!(run(k, &x86, LIMIT).0, Ok(module.clone()));
        assert_eq!(run("debian-6.12-arm64", &x86, LIMIT).1, status(6));
        let arm64 = encode(&module, Check::Crc32, Some(BCJ_ARM64));
        assert_eq!(
            run("debian-6.12-arm64", &arm64, LIMIT).0,
            Ok(module.clone())
        );
        let arm = encode(&module, Check::Crc32, Some(7));
        assert_eq!(run(k, &arm, LIMIT).1, status(6));
    }

    #[test]
    fn output_over_the_limit_is_enomem() {
        let k = "debian-6.12-amd64";
        let zeros = encode(&vec![0u8; 1 << 20], Check::Crc32, None);
        assert_eq!(run(k, &zeros, 1 << 20).0.map(|v| v.len()), Ok(1 << 20));
        let (r, log) = run(k, &zeros, (1 << 20) - 1);
        assert_eq!(r, Err(Errno::ENOMEM));
        assert!(log.is_empty());
    }

    #[test]
    fn vli_and_block_header_corner_cases() {
        let mut p = 0;
        assert!(matches!(dec_vli(&[0x80, 0x00], &mut p), Vli::Bad));
        p = 0;
        assert!(matches!(dec_vli(&[0xff; 9], &mut p), Vli::Bad));
        p = 0;
        assert!(matches!(dec_vli(&[0x80], &mut p), Vli::Short));
        p = 0;
        assert!(matches!(dec_vli(&[0xac, 0x02], &mut p), Vli::Value(300)));
    }
}
