//! `SharedKernel`: one simulated machine for many threads, each making module system calls
//! as processes do on a real one. A call runs under the machine's lock up to the point where
//! the kernel would let others in — the module's init (run with the lock released, so an init
//! hook may take as long as it likes while other calls see the module COMING), or a wait for
//! another call ([`crate::kernel::Progress`]) — and waits on a condition variable where the
//! kernel waits on `module_wq` or an idempotent load's completion.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::file::FinitFd;
use crate::kernel::{FileKey, InitEnd, Kernel, Progress, SysResult};

/// A [`Kernel`] that threads share.
#[derive(Debug)]
pub struct SharedKernel {
    kernel: Mutex<Kernel>,
    changed: Condvar,
}

impl SharedKernel {
    /// Share `kernel`.
    pub fn new(kernel: Kernel) -> Self {
        SharedKernel {
            kernel: Mutex::new(kernel),
            changed: Condvar::new(),
        }
    }

    /// The machine, locked: to look at it or change its settings between calls. Calls of
    /// other threads wait meanwhile (those in init go on with their init).
    pub fn lock(&self) -> MutexGuard<'_, Kernel> {
        // A thread that panicked while holding the lock left the machine as a finished call
        // leaves it: every call's state changes are made in one step.
        self.kernel.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The machine, no longer shared.
    pub fn into_inner(self) -> Kernel {
        self.kernel
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `init_module(2)` ([`Kernel::init_module`]).
    pub fn init_module(&self, image: &[u8], uargs: Option<&[u8]>) -> SysResult {
        let mut k = self.lock();
        let p = k.start_init_module(image, uargs);
        self.drive(k, p)
    }

    /// `finit_module(2)` ([`Kernel::finit_module`]).
    pub fn finit_module(&self, fd: FinitFd<'_>, uargs: Option<&[u8]>, flags: u32) -> SysResult {
        let mut k = self.lock();
        let p = k.start_finit_module(fd, uargs, flags);
        self.drive(k, p)
    }

    /// `finit_module(2)` on a file already read ([`Kernel::start_finit_module_bytes`]).
    pub fn finit_module_bytes(
        &self,
        buf: Vec<u8>,
        uargs: Option<&[u8]>,
        flags: u32,
        file: Option<FileKey>,
    ) -> SysResult {
        let mut k = self.lock();
        let p = k.start_finit_module_bytes(buf, uargs, flags, file);
        self.drive(k, p)
    }

    /// `delete_module(2)` ([`Kernel::delete_module`]).
    pub fn delete_module(&self, name: &[u8], flags: u32) -> SysResult {
        let r = self.lock().delete_module(name, flags);
        self.changed.notify_all();
        r
    }

    /// Takes a call to its end: init with the lock released, waits on the condition variable.
    fn drive<'a>(&'a self, mut k: MutexGuard<'a, Kernel>, mut p: Progress) -> SysResult {
        loop {
            p = match p {
                Progress::Done(r) => {
                    drop(k);
                    self.changed.notify_all();
                    return r;
                }
                Progress::InInit(pending) => {
                    let init = k.init_fn(pending.name());
                    let name = pending.name().to_string();
                    let ret = if pending.has_init() {
                        drop(k);
                        let ret = init(&name);
                        k = self.lock();
                        ret
                    } else {
                        0
                    };
                    match k.finish_init_steps(pending, ret) {
                        InitEnd::Done(r) => Progress::Done(r),
                        InitEnd::Going(failed) => {
                            // The GOING window of the kernel's failure path (synchronize_rcu(),
                            // the notifiers): others may see the module `Unloading`.
                            drop(k);
                            self.changed.notify_all();
                            std::thread::yield_now();
                            k = self.lock();
                            Progress::Done(k.free_failed(failed))
                        }
                    }
                }
                Progress::Waiting(w) => {
                    k = self
                        .changed
                        .wait_while(k, |k| !k.is_ready(&w))
                        .unwrap_or_else(PoisonError::into_inner);
                    k.resume(w)
                }
            }
        }
    }
}
