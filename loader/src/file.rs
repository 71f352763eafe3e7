//! Opening a module file: plain ELF, or compressed with gzip, xz or zstd.
//!
//! The format is detected by its magic bytes, never by the file name, and compressed data are
//! decompressed here in userspace, bounded: past the limit (by default [`DEFAULT_MAX_SIZE`]) the
//! result is an error, not an allocation. The [`Compression`] found is kept, so that a caller
//! can do as libkmod does and either hand a compressed file to `finit_module` with
//! `MODULE_INIT_COMPRESSED_FILE` (when the kernel supports that compression) or load the bytes
//! decompressed here with `init_module`.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::errno::Errno;

/// The default bound on a module's (decompressed) size: 1 GiB. The largest Debian module is
/// about 20 MiB; the kernel's own bound on `init_module` is the memory it can `vmalloc`.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// The ELF magic, `\x7fELF`.
pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// How a module file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain ELF file.
    None,
    /// gzip (`.ko.gz`).
    Gzip,
    /// xz (`.ko.xz`).
    Xz,
    /// zstd (`.ko.zst`).
    Zstd,
}

impl Compression {
    /// The compression whose magic `bytes` start with; [`Compression::None`] for an ELF file;
    /// `None` for anything else.
    pub fn detect(bytes: &[u8]) -> Option<Compression> {
        if bytes.starts_with(ELF_MAGIC) {
            Some(Compression::None)
        } else if bytes.starts_with(XZ_MAGIC) {
            Some(Compression::Xz)
        } else if bytes.starts_with(ZSTD_MAGIC) {
            Some(Compression::Zstd)
        } else if bytes.starts_with(GZIP_MAGIC) {
            Some(Compression::Gzip)
        } else {
            None
        }
    }

    /// The name kmod uses for it (`"none"`, `"gzip"`, `"xz"`, `"zstd"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// Whether the data are compressed at all.
    pub fn is_compressed(self) -> bool {
        self != Compression::None
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a module file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file does not exist.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path names a directory.
    #[error("{}: is a directory, not a module file", path.display())]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Opening or reading the file failed otherwise.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file is neither an ELF file nor compressed data that decompress to one.
    #[error("{}: not a kernel module: {reason}", path.display())]
    NotAModule {
        /// The path given.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The compressed data end before the compressed stream does.
    #[error("{}: {kind} data are truncated", path.display())]
    Truncated {
        /// The path given.
        path: PathBuf,
        /// The compression of the file.
        kind: Compression,
    },
    /// The compressed data are not valid.
    #[error("{}: corrupt {kind} data: {detail}", path.display())]
    Corrupt {
        /// The path given.
        path: PathBuf,
        /// The compression of the file.
        kind: Compression,
        /// What the decompressor said.
        detail: String,
    },
    /// The file, or what it decompresses to, is larger than the limit.
    #[error("{}: {} the limit of {limit} bytes", path.display(),
        if kind.is_compressed() { "decompresses to more than" } else { "is larger than" })]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// The compression of the file ([`Compression::None`] when the file itself is too large).
        kind: Compression,
        /// The limit in bytes.
        limit: u64,
    },
}

impl FileError {
    /// The path of the file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::NotFound { path }
            | FileError::IsDirectory { path }
            | FileError::Io { path, .. }
            | FileError::NotAModule { path, .. }
            | FileError::Truncated { path, .. }
            | FileError::Corrupt { path, .. }
            | FileError::TooLarge { path, .. } => path,
        }
    }

    /// The errno a kmod tool reports for it: `ENOENT`, `EISDIR`, the system's errno for other
    /// I/O errors, `ENOEXEC` for data that are no module, `EFBIG` past the limit, `EINVAL` for
    /// corrupt or truncated compressed data (libkmod's choice).
    pub fn errno(&self) -> Errno {
        match self {
            FileError::NotFound { .. } => Errno::ENOENT,
            FileError::IsDirectory { .. } => Errno(21),
            FileError::Io { source, .. } => Errno::from_io(source),
            FileError::NotAModule { .. } => Errno::ENOEXEC,
            FileError::Truncated { .. } | FileError::Corrupt { .. } => Errno::EINVAL,
            FileError::TooLarge { .. } => Errno::EFBIG,
        }
    }
}

