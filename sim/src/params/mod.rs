//! Module parameters as `kernel/params.c` parses and sets them, for Linux 6.1 and 6.12.
//!
//! - [`cmdline`]: `mod->args` ([`ArgBuf`], `strndup_user`), `next_arg`, `parameq`.
//! - [`kstrtox`]: lib/kstrtox.c (`kstrtoull` … `kstrtobool`).
//! - [`table`]: `struct kernel_param` and the ops it points to; the `__param` section reader.
//! - [`ops`]: the standard `set`/`get`/`free` functions over simulated [`Memory`].
//! - [`parse`]: `parse_args`, `parse_one`.
//! - [`module`]: `unknown_module_param_cb`, the `parse_args` step of `load_module`,
//!   `destroy_params`, sysfs show/store.
//! - [`dyndbg`]: the `dyndbg` parameter.
//! - [`standalone`]: a parameter table declared in Rust, without a module image.
//! - `strategies` (feature `proptest`): proptest strategies for parameter strings over a
//!   table, and a formatter that quotes values so the kernel reads them back unchanged.
//!
//! Values live in simulated memory exactly as the kernel lays them out; `charp` copies are
//! heap regions (`kmalloc_parameter`). Log lines go to a [`KernelLog`] with the kernel's text.
//! The kernel's `printk` cuts a record to 1021 bytes (6.12) or 989 bytes (6.1) of text; that
//! is the log's business and is not done here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cmdline;
pub mod ctype;
pub mod dyndbg;
pub mod kstrtox;
pub mod module;
pub mod ops;
pub mod parse;
pub mod standalone;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod table;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod tests;

pub use cmdline::{Arg, ArgBuf, next_arg, parameq, parameqn};
pub use module::{
    ModuleArgsOutcome, destroy_params, load_module_parse_args, param_attr_show, param_attr_store,
    unknown_module_param_cb,
};
pub use ops::Kp;
pub use parse::{parse_args, parse_one};
pub use standalone::{Outcome, ParamDecl, ParamType, StandaloneModule, Value};
pub use table::{
    CustomOps, KernelFn, KernelParam, OpFn, OpsKind, StdOps, read_param_section, resolve_ops,
};

use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::Memory;
use crate::profile::{KernelVersion, Profile};

/// The parts of the running kernel the parameter code consults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamEnv {
    /// 6.1 or 6.12 behaviour (`param_set_charp` on `ENOMEM`, dyndbg's `s` flag).
    pub version: KernelVersion,
    /// `PAGE_SIZE`: the sysfs buffer (`scnprintf(buffer, PAGE_SIZE, …)`) and vsprintf's
    /// `(efault)` threshold.
    pub page_size: usize,
    /// `CONFIG_DYNAMIC_DEBUG_CORE`: the real `ddebug_dyndbg_module_param_cb` or the stub.
    pub dynamic_debug_core: bool,
    /// `security_locked_down(LOCKDOWN_MODULE_PARAMETERS)` denies (hardware parameters → EPERM).
    pub params_locked_down: bool,
    /// `current->comm`, for the lockdown notice.
    pub comm: String,
}

impl ParamEnv {
    /// The environment of a profile's kernel (`CONFIG_DYNAMIC_DEBUG_CORE`, `PAGE_SHIFT`), not
    /// locked down, `comm` "insmod".
    pub fn from_profile(p: &Profile) -> Self {
        let shift = p
            .config_int("PAGE_SHIFT")
            .or_else(|| p.config_int("ARM64_PAGE_SHIFT"));
        let page_size = match shift {
            Some(s @ 12..=16) => 1usize << s,
            _ if p.is_enabled("ARM64_64K_PAGES") => 1 << 16,
            _ if p.is_enabled("ARM64_16K_PAGES") => 1 << 14,
            _ => 1 << 12,
        };
        ParamEnv {
            version: p.version(),
            page_size,
            dynamic_debug_core: p.is_enabled("DYNAMIC_DEBUG_CORE"),
            params_locked_down: false,
            comm: "insmod".to_string(),
        }
    }

    /// A Debian-like environment for `version`: 4 KiB pages, DYNAMIC_DEBUG_CORE, no lockdown.
    pub fn new(version: KernelVersion) -> Self {
        ParamEnv {
            version,
            page_size: 4096,
            dynamic_debug_core: true,
            params_locked_down: false,
            comm: "insmod".to_string(),
        }
    }
}

/// Code the simulator cannot run: a module's own `set`/`get`/`free` functions (or kernel
/// functions outside kernel/params.c). `func` is the symbol name, or the address in hex.
pub trait ModuleCode {
    /// `ops->set(val, kp)`; `val` is `None` for NULL.
    fn set(
        &mut self,
        func: &str,
        val: Option<&[u8]>,
        kp: &Kp<'_>,
        mem: &mut Memory,
        log: &mut KernelLog,
    ) -> Result<(), Errno>;
    /// `ops->get(buffer, kp)`: the bytes it writes.
    fn get(&mut self, func: &str, kp: &Kp<'_>, mem: &Memory) -> Result<Vec<u8>, Errno>;
    /// `ops->free(arg)`.
    fn free(&mut self, func: &str, arg: u64, mem: &mut Memory) {
        let _ = (func, arg, mem);
    }
}

/// A [`ModuleCode`] for when nothing is known about the module's functions: `set` succeeds and
/// changes nothing, `get` shows nothing, `free` does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoModuleCode;

impl ModuleCode for NoModuleCode {
    fn set(
        &mut self,
        _func: &str,
        _val: Option<&[u8]>,
        _kp: &Kp<'_>,
        _mem: &mut Memory,
        _log: &mut KernelLog,
    ) -> Result<(), Errno> {
        Ok(())
    }

    fn get(&mut self, _func: &str, _kp: &Kp<'_>, _mem: &Memory) -> Result<Vec<u8>, Errno> {
        Ok(Vec::new())
    }
}

/// Everything a parameter function touches (the kernel's globals, made explicit).
pub struct Ctx<'a> {
    /// The kernel's configuration.
    pub env: &'a ParamEnv,
    /// Simulated memory: module variables, descriptors, `charp` copies.
    pub mem: &'a mut Memory,
    /// The kernel log.
    pub log: &'a mut KernelLog,
    /// Names kernel (and optionally module) symbols by address: how ops pointers are
    /// recognised (`param_ops_int`, `param_set_int`).
    pub symbol_at: &'a dyn Fn(u64) -> Option<String>,
    /// Runs code the simulator cannot.
    pub code: &'a mut dyn ModuleCode,
    /// Set when the kernel would `add_taint(TAINT_USER, …)` (an unsafe parameter was set).
    pub taint_user: bool,
}

impl<'a> Ctx<'a> {
    /// A context with nothing tainted yet.
    pub fn new(
        env: &'a ParamEnv,
        mem: &'a mut Memory,
        log: &'a mut KernelLog,
        symbol_at: &'a dyn Fn(u64) -> Option<String>,
        code: &'a mut dyn ModuleCode,
    ) -> Self {
        Ctx {
            env,
            mem,
            log,
            symbol_at,
            code,
            taint_user: false,
        }
    }
}

/// Text from bytes the kernel produced (as the recorder decodes them): valid UTF-8 is kept,
/// each byte of an invalid sequence becomes U+00XX.
pub fn decode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    out
}
