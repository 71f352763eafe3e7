//! The `Backend` trait: one interface to a module loader, the real kernel's or the simulator's.
//!
//! A backend takes the three system calls of module loading and answers questions about the
//! state they leave behind, in the terms a real system shows it: `/proc/modules`,
//! `/sys/module/<name>/...`, the kernel log and `/proc/sys/kernel/tainted`. The scenario runner
//! and the command line tools are written against this trait only.

use std::ffi::CStr;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::errno::Errno;

/// A failed backend operation: the errno the caller sees, and what was being done.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{op}: {errno}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct BackendError {
    /// The errno the system call (or file operation) returned.
    pub errno: Errno,
    /// The operation that failed (`"finit_module"`, `"read /proc/modules"`, ...).
    pub op: String,
    /// More detail for a person, when there is some.
    pub detail: Option<String>,
}

impl BackendError {
    /// An error of `op` with `errno` and no further detail.
    pub fn new(op: impl Into<String>, errno: Errno) -> Self {
        BackendError {
            errno,
            op: op.into(),
            detail: None,
        }
    }

    /// An error of `op` with `errno` and a detail for a person.
    pub fn with_detail(op: impl Into<String>, errno: Errno, detail: impl Into<String>) -> Self {
        BackendError {
            errno,
            op: op.into(),
            detail: Some(detail.into()),
        }
    }
}

/// Results of backend operations.
pub type Result<T> = std::result::Result<T, BackendError>;

/// `finit_module` flag: ignore symbol version hashes (`MODULE_INIT_IGNORE_MODVERSIONS`).
pub const MODULE_INIT_IGNORE_MODVERSIONS: u32 = 1;
/// `finit_module` flag: ignore the kernel version magic (`MODULE_INIT_IGNORE_VERMAGIC`).
pub const MODULE_INIT_IGNORE_VERMAGIC: u32 = 2;
/// `finit_module` flag: the file is compressed; the kernel decompresses it
/// (`MODULE_INIT_COMPRESSED_FILE`).
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;
/// `delete_module` flag: do not wait (`O_NONBLOCK`).
pub const O_NONBLOCK: u32 = 0o4000;
/// `delete_module` flag: force the removal (`O_TRUNC`).
pub const O_TRUNC: u32 = 0o1000;

pub use sim::file::FinitFd;

/// One loaded module as the kernel shows it in `/proc/modules` and `/sys/module/<name>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleState {
    /// `/sys/module/<m>/initstate`: `live`, `coming` or `going`.
    pub initstate: String,
    /// `/sys/module/<m>/taint`: the module's taint letters (`OE`), possibly empty.
    pub taint: String,
    /// `/sys/module/<m>/refcnt`.
    pub refcnt: i64,
    /// The names in `/sys/module/<m>/holders/`, sorted.
    pub holders: Vec<String>,
    /// Every file in `/sys/module/<m>/parameters/`, sorted by name: its content with one
    /// trailing newline removed, or `<error ENAME>` when it cannot be read.
    pub params: IndexMap<String, String>,
    /// The module's line of `/proc/modules`, without the newline.
    pub proc_modules: String,
}

/// The loaded modules, in `/proc/modules` order (newest first).
pub type ModuleTable = IndexMap<String, ModuleState>;

/// A module loader: the real kernel's or a simulated one.
pub trait Backend {
    /// A short description for people and for recorded output (`"kernel"`, `"sim debian-6.1-amd64"`).
    fn describe(&self) -> String;

    /// `init_module(2)`: load the module in `image` with the parameter string `params` (`None`
    /// passes a NULL pointer, which the kernel answers with `EFAULT` late in the load).
    fn init_module(&mut self, image: &[u8], params: Option<&CStr>) -> Result<()>;

    /// `finit_module(2)`: load the module open at `fd`, with `params` and `flags`
    /// (`MODULE_INIT_*`).
    fn finit_module(&mut self, fd: FinitFd<'_>, params: Option<&CStr>, flags: u32) -> Result<()>;

    /// `delete_module(2)`: unload the module `name` with `flags` (`O_NONBLOCK`, `O_TRUNC`).
    fn delete_module(&mut self, name: &CStr, flags: u32) -> Result<()>;

    /// The loaded modules and their state, in `/proc/modules` order.
    fn modules(&self) -> Result<ModuleTable>;

    /// `/proc/sys/kernel/tainted`: the kernel's taint mask.
    fn kernel_tainted(&self) -> Result<u64>;

    /// Forget the kernel log lines produced so far (the next `take_log` starts after them).
    fn clear_log(&mut self) -> Result<()>;

    /// The kernel log lines produced since the last `clear_log` or `take_log`, without level
    /// and timestamp prefixes, one entry per line.
    fn take_log(&mut self) -> Result<Vec<String>>;

    /// Write `value` to a control file such as `/proc/sys/kernel/modules_disabled` or
    /// `/sys/module/module/parameters/sig_enforce`.
    fn write_control(&mut self, path: &str, value: &str) -> Result<()>;

    /// Drop a capability (`CAP_SYS_MODULE`) for the rest of this backend's life.
    fn drop_capability(&mut self, name: &str) -> Result<()>;

    /// What the next loaded module's `init` returns (a scenario's `init_returns`). Only a
    /// simulated kernel can honour it; the real kernel runs the module's own code.
    fn set_init_return(&mut self, _ret: Option<i32>) {}

    /// The most memory the kernel could give a module image, when it is known (a simulated
    /// machine's memory limit; a real kernel's `vmalloc` is not predicted: `None`). A loader
    /// need not read or decompress more than this: the kernel would answer `ENOMEM`.
    fn memory_limit(&self) -> Option<u64> {
        None
    }

    /// Make sure the kernel runs with `append` on its command line (a real kernel can only be
    /// checked; a simulated one applies it).
    fn boot_args(&mut self, append: &str) -> Result<()>;
}
