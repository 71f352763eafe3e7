//! Inserting a module file through any [`Backend`], as libkmod's `kmod_module_insert_module()`
//! does it (kmod 34, libkmod/libkmod-module.c and libkmod-file.c):
//!
//! 1. `kmod_module_new_from_path()`: `stat()` the path (failure: "could not load module").
//! 2. `kmod_file_open()`: `open(O_RDONLY|O_CLOEXEC)`, which must be seekable, then read the
//!    first 6 bytes (fewer: `EINVAL`) and tell the compression by its magic; anything that is
//!    not zstd, xz or gzip counts as uncompressed (nothing else is checked in userspace).
//! 3. `do_finit_module()`: when the file is uncompressed or compressed with exactly the method
//!    the kernel decompresses itself ([`KernelCompression`], what `/sys/module/compression`
//!    says), `finit_module(fd, params, flags)` with `MODULE_INIT_COMPRESSED_FILE` for a
//!    compressed file and the force flags as `MODULE_INIT_IGNORE_VERMAGIC` /
//!    `MODULE_INIT_IGNORE_MODVERSIONS`. Otherwise, or when the kernel answers `ENOSYS`:
//! 4. `do_init_module()`: the file's contents (decompressed in userspace if needed); with a
//!    force flag, a copy with `SHF_ALLOC` cleared on `__versions` (modversions) and the
//!    `vermagic=` string of `.modinfo` overwritten with zeros (`kmod_elf_strip()`); then
//!    `init_module(image, len, params)`.
//!
//! Every failure is one [`InsertError`] with the errno and the text kmod's insmod prints.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CStr;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::backend::{
    Backend, FinitFd, MODULE_INIT_COMPRESSED_FILE, MODULE_INIT_IGNORE_MODVERSIONS,
    MODULE_INIT_IGNORE_VERMAGIC,
};
use crate::errno::Errno;
use crate::file::{Compression, DEFAULT_MAX_SIZE, decompress};

/// `ENOSYS`: what makes libkmod fall back from `finit_module` to `init_module`.
const ENOSYS: Errno = Errno::ENOSYS;
/// `ESPIPE`.
const ESPIPE: Errno = Errno(29);

/// The compression the kernel decompresses itself (`MODULE_INIT_COMPRESSED_FILE`), as libkmod
/// learns it from `/sys/module/compression`: [`Compression::None`] when the kernel has no
/// in-kernel decompression.
pub type KernelCompression = Compression;

