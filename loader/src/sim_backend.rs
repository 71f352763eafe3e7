//! `SimBackend`: the simulated kernel (`sim::Kernel`) behind the `Backend` trait.

use std::ffi::CStr;

use sim::kernel::{Kernel, ProfileRef, Settings};
use sim::profile::Profile;

use crate::backend::{Backend, BackendError, FinitFd, ModuleState, ModuleTable, Result};
use crate::errno::Errno;

/// A simulated machine, driven through the same calls as the real kernel.
#[derive(Debug)]
pub struct SimBackend {
    kernel: Kernel,
    /// `init_returns` for the next load (set by the scenario runner).
    next_init_return: Option<i32>,
}

fn err(op: &str, e: sim::kernel::SysError) -> BackendError {
    BackendError::with_detail(op, e.errno, e.step)
}

impl SimBackend {
    /// A freshly booted simulated machine running `profile`.
    pub fn new(profile: impl Into<ProfileRef>) -> Self {
        SimBackend {
            kernel: Kernel::new(profile),
            next_init_return: None,
        }
    }

    /// The simulated machine `kernel` (made with its own settings).
    pub fn from_kernel(kernel: Kernel) -> Self {
        SimBackend {
            kernel,
            next_init_return: None,
        }
    }

    /// A simulated machine running the embedded profile `name` (`debian-6.1-amd64`, ...).
    pub fn builtin(name: &str) -> std::result::Result<Self, sim::profile::ProfileError> {
        Ok(SimBackend::new(Profile::builtin(name)?))
    }

    /// The simulated kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The simulated kernel, to change settings or install init hooks.
    pub fn kernel_mut(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    /// Make the next loaded module's `init` return `ret` (a scenario's `init_returns`).
    pub fn set_next_init_return(&mut self, ret: Option<i32>) {
        self.next_init_return = ret;
    }

    fn apply_init_return(&mut self) {
        if let Some(r) = self.next_init_return.take() {
            self.kernel.set_default_init_return(r);
        } else {
            self.kernel.clear_default_init_return();
        }
    }
}

impl Backend for SimBackend {
    fn describe(&self) -> String {
        format!("sim {}", self.kernel.profile().name())
    }

    fn memory_limit(&self) -> Option<u64> {
        Some(self.kernel.settings().memory_limit)
    }

    fn init_module(&mut self, image: &[u8], params: Option<&CStr>) -> Result<()> {
        self.apply_init_return();
        self.kernel
            .init_module(image, params.map(CStr::to_bytes))
            .map_err(|e| err("init_module", e))
    }

    fn finit_module(&mut self, fd: FinitFd<'_>, params: Option<&CStr>, flags: u32) -> Result<()> {
        self.apply_init_return();
        self.kernel
            .finit_module(fd, params.map(CStr::to_bytes), flags)
            .map_err(|e| err("finit_module", e))
    }

    fn delete_module(&mut self, name: &CStr, flags: u32) -> Result<()> {
        self.kernel
            .delete_module(name.to_bytes(), flags)
            .map_err(|e| err("delete_module", e))
    }

    fn modules(&self) -> Result<ModuleTable> {
        Ok(self
            .kernel
            .modules()
            .map(|m| {
                let mut holders = m.users.clone();
                holders.sort();
                let state = ModuleState {
                    initstate: m.state.sysfs().to_string(),
                    taint: m.taint_letters(),
                    refcnt: m.refcount(),
                    holders,
                    params: m.params.iter().cloned().collect(),
                    proc_modules: m.proc_modules_line(),
                };
                (m.name.clone(), state)
            })
            .collect())
    }

    fn kernel_tainted(&self) -> Result<u64> {
        Ok(self.kernel.tainted())
    }

    fn clear_log(&mut self) -> Result<()> {
        self.kernel.take_log();
        Ok(())
    }

    fn take_log(&mut self) -> Result<Vec<String>> {
        Ok(self.kernel.take_log().into_iter().map(|l| l.text).collect())
    }

    fn write_control(&mut self, path: &str, value: &str) -> Result<()> {
        let on = matches!(value.trim().as_bytes().first(), Some(b'1' | b'y' | b'Y'));
        let off = matches!(value.trim().as_bytes().first(), Some(b'0' | b'n' | b'N'));
        let s = self.kernel.settings_mut();
        match path {
            // kernel/sysctl.c: proc_dointvec_minmax with extra1 = extra2 = 1: only "1" is taken.
            "/proc/sys/kernel/modules_disabled" => {
                if value.trim() == "1" {
                    s.modules_disabled = true;
                    Ok(())
                } else {
                    Err(BackendError::new(format!("write {path}"), Errno::EINVAL))
                }
            }
            // module_param(sig_enforce, bool_enable_only, 0644): turning it off is EROFS.
            "/sys/module/module/parameters/sig_enforce" => {
                if on {
                    s.sig_enforce = true;
                    Ok(())
                } else if off && !s.sig_enforce {
                    Ok(())
                } else if off {
                    Err(BackendError::new(format!("write {path}"), Errno::EROFS))
                } else {
                    Err(BackendError::new(format!("write {path}"), Errno::EINVAL))
                }
            }
            _ => Err(BackendError::with_detail(
                format!("write {path}"),
                Errno::ENOENT,
                "not a control file the simulator models",
            )),
        }
    }

    fn drop_capability(&mut self, name: &str) -> Result<()> {
        match name {
            "CAP_SYS_MODULE" => {
                self.kernel.settings_mut().cap_sys_module = false;
                Ok(())
            }
            _ => Err(BackendError::with_detail(
                "drop_capability",
                Errno::EINVAL,
                format!("unknown capability {name}"),
            )),
        }
    }

    fn set_init_return(&mut self, ret: Option<i32>) {
        self.next_init_return = ret;
    }

    fn boot_args(&mut self, append: &str) -> Result<()> {
        let mut s: Settings = self.kernel.settings().clone();
        s.apply_cmdline(append);
        *self.kernel.settings_mut() = s;
        Ok(())
    }
}
