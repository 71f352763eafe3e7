//! `KernelBackend`: the real kernel, through the module system calls and procfs/sysfs.
//!
//! This file holds the crate's only `unsafe` code: the raw system calls (`init_module`,
//! `finit_module`, `delete_module`, `syslog`, `capget`/`capset`, `prctl`), each block with the
//! reason it is sound. Everything else reads files.

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::backend::{Backend, BackendError, FinitFd, ModuleState, ModuleTable, Result};
use crate::errno::Errno;

/// The largest kernel log buffer this backend reads (the kernel's own maximum is 32 MiB).
const MAX_LOG_BYTES: usize = 32 << 20;
/// The largest procfs/sysfs file this backend reads.
const MAX_PROC_FILE: u64 = 16 << 20;

/// `syslog(2)` actions (`include/linux/syslog.h`).
const SYSLOG_ACTION_READ_CLEAR: libc::c_int = 4;
const SYSLOG_ACTION_CLEAR: libc::c_int = 5;
const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;

/// The running kernel.
#[derive(Debug, Default)]
pub struct KernelBackend {
    _private: (),
}

impl KernelBackend {
    /// A backend for the running kernel. Loading needs `CAP_SYS_MODULE`; reading the log needs
    /// `CAP_SYSLOG` (or `dmesg_restrict=0`).
    pub fn new() -> Self {
        KernelBackend { _private: () }
    }
}

fn last_errno() -> Errno {
    Errno::from_io(&std::io::Error::last_os_error())
}

/// The result of a raw system call: 0 is success, -1 sets errno.
fn check(op: &str, rc: libc::c_long) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(BackendError::new(op, last_errno()))
    }
}

fn params_ptr(params: Option<&CStr>) -> *const libc::c_char {
    params.map_or(std::ptr::null(), CStr::as_ptr)
}

/// Read a procfs/sysfs file whole, bounded.
fn read_small(path: &Path) -> std::result::Result<String, Errno> {
    read_small_bytes(path).map(|b| decode_bytes(&b))
}

/// [`read_small`]'s bytes, as the kernel wrote them.
fn read_small_bytes(path: &Path) -> std::result::Result<Vec<u8>, Errno> {
    let f = fs::File::open(path).map_err(|e| Errno::from_io(&e))?;
    let mut buf = Vec::new();
    f.take(MAX_PROC_FILE)
        .read_to_end(&mut buf)
        .map_err(|e| Errno::from_io(&e))?;
    Ok(buf)
}

/// Text from bytes the kernel produced: valid UTF-8 is kept, and each byte of an invalid
/// sequence becomes the character U+00XX, so no byte is lost or merged (the C runner writes the
/// same JSON for the same bytes).
/// The simulator's own rule ([`sim::image::decode_bytes`]), so that both backends name
/// things alike.
pub fn decode_bytes(bytes: &[u8]) -> String {
    sim::image::decode_bytes(bytes)
}

fn read_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    read_small(path).map_err(|e| BackendError::new(format!("read {}", path.display()), e))
}

/// Strip the `<level>` and `[ timestamp]` prefixes of one `syslog(2)` line.
pub fn strip_log_prefixes(line: &str) -> &str {
    let mut s = line;
    if let Some(rest) = s.strip_prefix('<')
        && let Some(end) = rest.find('>')
        && rest[..end].bytes().all(|b| b.is_ascii_digit())
    {
        s = &rest[end + 1..];
    }
    if let Some(rest) = s.strip_prefix('[')
        && let Some(end) = rest.find(']')
        && rest[..end]
            .bytes()
            .all(|b| b == b' ' || b == b'.' || b.is_ascii_digit())
    {
        let after = &rest[end + 1..];
        s = after.strip_prefix(' ').unwrap_or(after);
    }
    s
}

impl Backend for KernelBackend {
    fn describe(&self) -> String {
        "kernel".to_string()
    }