/// What `/sys/module/compression` of a simulated kernel would say: the method of
/// `CONFIG_MODULE_COMPRESS_{GZIP,XZ,ZSTD}` when `CONFIG_MODULE_DECOMPRESS` is set (the file
/// exists only then), else [`Compression::None`]. Debian 6.1: none; Debian 6.12: xz.
pub fn profile_compression(profile: &sim::profile::Profile) -> KernelCompression {
    if !profile.is_enabled("MODULE_DECOMPRESS") {
        Compression::None
    } else if profile.is_enabled("MODULE_COMPRESS_XZ") {
        Compression::Xz
    } else if profile.is_enabled("MODULE_COMPRESS_ZSTD") {
        Compression::Zstd
    } else if profile.is_enabled("MODULE_COMPRESS_GZIP") {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// libkmod's `get_kernel_compression()` on the text of `/sys/module/compression` (`None`: the
/// file does not exist, an older kernel or one without in-kernel decompression): `zstd`, `xz`
/// or `gzip` with a newline. Anything else is [`Compression::None`] and the message libkmod
/// logs as an error.
pub fn parse_sysfs_compression(text: Option<&str>) -> (KernelCompression, Option<String>) {
    match text {
        None => (Compression::None, None),
        Some("zstd\n") => (Compression::Zstd, None),
        Some("xz\n") => (Compression::Xz, None),
        Some("gzip\n") => (Compression::Gzip, None),
        Some(other) => (
            Compression::None,
            Some(format!("unknown kernel compression {}", other.trim_end())),
        ),
    }
}

/// The running kernel's in-kernel decompression, read from `/sys/module/compression` as
/// libkmod reads it, with the error libkmod would log (an unreadable or unknown value).
pub fn sysfs_compression() -> (KernelCompression, Option<String>) {
    const PATH: &str = "/sys/module/compression";
    let mut buf = Vec::new();
    match File::open(PATH) {
        // Not having the file is not an error: the kernel may be too old.
        Err(_) => parse_sysfs_compression(None),
        Ok(f) => match f.take(15).read_to_end(&mut buf) {
            Ok(_) => parse_sysfs_compression(Some(&String::from_utf8_lossy(&buf))),
            Err(e) => (
                Compression::None,
                Some(format!(
                    "could not read from '{PATH}': {}",
                    strerror(Errno::from_io(&e))
                )),
            ),
        },
    }
}

/// How a module is to be inserted. The default: no force flags, no in-kernel decompression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsertOptions {
    /// `KMOD_INSERT_FORCE_VERMAGIC` (insmod `-f` or `--force-vermagic`).
    pub force_vermagic: bool,
    /// `KMOD_INSERT_FORCE_MODVERSION` (insmod `-f` or `--force-modversion`).
    pub force_modversion: bool,
    /// What the kernel decompresses itself.
    pub kernel_compression: KernelCompression,
}

impl Default for InsertOptions {
    fn default() -> Self {
        InsertOptions {
            force_vermagic: false,
            force_modversion: false,
            kernel_compression: Compression::None,
        }
    }
}

/// The system call that loaded the module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `finit_module(fd, params, flags)`.
    Finit {
        /// The `MODULE_INIT_*` flags passed.
        flags: u32,
    },
    /// `init_module(image, len, params)`, after `finit_module` was skipped or gave `ENOSYS`.
    Init {
        /// The length of the image passed (decompressed).
        len: usize,
        /// `__versions` and/or vermagic were stripped from the image (force flags).
        stripped: bool,
    },
}

/// A successful insertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// How the file was stored.
    pub compression: Compression,
    /// How it was loaded.
    pub method: Method,
}

/// Where an insertion failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `stat()` of the path, or a path without a file name (`kmod_module_new_from_path`).
    Path,
    /// Opening or reading the file (`kmod_file_open`, `kmod_file_get_contents`).
    Open,
    /// Userspace decompression.
    Decompress,
    /// Reading the ELF image or stripping version information for a forced load.
    Strip,
    /// The `finit_module` system call.
    FinitModule,
    /// The `init_module` system call.
    InitModule,
}

/// A failed insertion: the errno and the lines kmod's insmod prints for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsertError {
    /// The path as given.
    pub path: PathBuf,
    /// The errno (`kmod_module_insert_module()` returns its negative).
    pub errno: Errno,
    /// Where it failed.
    pub stage: Stage,
    /// What libkmod logs as an error before insmod's own line (`xz: File is corrupt`,
    /// `Failed to strip version information: ...`), without the `insmod: ERROR: ` prefix.
    pub log: Vec<String>,
}

impl InsertError {
    fn new(path: &Path, stage: Stage, errno: Errno) -> Self {
        InsertError {
            path: path.to_path_buf(),
            errno,
            stage,
            log: Vec::new(),
        }
    }

    /// insmod's message, without the `insmod: ERROR: ` prefix: `could not load module P:
    /// <strerror>` when the path itself failed, else `could not insert module P:
    /// <mod_strerror>`.
    pub fn message(&self) -> String {
        match self.stage {
            Stage::Path => format!(
                "could not load module {}: {}",
                self.path.display(),
                strerror(self.errno)
            ),
            _ => format!(
                "could not insert module {}: {}",
                self.path.display(),
                mod_strerror(self.errno)
            ),
        }
    }
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for InsertError {}

/// glibc's `strerror()` text for an errno (`"No such file or directory"`).
pub fn strerror(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e.0).to_string();
    let suffix = format!(" (os error {})", e.0);
    match text.strip_suffix(&suffix) {
        Some(t) => t.to_string(),
        None => text,
    }
}

/// insmod's `mod_strerror()` (tools/insmod.c): the kernel's load errors in words, else
/// [`strerror`].
pub fn mod_strerror(e: Errno) -> String {
    match e {
        Errno::ENOEXEC => "Invalid module format".to_string(),
        Errno::ENOENT => "Unknown symbol in module".to_string(),
        Errno(3) => "Module has wrong symbol version".to_string(), // ESRCH
        Errno::EINVAL => "Invalid parameters".to_string(),
        _ => strerror(e),
    }
}