/// A module file read into memory, decompressed if it was compressed.
#[derive(Clone, Debug)]
pub struct ModuleFile {
    path: PathBuf,
    compression: Compression,
    file_size: u64,
    data: Vec<u8>,
}

impl ModuleFile {
    /// Reads the module file at `path`, decompressing it if needed, bounded by
    /// [`DEFAULT_MAX_SIZE`].
    ///
    /// Fails with [`FileError::NotFound`], [`FileError::IsDirectory`], [`FileError::Io`],
    /// [`FileError::NotAModule`] (neither ELF nor a known compression, or compressed data that
    /// are not ELF), [`FileError::Truncated`] or [`FileError::Corrupt`] (bad compressed data) and
    /// [`FileError::TooLarge`].
    pub fn open(path: impl AsRef<Path>) -> Result<ModuleFile, FileError> {
        ModuleFile::open_with_limit(path, DEFAULT_MAX_SIZE)
    }

    /// Like [`ModuleFile::open`], with `limit` bytes as the bound on both the file and what it
    /// decompresses to.
    pub fn open_with_limit(path: impl AsRef<Path>, limit: u64) -> Result<ModuleFile, FileError> {
        let path = path.as_ref();
        let bytes = read_limited(path, limit)?;
        ModuleFile::from_bytes(path, bytes, limit)
    }

    /// A module from bytes already in memory (`path` names them in errors), decompressed if
    /// they are compressed, with `limit` as the bound on the decompressed size.
    ///
    /// Fails like [`ModuleFile::open`], except for the I/O errors.
    pub fn from_bytes(
        path: impl AsRef<Path>,
        bytes: Vec<u8>,
        limit: u64,
    ) -> Result<ModuleFile, FileError> {
        let path = path.as_ref();
        let file_size = bytes.len() as u64;
        let compression = Compression::detect(&bytes).ok_or_else(|| FileError::NotAModule {
            path: path.to_path_buf(),
            reason: describe_magic(&bytes),
        })?;
        let data = if compression.is_compressed() {
            let data = decompress(compression, &bytes, limit).map_err(|e| e.at(path))?;
            if !data.starts_with(ELF_MAGIC) {
                return Err(FileError::NotAModule {
                    path: path.to_path_buf(),
                    reason: format!(
                        "its {compression} data decompress to {}",
                        describe_magic(&data)
                    ),
                });
            }
            data
        } else {
            if file_size > limit {
                return Err(FileError::TooLarge {
                    path: path.to_path_buf(),
                    kind: Compression::None,
                    limit,
                });
            }
            bytes
        };
        Ok(ModuleFile {
            path: path.to_path_buf(),
            compression,
            file_size,
            data,
        })
    }

