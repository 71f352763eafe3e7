//! The file behind a `finit_module` descriptor, read the way `kernel_read_file_from_fd()`
//! (fs/kernel_read_file.c) reads it: the descriptor must be open for reading and not `O_PATH`
//! (`EBADF`), the file regular (`EINVAL`), nobody may have it open for writing (`ETXTBSY`,
//! `deny_write_access()`), its size positive (`EINVAL`) and at most `INT_MAX` (`EFBIG`).
//!
//! *Invariant:* no read is larger than the file's size as `fstat` reports it, capped at
//! `INT_MAX`; nothing here needs `unsafe` (the descriptor is duplicated through `std`).

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use crate::errno::Errno;

/// `INT_MAX`: the largest module file the kernel reads.
pub const MAX_MODULE_FILE: u64 = i32::MAX as u64;

/// The descriptor handed to `finit_module`: an open file, or a number that is not an open
/// descriptor (which the kernel answers with `EBADF`).
#[derive(Clone, Copy, Debug)]
pub enum FinitFd<'a> {
    /// An open descriptor.
    Open(BorrowedFd<'a>),
    /// A descriptor number that is not open in this process.
    NotOpen(RawFd),
}

impl FinitFd<'_> {
    /// The number passed to the system call.
    pub fn raw(&self) -> RawFd {
        match self {
            FinitFd::Open(fd) => fd.as_raw_fd(),
            FinitFd::NotOpen(n) => *n,
        }
    }
}

/// `O_ACCMODE` and `O_PATH` from `/proc/self/fdinfo/<fd>`'s `flags:` line (octal).
fn fd_flags(fd: RawFd) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("flags:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_PATH: u32 = 0o10000000;

/// True if some descriptor of this process has the file `(dev, ino)` open for writing (the
/// kernel's `i_writecount > 0`). Writers in other processes are not visible from here.
fn has_writer(dev: u64, ino: u64) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    rd.filter_map(|e| e.ok()).any(|e| {
        let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else {
            return false;
        };
        let same = std::fs::metadata(e.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino);
        same && fd_flags(n).is_some_and(|f| f & O_PATH == 0 && f & O_ACCMODE != 0)
    })
}

/// The inode of a descriptor `finit_module` can read (6.12's `idempotent_init_module()` keys
/// on `file_inode(f)`): `None` when the kernel answers `EBADF` before looking at it.
pub fn file_key(fd: FinitFd<'_>) -> Option<crate::kernel::FileKey> {
    let FinitFd::Open(bfd) = fd else {
        return None;
    };
    let flags = fd_flags(bfd.as_raw_fd())?;
    if flags & O_PATH != 0 || flags & O_ACCMODE == O_WRONLY {
        return None;
    }
    let file = File::from(bfd.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    Some(crate::kernel::FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// Models `kernel_read_file_from_fd(fd, 0, &buf, INT_MAX, NULL, READING_MODULE)`: the whole
/// file, or the errno the kernel gives. `limit` bounds the read further (a simulated memory
/// limit: `ENOMEM`, like a failed `vmalloc`).
pub fn kernel_read_file_from_fd(fd: FinitFd<'_>, limit: u64) -> Result<Vec<u8>, Errno> {
    let FinitFd::Open(bfd) = fd else {
        return Err(Errno::EBADF);
    };
    let flags = fd_flags(bfd.as_raw_fd()).ok_or(Errno::EBADF)?;
    if flags & O_PATH != 0 || flags & O_ACCMODE == O_WRONLY {
        return Err(Errno::EBADF);
    }
    let file = File::from(bfd.try_clone_to_owned().map_err(|e| Errno::from_io(&e))?);
    let meta = file.metadata().map_err(|e| Errno::from_io(&e))?;
    if !meta.file_type().is_file() {
        return Err(Errno::EINVAL);
    }
    if has_writer(meta.dev(), meta.ino()) {
        return Err(Errno::ETXTBSY);
    }
    let size = meta.len();
    if size == 0 {
        return Err(Errno::EINVAL);
    }
    if size > MAX_MODULE_FILE {
        return Err(Errno::EFBIG);
    }
    if size > limit {
        return Err(Errno::ENOMEM);
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(size as usize)
        .map_err(|_| Errno::ENOMEM)?;
    // The kernel reads from offset 0 whatever the descriptor's position (kernel_read with pos 0).
    use std::os::unix::fs::FileExt;
    buf.resize(size as usize, 0);
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Errno::from_io(&e)),
        }
    }
    Ok(buf)
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno::from_io(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn tmp(name: &str, data: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("sim-file-{}-{name}", std::process::id()));
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn descriptors_get_the_kernels_errno() {
        let p = tmp("a", b"\x7fELF....");
        let ro = File::open(&p).unwrap();
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::Open(ro.as_fd()), u64::MAX)
                .unwrap()
                .len(),
            8
        );
        let wo = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::Open(wo.as_fd()), u64::MAX),
            Err(Errno::EBADF)
        );
        // The read-only descriptor now has a writer beside it.
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::Open(ro.as_fd()), u64::MAX),
            Err(Errno::ETXTBSY)
        );
        drop(wo);
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::Open(ro.as_fd()), 4),
            Err(Errno::ENOMEM)
        );
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::NotOpen(4000), u64::MAX),
            Err(Errno::EBADF)
        );
        let dir = File::open(std::env::temp_dir()).unwrap();
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::Open(dir.as_fd()), u64::MAX),
            Err(Errno::EINVAL)
        );
        let e = tmp("empty", b"");
        let ef = File::open(&e).unwrap();
        assert_eq!(
            kernel_read_file_from_fd(FinitFd::Open(ef.as_fd()), u64::MAX),
            Err(Errno::EINVAL)
        );
        std::fs::remove_file(p).unwrap();
        std::fs::remove_file(e).unwrap();
    }
}