/// Reads up to `buf.len()` bytes at `offset`, retrying short reads (`pread_str_safe`).
fn pread_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match file.read_at(rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The file name part of a path as libkmod's `path_to_modname()` sees it (`basename()`).
fn has_file_name(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let base = match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => bytes.get(i + 1..).unwrap_or_default(),
        None => bytes,
    };
    !base.is_empty()
}

/// Inserts the module file at `path` with the parameter string `params` into `backend`, as
/// `kmod_module_insert_module()` does (see the module documentation).
///
/// Fails with an [`InsertError`]: the path cannot be `stat`ed ([`Stage::Path`]); the file
/// cannot be opened, read, or has fewer than 6 bytes (`EINVAL`) ([`Stage::Open`]); its
/// compressed data are invalid ([`Stage::Decompress`]); a forced load's image is not an ELF
/// file libkmod can edit ([`Stage::Strip`]); or the system call fails ([`Stage::FinitModule`],
/// [`Stage::InitModule`]).
pub fn insert_module(
    backend: &mut dyn Backend,
    path: &Path,
    params: &CStr,
    opts: &InsertOptions,
) -> Result<Inserted, InsertError> {
    let err = |stage, e| InsertError::new(path, stage, e);
    let io_err = |stage, e: std::io::Error| InsertError::new(path, stage, Errno::from_io(&e));

    // kmod_module_new_from_path()
    std::fs::metadata(path).map_err(|e| io_err(Stage::Path, e))?;
    if !has_file_name(path) {
        return Err(err(Stage::Path, Errno::ENOENT));
    }

    // kmod_file_open()
    let mut file = File::open(path).map_err(|e| io_err(Stage::Open, e))?;
    file.stream_position()
        .map_err(|_| err(Stage::Open, ESPIPE))?;
    let mut head = [0u8; 6];
    match pread_full(&file, &mut head, 0) {
        Ok(6) => {}
        Ok(_) => return Err(err(Stage::Open, Errno::EINVAL)),
        Err(e) => return Err(io_err(Stage::Open, e)),
    }
    let compression = Compression::detect(&head).unwrap_or(Compression::None);

    // do_finit_module()
    if compression == Compression::None || compression == opts.kernel_compression {
        let mut flags = 0;
        if compression != Compression::None {
            flags |= MODULE_INIT_COMPRESSED_FILE;
        }
        if opts.force_vermagic {
            flags |= MODULE_INIT_IGNORE_VERMAGIC;
        }
        if opts.force_modversion {
            flags |= MODULE_INIT_IGNORE_MODVERSIONS;
        }
        match backend.finit_module(FinitFd::Open(file.as_fd()), Some(params), flags) {
            Ok(()) => {
                return Ok(Inserted {
                    compression,
                    method: Method::Finit { flags },
                });
            }
            Err(e) if e.errno != ENOSYS => return Err(err(Stage::FinitModule, e.errno)),
            Err(_) => {}
        }
    }

    // do_init_module(): kmod_file_get_contents(). An image larger than the memory the kernel
    // has is not read or decompressed past that: init_module() would fail with ENOMEM
    // (copy_module_from_user()'s vmalloc), and that is the answer.
    let machine = backend.memory_limit().filter(|&m| m < DEFAULT_MAX_SIZE);
    let limit = machine.unwrap_or(DEFAULT_MAX_SIZE);
    let contents = read_contents(&file, path, limit).map_err(|e| match machine {
        Some(_) if e.errno == Errno::ENOMEM => err(Stage::InitModule, Errno::ENOMEM),
        _ => e,
    })?;
    let mut image = if compression.is_compressed() {
        decompress(compression, &contents, limit).map_err(|e| {
            if machine.is_some() && matches!(e, crate::file::DecompressError::TooLarge(..)) {
                return err(Stage::InitModule, Errno::ENOMEM);
            }
            let line = decompress_log(compression, &e);
            let mut ie = err(Stage::Decompress, e.at(path).errno());
            ie.log.push(line);
            ie
        })?
    } else {
        contents
    };
    let stripped = opts.force_vermagic || opts.force_modversion;
    if stripped {
        image = strip(image, opts.force_modversion, opts.force_vermagic).map_err(|s| {
            let mut ie = err(Stage::Strip, s.errno);
            if s.logged {
                ie.log.push(format!(
                    "Failed to strip version information: {}",
                    strerror(s.errno)
                ));
            }
            ie
        })?;
    }
    backend
        .init_module(&image, Some(params))
        .map_err(|e| err(Stage::InitModule, e.errno))?;
    Ok(Inserted {
        compression,
        method: Method::Init {
            len: image.len(),
            stripped,
        },
    })
}