    /// The path the module was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the file was stored.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The size of the file as stored (compressed or not).
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The module's ELF image (decompressed), including an appended signature if any.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The module's ELF image, taken out.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

/// A decompression failure, before it is tied to a path.
#[derive(Debug)]
pub enum DecompressError {
    /// The stream ends early.
    Truncated(Compression),
    /// The data are invalid.
    Corrupt(Compression, String),
    /// The output would pass the limit (in bytes).
    TooLarge(Compression, u64),
}

impl DecompressError {
    /// The same failure as a [`FileError`] about `path`.
    pub fn at(self, path: &Path) -> FileError {
        let path = path.to_path_buf();
        match self {
            DecompressError::Truncated(kind) => FileError::Truncated { path, kind },
            DecompressError::Corrupt(kind, detail) => FileError::Corrupt { path, kind, detail },
            DecompressError::TooLarge(kind, limit) => FileError::TooLarge { path, kind, limit },
        }
    }
}

/// The largest zstd window accepted (the decoder allocates a buffer of this size): zstd -19 uses
/// 8 MiB; `--long` at most 128 MiB.
const MAX_ZSTD_WINDOW: u64 = 128 << 20;

/// Decompresses `input` (of the given compression) into at most `limit` bytes; more is
/// [`DecompressError::TooLarge`], found without allocating past the limit. For
/// [`Compression::None`] the input is returned as it is (bounded the same way). Checksums in
/// the stream (gzip's CRC-32, xz's check, zstd's content checksum) are verified.
pub fn decompress(kind: Compression, input: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    match kind {
        Compression::None => {
            if input.len() as u64 > limit {
                return Err(DecompressError::TooLarge(kind, limit));
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(input), kind, input, limit),
        Compression::Xz => read_bounded(liblzma::read::XzDecoder::new(input), kind, input, limit),
        Compression::Zstd => {
            let mut frame = ruzstd::decoding::FrameDecoder::new();
            frame.set_max_window_size(limit.clamp(1 << 20, MAX_ZSTD_WINDOW));
            let out = {
                let mut dec =
                    ruzstd::decoding::StreamingDecoder::new_with_decoder(input, &mut frame)
                        .map_err(|e| classify(kind, &e.to_string()))?;
                read_bounded(&mut dec, kind, input, limit)?
            };
            if !frame.is_finished() {
                return Err(DecompressError::Truncated(kind));
            }
            match (
                frame.get_checksum_from_data(),
                frame.get_calculated_checksum(),
            ) {
                (Some(want), Some(got)) if want != got => Err(DecompressError::Corrupt(
                    kind,
                    format!("content checksum {got:#010x}, expected {want:#010x}"),
                )),
                _ => Ok(out),
            }
        }
    }
}

/// The bytes of the file at `path`, at most `limit` of them: a larger file, or one that never
/// ends (`/dev/zero`), is [`FileError::TooLarge`] after `limit + 1` bytes were read, whatever
/// its metadata says (a device's size is 0). A directory is [`FileError::IsDirectory`].
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => FileError::NotFound {
            path: path.to_path_buf(),
        },
        io::ErrorKind::IsADirectory => FileError::IsDirectory {
            path: path.to_path_buf(),
        },
        _ => FileError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(FileError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    if meta.len() <= limit {
        // The size is a hint only (the file may change); the read itself is bounded.
        bytes.reserve_exact(usize::try_from(meta.len()).unwrap_or(0));
    }
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            kind: Compression::None,
            limit,
        });
    }
    Ok(bytes)
}