    fn init_module(&mut self, image: &[u8], params: Option<&CStr>) -> Result<()> {
        // SAFETY: init_module reads `image.len()` bytes from `image.as_ptr()`, a live slice, and
        // a NUL-terminated string (or NULL) from `params`, which lives across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_init_module,
                image.as_ptr(),
                image.len() as libc::c_ulong,
                params_ptr(params),
            )
        };
        check("init_module", rc)
    }

    fn finit_module(&mut self, fd: FinitFd<'_>, params: Option<&CStr>, flags: u32) -> Result<()> {
        // SAFETY: finit_module takes an fd number (open or not: the kernel checks), a NUL-terminated
        // string or NULL that lives across the call, and an integer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                fd.raw(),
                params_ptr(params),
                flags as libc::c_int,
            )
        };
        check("finit_module", rc)
    }

    fn delete_module(&mut self, name: &CStr, flags: u32) -> Result<()> {
        // SAFETY: delete_module reads a NUL-terminated string that lives across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_delete_module,
                name.as_ptr(),
                flags as libc::c_uint,
            )
        };
        check("delete_module", rc)
    }

    fn modules(&self) -> Result<ModuleTable> {
        let raw = read_small_bytes(Path::new("/proc/modules"))
            .map_err(|e| BackendError::new("read /proc/modules", e))?;
        let mut table = ModuleTable::new();
        for raw_line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = decode_bytes(raw_line);
            let line = line.as_str();
            let Some(raw_name) = raw_line
                .split(|&b| b == b' ')
                .next()
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            // The directory is named by the name's bytes (not its text: a name that is not
            // UTF-8 reads as other bytes once decoded).
            let dir = Path::new("/sys/module").join(std::ffi::OsStr::from_bytes(raw_name));
            let field = |f: &str| read_small(&dir.join(f)).map(|s| s.trim_end().to_string());
            let refcnt = field("refcnt")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            let mut holders: Vec<String> = match fs::read_dir(dir.join("holders")) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            };
            holders.sort();
            let mut names: Vec<String> = match fs::read_dir(dir.join("parameters")) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            let params = names
                .into_iter()
                .map(|p| {
                    let v = match read_small(&dir.join("parameters").join(&p)) {
                        Ok(mut v) => {
                            if v.ends_with('\n') {
                                v.pop();
                            }
                            v
                        }
                        Err(e) => format!("<error {e}>"),
                    };
                    (p, v)
                })
                .collect();
            let state = ModuleState {
                initstate: field("initstate").unwrap_or_default(),
                taint: field("taint").unwrap_or_default(),
                refcnt,
                holders,
                params,
                proc_modules: line.to_string(),
            };
            table.insert(decode_bytes(raw_name), state);
        }
        Ok(table)
    }

    fn kernel_tainted(&self) -> Result<u64> {
        let t = read_file("/proc/sys/kernel/tainted")?;
        t.trim().parse().map_err(|_| {
            BackendError::with_detail(
                "read /proc/sys/kernel/tainted",
                Errno::EINVAL,
                t.trim().to_string(),
            )
        })
    }

    fn clear_log(&mut self) -> Result<()> {
        // SAFETY: SYSLOG_ACTION_CLEAR takes no buffer (NULL, 0).
        let rc = unsafe { libc::klogctl(SYSLOG_ACTION_CLEAR, std::ptr::null_mut(), 0) };
        if rc < 0 {
            Err(BackendError::new("syslog(CLEAR)", last_errno()))
        } else {
            Ok(())
        }
    }

    fn take_log(&mut self) -> Result<Vec<String>> {
        // SAFETY: SYSLOG_ACTION_SIZE_BUFFER takes no buffer (NULL, 0) and returns a size.
        let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(BackendError::new("syslog(SIZE_BUFFER)", last_errno()));
        }
        let size = usize::try_from(size)
            .unwrap_or(0)
            .clamp(4096, MAX_LOG_BYTES);
        let mut buf = vec![0u8; size];
        let len = libc::c_int::try_from(buf.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel writes at most `len` bytes into `buf`, which has that many.
        let n = unsafe { libc::klogctl(SYSLOG_ACTION_READ_CLEAR, buf.as_mut_ptr().cast(), len) };
        if n < 0 {
            return Err(BackendError::new("syslog(READ_CLEAR)", last_errno()));
        }
        buf.truncate(usize::try_from(n).unwrap_or(0));
        let text = decode_bytes(&buf);
        Ok(text
            .lines()
            .map(|l| strip_log_prefixes(l).to_string())
            .collect())
    }

    fn write_control(&mut self, path: &str, value: &str) -> Result<()> {
        // No O_CREAT: a missing control file gives the kernel's own errno.
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| BackendError::new(format!("write {path}"), Errno::from_io(&e)))
    }

    fn drop_capability(&mut self, name: &str) -> Result<()> {
        let cap: u32 = match name {
            "CAP_SYS_MODULE" => 16,
            _ => {
                return Err(BackendError::with_detail(
                    "drop_capability",
                    Errno::EINVAL,
                    format!("unknown capability {name}"),
                ));
            }
        };
        drop_cap(cap)
    }

    fn boot_args(&mut self, append: &str) -> Result<()> {
        let cmdline = read_file("/proc/cmdline")?;
        let have: Vec<&str> = cmdline.split_whitespace().collect();
        for word in append.split_whitespace() {
            if !have.contains(&word) {
                return Err(BackendError::with_detail(
                    "boot",
                    Errno::EINVAL,
                    format!(
                        "the running kernel was not booted with `{word}` (cmdline: {})",
                        cmdline.trim()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `struct __user_cap_header_struct` (`include/uapi/linux/capability.h`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Remove capability `cap` from this process's bounding, effective and permitted sets.
fn drop_cap(cap: u32) -> Result<()> {
    // SAFETY: prctl(PR_CAPBSET_DROP, cap) takes integers only.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    if rc != 0 {
        return Err(BackendError::new("prctl(PR_CAPBSET_DROP)", last_errno()));
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a version-3 header writes two CapData structs, which `data` holds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    check("capget", rc)?;
    let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
    if let Some(d) = data.get_mut(word) {
        d.effective &= !bit;
        d.permitted &= !bit;
        d.inheritable &= !bit;
    }
    // SAFETY: capset reads a version-3 header and two CapData structs, which live across the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    check("capset", rc)
}

/// A NUL-terminated copy of `s`, or `EINVAL` if it holds a NUL byte.
pub fn cstring(op: &str, s: &str) -> Result<CString> {
    CString::new(s)
        .map_err(|_| BackendError::with_detail(op, Errno::EINVAL, "string holds a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_bytes_become_latin1_characters_and_valid_text_is_kept() {
        assert_eq!(
            decode_bytes(b"caf\xc3\xa9 \xff\xfe!"),
            "caf\u{e9} \u{ff}\u{fe}!"
        );
        assert_eq!(decode_bytes(b"\xc3"), "\u{c3}");
    }

    #[test]
    fn log_prefixes_are_stripped_and_text_kept() {
        assert_eq!(
            strip_log_prefixes("<4>[    1.234567] mp: hello"),
            "mp: hello"
        );
        assert_eq!(strip_log_prefixes("<12>[12345.000001] x"), "x");
        assert_eq!(
            strip_log_prefixes("no prefix [1] here"),
            "no prefix [1] here"
        );
        assert_eq!(strip_log_prefixes("<4>plain"), "plain");
        assert_eq!(strip_log_prefixes("<x>[ 1.0] y"), "<x>[ 1.0] y");
    }
}