/// The whole file from offset 0 (libkmod maps it), at most `limit` bytes (more: `ENOMEM`).
fn read_contents(file: &File, path: &Path, limit: u64) -> Result<Vec<u8>, InsertError> {
    let io_err = |e: std::io::Error| InsertError::new(path, Stage::Open, Errno::from_io(&e));
    let size = file.metadata().map_err(io_err)?.len();
    if size > limit {
        return Err(InsertError::new(path, Stage::Open, Errno::ENOMEM));
    }
    let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0)];
    let n = pread_full(file, &mut buf, 0).map_err(io_err)?;
    buf.truncate(n);
    Ok(buf)
}

/// The line libkmod's decompressors log for a failure (libkmod-file-{xz,zlib,zstd}.c).
fn decompress_log(kind: Compression, e: &crate::file::DecompressError) -> String {
    use crate::file::DecompressError as D;
    match (kind, e) {
        (Compression::Xz, D::Truncated(_)) => "xz: Unexpected end of input".to_string(),
        (Compression::Xz, D::Corrupt(..)) => "xz: File is corrupt".to_string(),
        (Compression::Gzip, D::Truncated(_)) => "gzip: unexpected end of file".to_string(),
        (Compression::Zstd, D::Truncated(_)) => "zstd: Src size is incorrect".to_string(),
        (_, D::Corrupt(_, detail)) => format!("{}: {detail}", log_name(kind)),
        (_, D::TooLarge(_, limit)) => {
            format!(
                "{}: decompresses to more than {limit} bytes",
                log_name(kind)
            )
        }
        (_, D::Truncated(_)) => format!("{}: truncated data", log_name(kind)),
    }
}

fn log_name(kind: Compression) -> &'static str {
    match kind {
        Compression::Gzip => "gzip",
        Compression::Xz => "xz",
        Compression::Zstd => "zstd",
        Compression::None => "file",
    }
}

/// Why [`strip`] failed: the errno, and whether libkmod logs "Failed to strip version
/// information" for it (it does for the stripping itself, not for reading the ELF header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripError {
    /// The errno `do_init_module()` returns.
    pub errno: Errno,
    /// libkmod logs `Failed to strip version information: <strerror>`.
    pub logged: bool,
}

/// The ELF header and section table as `kmod_elf_new()` validates them.
struct Elf<'a> {
    mem: &'a [u8],
    is32: bool,
    msb: bool,
    shoff: u64,
    shnum: u64,
    shentsize: u64,
    strings_off: u64,
    strings_size: u64,
}

impl<'a> Elf<'a> {
    fn range_valid(&self, off: u64, size: u64) -> bool {
        off.checked_add(size)
            .is_some_and(|end| end <= self.mem.len() as u64)
    }

    fn get_uint(&self, off: u64, size: usize) -> Option<u64> {
        let start = usize::try_from(off).ok()?;
        let bytes = self.mem.get(start..start.checked_add(size)?)?;
        let mut v = 0u64;
        if self.msb {
            for &b in bytes {
                v = (v << 8) | u64::from(b);
            }
        } else {
            for &b in bytes.iter().rev() {
                v = (v << 8) | u64::from(b);
            }
        }
        Some(v)
    }