/// Reads a decoder to its end, keeping at most `limit` bytes: the buffer grows by doubling but
/// never past the limit, so a decompression bomb costs at most `limit` bytes (and one chunk).
fn read_bounded(
    mut reader: impl Read,
    kind: Compression,
    input: &[u8],
    limit: u64,
) -> Result<Vec<u8>, DecompressError> {
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    // A module compresses 3-5 times; start there to avoid most re-allocations.
    let guess = input.len().saturating_mul(4).min(limit_len);
    out.try_reserve_exact(guess)
        .map_err(|_| DecompressError::TooLarge(kind, limit))?;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(DecompressError::Truncated(kind));
            }
            Err(e) => return Err(classify(kind, &e.to_string())),
        };
        let need = out.len().saturating_add(n);
        if need > limit_len {
            return Err(DecompressError::TooLarge(kind, limit));
        }
        if need > out.capacity() {
            let to = out.capacity().saturating_mul(2).max(need).min(limit_len);
            out.try_reserve_exact(to - out.len())
                .map_err(|_| DecompressError::TooLarge(kind, limit))?;
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Decoders word "ended early" in their own ways; everything else is corruption.
fn classify(kind: Compression, msg: &str) -> DecompressError {
    let m = msg.to_ascii_lowercase();
    if m.contains("unexpected end")
        || m.contains("unexpected eof")
        || m.contains("not enough")
        || m.contains("truncated")
        || m.contains("failed to fill whole buffer")
    {
        DecompressError::Truncated(kind)
    } else {
        DecompressError::Corrupt(kind, msg.to_owned())
    }
}

/// What the first bytes of a file that is not a module look like, for an error message.
fn describe_magic(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".to_owned();
    }
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!(
        "its first bytes {} are neither ELF nor gzip, xz or zstd",
        head.join(" ")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A device's metadata says 0 bytes: the read itself is what is bounded (`explain
    /// /dev/zero`, `image --sections /dev/zero`, `depmod -E /dev/zero` read until memory ran out).
    #[test]
    fn reads_stop_at_the_limit_whatever_the_metadata_says() {
        let zero = Path::new("/dev/zero");
        match read_limited(zero, 1 << 20) {
            Err(FileError::TooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
            other => panic!("{other:?}"),
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(matches!(
            read_limited(dir, 1),
            Err(FileError::IsDirectory { .. })
        ));
        let e = ModuleFile::open_with_limit(zero, 4096).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: is larger than the limit of 4096 bytes"
        );
    }

    #[test]
    fn detects_by_magic() {
        assert_eq!(Compression::detect(b"\x7fELF\x02"), Some(Compression::None));
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Some(Compression::Xz)
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::detect(b"hello"), None);
        assert_eq!(Compression::detect(b""), None);
    }

    #[test]
    fn garbage_is_not_a_module() {
        let e = ModuleFile::from_bytes("x.ko", b"hello world".to_vec(), 100).unwrap_err();
        assert!(matches!(e, FileError::NotAModule { .. }), "{e}");
        assert_eq!(e.errno(), Errno::ENOEXEC);
        let e = ModuleFile::from_bytes("x.ko", Vec::new(), 100).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn gzip_round_trip_bounded() {
        use std::io::Write;
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(10_000, 7);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&elf).unwrap();
        let gz = enc.finish().unwrap();
        let m = ModuleFile::from_bytes("a.ko.gz", gz.clone(), 10_000).unwrap();
        assert_eq!(m.compression(), Compression::Gzip);
        assert_eq!(m.data(), &elf[..]);
        let e = ModuleFile::from_bytes("a.ko.gz", gz.clone(), 9_999).unwrap_err();
        assert!(matches!(e, FileError::TooLarge { limit: 9_999, .. }), "{e}");
        for cut in [3, 10, gz.len() / 2, gz.len() - 4] {
            let e = ModuleFile::from_bytes("a.ko.gz", gz[..cut].to_vec(), 1 << 20).unwrap_err();
            assert!(matches!(e, FileError::Truncated { .. }), "cut {cut}: {e}");
        }
        let mut bad = gz.clone();
        bad[20] ^= 0xff;
        bad[21] ^= 0xff;
        let e = ModuleFile::from_bytes("a.ko.gz", bad, 1 << 20).unwrap_err();
        assert!(
            matches!(e, FileError::Corrupt { .. } | FileError::Truncated { .. }),
            "{e}"
        );
    }

    #[test]
    fn compressed_non_elf_is_not_a_module() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"just text").unwrap();
        let gz = enc.finish().unwrap();
        let e = ModuleFile::from_bytes("a.ko.gz", gz, 1 << 20).unwrap_err();
        assert!(matches!(e, FileError::NotAModule { .. }), "{e}");
        assert!(e.to_string().contains("gzip data decompress to"), "{e}");
    }

    #[test]
    fn missing_and_directory() {
        let e = ModuleFile::open("/nonexistent/x.ko").unwrap_err();
        assert!(matches!(e, FileError::NotFound { .. }), "{e}");
        assert_eq!(e.errno(), Errno::ENOENT);
        let e = ModuleFile::open(std::env::temp_dir()).unwrap_err();
        assert!(matches!(e, FileError::IsDirectory { .. }), "{e}");
        assert!(e.to_string().contains("is a directory"), "{e}");
    }
}