    /// `kmod_elf_new()`: `ENOEXEC` without the ELF magic, `EINVAL` for anything libkmod
    /// finds inconsistent.
    fn new(mem: &'a [u8]) -> Result<Self, Errno> {
        // elf_identify()
        if mem.len() <= 16 || !mem.starts_with(crate::file::ELF_MAGIC) {
            return Err(Errno::ENOEXEC);
        }
        let is32 = match mem.get(4) {
            Some(1) if mem.len() > 52 => true,
            Some(2) if mem.len() > 64 => false,
            _ => return Err(Errno::EINVAL),
        };
        let msb = match mem.get(5) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(Errno::EINVAL),
        };
        let mut elf = Elf {
            mem,
            is32,
            msb,
            shoff: 0,
            shnum: 0,
            shentsize: 0,
            strings_off: 0,
            strings_size: 0,
        };
        let inval = Errno::EINVAL;
        // e_shoff, e_shentsize, e_shnum, e_shstrndx
        let (shoff, shent, shnum, shstrndx, shdr_size) = if is32 {
            (
                elf.get_uint(32, 4),
                elf.get_uint(46, 2),
                elf.get_uint(48, 2),
                elf.get_uint(50, 2),
                40,
            )
        } else {
            (
                elf.get_uint(40, 8),
                elf.get_uint(58, 2),
                elf.get_uint(60, 2),
                elf.get_uint(62, 2),
                64,
            )
        };
        elf.shoff = shoff.ok_or(inval)?;
        elf.shentsize = shent.ok_or(inval)?;
        elf.shnum = shnum.ok_or(inval)?;
        let shstrndx = shstrndx.ok_or(inval)?;
        if elf.shentsize != shdr_size {
            return Err(inval);
        }
        if !elf.range_valid(elf.shoff, shdr_size * elf.shnum) {
            return Err(inval);
        }
        let (off, size, _) = elf.section_info(shstrndx).ok_or(inval)?;
        elf.strings_off = off;
        elf.strings_size = size;
        let last = off
            .checked_add(size)
            .and_then(|e| e.checked_sub(1))
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| mem.get(i));
        if size == 0 || last != Some(&0) {
            return Err(inval);
        }
        Ok(elf)
    }

    /// `elf_get_section_header_offset()`: 0 past the table.
    fn header_offset(&self, idx: u64) -> u64 {
        if idx == 0 || idx >= self.shnum {
            return 0;
        }
        self.shoff + idx * self.shentsize
    }

    /// `elf_get_section_info()`: (offset, size, name offset) of a section whose header and
    /// contents lie in the file (the name is checked once the string table is known).
    fn section_info(&self, idx: u64) -> Option<(u64, u64, u64)> {
        let off = self.header_offset(idx);
        if off == 0 {
            return None;
        }
        let (hdr, size_at, off_at, word) = if self.is32 {
            (40, 20, 16, 4)
        } else {
            (64, 32, 24, 8)
        };
        if !self.range_valid(off, hdr) {
            return None;
        }
        let size = self.get_uint(off + size_at, word)?;
        let sec_off = self.get_uint(off + off_at, word)?;
        let name = self.get_uint(off, 4)?;
        if !self.range_valid(sec_off, size) {
            return None;
        }
        Some((sec_off, size, name))
    }

    /// The name of a section (`nameoff` must lie in the string table).
    fn section_name(&self, nameoff: u64) -> Option<&'a [u8]> {
        if nameoff >= self.strings_size {
            return None;
        }
        let start = usize::try_from(self.strings_off + nameoff).ok()?;
        let rest = self.mem.get(start..)?;
        rest.split(|&b| b == 0).next()
    }

    /// The first section called `name` (`kmod_elf_get_section()`): index, offset, size.
    fn find(&self, name: &[u8]) -> Option<(u64, u64, u64)> {
        (1..self.shnum).find_map(|i| {
            let (off, size, n) = self.section_info(i)?;
            (self.section_name(n)? == name).then_some((i, off, size))
        })
    }
}

/// `kmod_elf_strip()`: a copy of `image` with `SHF_ALLOC` cleared in the `__versions` section
/// header (`modversion`) and the `vermagic=...` string of `.modinfo` overwritten with zeros
/// (`vermagic`), which makes the kernel skip those checks under `init_module`.
///
/// Fails like libkmod: `ENOEXEC`/`EINVAL` when the image is not an ELF file it can read,
/// `ENODATA` when `.modinfo` has no `vermagic=` (then `logged` is true).
pub fn strip(image: Vec<u8>, modversion: bool, vermagic: bool) -> Result<Vec<u8>, StripError> {
    let not_logged = |errno| StripError {
        errno,
        logged: false,
    };
    let (versions_flags, vermagic_range) = {
        let elf = Elf::new(&image).map_err(not_logged)?;
        let versions = if modversion {
            elf.find(b"__versions").map(|(idx, _, _)| {
                let (word, at) = if elf.is32 { (4, 8) } else { (8, 8) };
                (elf.header_offset(idx) + at, word)
            })
        } else {
            None
        };
        let magic = if vermagic {
            let modinfo = elf.find(b".modinfo").map(|(_, off, size)| (off, size));
            match modinfo {
                // No .modinfo: nothing to clear.
                None => None,
                Some((off, size)) => match find_vermagic(&image, off, size) {
                    Found::Range(r) => Some(r),
                    Found::Nothing => None,
                    Found::Missing => {
                        return Err(StripError {
                            errno: Errno::ENODATA,
                            logged: true,
                        });
                    }
                },
            }
        } else {
            None
        };
        let versions = versions.map(|(at, word)| (at, word, elf.get_uint(at, word)));
        (versions.map(|(at, word, v)| (at, word, v, elf.msb)), magic)
    };
    let mut out = image;
    if let Some((at, word, Some(v), msb)) = versions_flags {
        let v = v & !2u64; // SHF_ALLOC
        if let Some(slot) = usize::try_from(at)
            .ok()
            .and_then(|a| out.get_mut(a..a.checked_add(word)?))
        {
            for (i, b) in slot.iter_mut().enumerate() {
                let shift = if msb { 8 * (word - 1 - i) } else { 8 * i };
                *b = (v >> shift) as u8;
            }
        }
    }
    if let Some((start, len)) = vermagic_range
        && let Some(s) = start
            .checked_add(len)
            .and_then(|end| out.get_mut(start..end))
    {
        s.fill(0);
    }
    Ok(out)
}

enum Found {
    /// `(start, len)` of the `vermagic=` string.
    Range((usize, usize)),
    /// `.modinfo` is empty past its padding: nothing to do.
    Nothing,
    /// No `vermagic=` in a non-empty `.modinfo`: `ENODATA`.
    Missing,
}