/// Tests on the committed fixture modules (`tests/fixtures/ko/<kernel>/`).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod fixture_tests {
    use super::*;

    fn fixtures(kernel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ko")
            .join(kernel)
    }

    const KERNELS: [&str; 4] = [
        "debian-6.1-amd64",
        "debian-6.1-arm64",
        "debian-6.12-amd64",
        "debian-6.12-arm64",
    ];

    #[test]
    fn compressed_fixtures_decompress_to_the_plain_module() {
        for k in KERNELS {
            for base in ["mp_lib", "mp_types"] {
                let plain = std::fs::read(fixtures(k).join(format!("{base}.ko"))).unwrap();
                let m = ModuleFile::open(fixtures(k).join(format!("{base}.ko"))).unwrap();
                assert_eq!(m.compression(), Compression::None);
                assert_eq!(m.data(), &plain[..]);
                for (ext, kind) in [
                    ("gz", Compression::Gzip),
                    ("xz", Compression::Xz),
                    ("zst", Compression::Zstd),
                ] {
                    let p = fixtures(k).join(format!("{base}.ko.{ext}"));
                    let m = ModuleFile::open(&p).unwrap();
                    assert_eq!(m.compression(), kind, "{}", p.display());
                    assert_eq!(m.data(), &plain[..], "{}", p.display());
                    assert!(m.file_size() < plain.len() as u64);
                    // One byte short of the decompressed size is too large.
                    let e = ModuleFile::open_with_limit(&p, plain.len() as u64 - 1).unwrap_err();
                    assert!(matches!(e, FileError::TooLarge { .. }), "{e}");
                    assert!(e.to_string().contains("decompresses to more than"), "{e}");
                    assert_eq!(e.errno(), Errno::EFBIG);
                }
            }
        }
    }

    #[test]
    fn truncated_compressed_data_are_reported_as_truncated() {
        let dir = fixtures("debian-6.1-amd64");
        for ext in ["gz", "xz", "zst"] {
            let p = dir.join(format!("mp_types.ko.{ext}"));
            let bytes = std::fs::read(&p).unwrap();
            // Every cut past the magic: never a panic, never success.
            for cut in (6..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
                let e = ModuleFile::from_bytes(&p, bytes[..cut].to_vec(), DEFAULT_MAX_SIZE)
                    .unwrap_err();
                assert!(
                    matches!(e, FileError::Truncated { .. }),
                    "{ext} cut at {cut} of {}: {e}",
                    bytes.len()
                );
                assert_eq!(e.errno(), Errno::EINVAL);
            }
        }
    }

    #[test]
    fn corrupt_compressed_data_are_errors() {
        let dir = fixtures("debian-6.1-amd64");
        for ext in ["gz", "xz", "zst"] {
            let p = dir.join(format!("mp_types.ko.{ext}"));
            let bytes = std::fs::read(&p).unwrap();
            // (From byte 12: the gzip header's XFL and OS bytes, 8 and 9, are not checked.)
            for at in (12..bytes.len() - 8).step_by(131) {
                let mut bad = bytes.clone();
                bad[at] ^= 0x55;
                match ModuleFile::from_bytes(&p, bad, DEFAULT_MAX_SIZE) {
                    Err(FileError::Corrupt { .. } | FileError::Truncated { .. }) => {}
                    Err(e) => panic!("{ext} flipped at {at}: unexpected {e}"),
                    // A flip that still decodes must have been caught by a checksum: gzip
                    // (CRC-32), xz (CRC-32) and zstd -19 (xxhash) all have one.
                    Ok(_) => panic!("{ext} flipped at {at}: accepted"),
                }
            }
        }
    }

    #[test]
    fn broken_plain_files() {
        let dir = fixtures("debian-6.1-amd64");
        let e = ModuleFile::open(dir.join("empty.ko")).unwrap_err();
        assert!(matches!(e, FileError::NotAModule { .. }), "{e}");
        let e = ModuleFile::open(dir.join("bad_magic.ko")).unwrap_err();
        assert!(e.to_string().contains("7e 45 4c 46"), "{e}");
        // A truncated ELF file is still read: whether it is a valid module is modinfo's call.
        let m = ModuleFile::open(dir.join("bad_truncated.ko")).unwrap();
        assert_eq!(m.compression(), Compression::None);
    }
}