/// `elf_strip_vermagic()`'s walk over `.modinfo` (its quirks included: strings are measured with
/// `strlen()`, which may run past the section; here it stops at the end of the image).
fn find_vermagic(mem: &[u8], sec_off: u64, sec_size: u64) -> Found {
    let (Ok(mut start), Ok(mut size)) = (usize::try_from(sec_off), usize::try_from(sec_size))
    else {
        return Found::Nothing;
    };
    if start == 0 {
        return Found::Nothing;
    }
    let at = |i: usize| mem.get(i).copied().unwrap_or(0);
    let strlen = |i: usize| {
        mem.get(i..)
            .map_or(0, |r| r.iter().position(|&b| b == 0).unwrap_or(r.len()))
    };
    // Skip zero padding.
    while size > 1 && at(start) == 0 {
        start += 1;
        size -= 1;
    }
    if size <= 1 {
        return Found::Nothing;
    }
    const KEY: &[u8] = b"vermagic=";
    let mut i = 0usize;
    while i < size {
        let s = start + i;
        if at(s) == 0 || i + 1 >= size || i + KEY.len() >= size {
            i += 1;
            continue;
        }
        let len = strlen(s);
        if !mem.get(s..).is_some_and(|r| r.starts_with(KEY)) {
            i += len + 1;
            continue;
        }
        return Found::Range((s, len));
    }
    Found::Missing
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_kmods() {
        assert_eq!(strerror(Errno::ENOENT), "No such file or directory");
        assert_eq!(strerror(Errno::EEXIST), "File exists");
        assert_eq!(mod_strerror(Errno::ENOEXEC), "Invalid module format");
        assert_eq!(mod_strerror(Errno::ENOENT), "Unknown symbol in module");
        assert_eq!(mod_strerror(Errno(3)), "Module has wrong symbol version");
        assert_eq!(mod_strerror(Errno::EINVAL), "Invalid parameters");
        assert_eq!(mod_strerror(Errno::EEXIST), "File exists");
        assert_eq!(
            mod_strerror(Errno::EKEYREJECTED),
            "Key was rejected by service"
        );
    }

    #[test]
    fn sysfs_compression_values() {
        assert_eq!(parse_sysfs_compression(None), (Compression::None, None));
        assert_eq!(
            parse_sysfs_compression(Some("xz\n")),
            (Compression::Xz, None)
        );
        assert_eq!(parse_sysfs_compression(Some("zstd\n")).0, Compression::Zstd);
        assert_eq!(parse_sysfs_compression(Some("gzip\n")).0, Compression::Gzip);
        let (c, e) = parse_sysfs_compression(Some("lz4\n"));
        assert_eq!(c, Compression::None);
        assert_eq!(e.as_deref(), Some("unknown kernel compression lz4"));
        // No newline: libkmod compares the whole buffer.
        assert_eq!(parse_sysfs_compression(Some("xz")).0, Compression::None);
    }

    #[test]
    fn profiles_say_what_they_decompress() {
        let p = |n| sim::profile::Profile::builtin(n).unwrap();
        assert_eq!(
            profile_compression(p("debian-6.1-amd64")),
            Compression::None
        );
        assert_eq!(
            profile_compression(p("debian-6.1-arm64")),
            Compression::None
        );
        assert_eq!(profile_compression(p("debian-6.12-amd64")), Compression::Xz);
        assert_eq!(profile_compression(p("debian-6.12-arm64")), Compression::Xz);
    }

    fn fixture(kernel: &str, name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/ko")
                .join(kernel)
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn strip_clears_versions_alloc_and_vermagic() {
        let img = fixture("debian-6.1-amd64", "mp_types.ko");
        let out = strip(img.clone(), true, true).unwrap();
        assert_eq!(out.len(), img.len());
        let info = crate::modinfo::read(&out).unwrap();
        assert!(info.value("vermagic").is_none());
        assert!(
            crate::modinfo::read(&img)
                .unwrap()
                .value("vermagic")
                .is_some()
        );
        let elf = Elf::new(&out).unwrap();
        let (idx, _, _) = elf.find(b"__versions").unwrap();
        let flags = elf.get_uint(elf.header_offset(idx) + 8, 8).unwrap();
        assert_eq!(flags & 2, 0);
        let before = Elf::new(&img).unwrap();
        assert_eq!(
            before.get_uint(before.header_offset(idx) + 8, 8).unwrap() & 2,
            2
        );
        // Only those bytes changed.
        let changed = img.iter().zip(&out).filter(|(a, b)| a != b).count();
        let vermagic_len = crate::modinfo::read(&img)
            .unwrap()
            .value("vermagic")
            .unwrap()
            .len()
            + "vermagic=".len();
        assert!(changed <= vermagic_len + 1, "{changed}");
        // Only one of the two.
        let v = strip(img.clone(), true, false).unwrap();
        assert!(
            crate::modinfo::read(&v)
                .unwrap()
                .value("vermagic")
                .is_some()
        );
        let m = strip(img.clone(), false, true).unwrap();
        let e = Elf::new(&m).unwrap();
        assert_eq!(e.get_uint(e.header_offset(idx) + 8, 8).unwrap() & 2, 2);
    }

    #[test]
    fn strip_errors_are_libkmods() {
        assert_eq!(
            strip(b"hello world, not elf".to_vec(), true, true)
                .unwrap_err()
                .errno,
            Errno::ENOEXEC
        );
        let img = fixture("debian-6.1-amd64", "bad_truncated.ko");
        assert_eq!(strip(img, true, true).unwrap_err().errno, Errno::EINVAL);
        // A module without __versions is fine for the modversion part.
        let img = fixture("debian-6.1-amd64", "no_versions.ko");
        assert!(strip(img, true, false).is_ok());
        // Every truncation of a module: an error or an image, never a panic.
        let img = fixture("debian-6.1-arm64", "mp_lib.ko");
        for cut in (0..img.len()).step_by(61) {
            let _ = strip(img[..cut].to_vec(), true, true);
        }
    }
}
