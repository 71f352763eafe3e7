//! Module system calls that can overlap: a load whose module's init is still running is
//! COMING, visible to other calls, which may have to wait for it. The simulator runs each call
//! as far as it can go without waiting, in one step, and hands back what the call waits for:
//!
//! - [`Progress::InInit`]: the module is COMING and its init runs now; whoever runs it (the
//!   caller: another thread may hold it as long as it likes) ends the load with
//!   [`Kernel::finish_init`].
//! - [`Progress::Waiting`]: the call waits, as the kernel's would, for a module of the same name
//!   to finish loading (`add_unformed_module()`, 6.12's `module_patient_check_exists()`), or on
//!   6.12 for a `finit_module` of the same file (`idempotent_init_module()`). When
//!   [`Kernel::is_ready`] says so, [`Kernel::resume`] goes on.
//!
//! [`Kernel::init_module`] and friends drive a call to its end at once; `crate::shared`'s
//! `SharedKernel` drives many from threads. Everything here is deterministic: one interleaving
//! is one sequence of these calls.

use super::{Kernel, SysError, SysResult};
use crate::errno::Errno;
use crate::file::FinitFd;
use crate::load::{self, Loading, Phase};
use crate::profile::KernelVersion;

/// What identifies a file for 6.12's idempotent `finit_module()`: its inode
/// (`file_inode(f)`), as `(st_dev, st_ino)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// One module system call in progress.
#[derive(Debug)]
struct Call {
    id: u64,
    /// The number of its first kernel log line (for the trace).
    log_start: u64,
    /// The file a 6.12 `finit_module` registered for others to wait on.
    file: Option<FileKey>,
}

/// How far a module system call got.
#[derive(Debug)]
#[must_use = "a call in progress must be finished or resumed"]
pub enum Progress {
    /// The call returned this.
    Done(SysResult),
    /// The module is COMING; its init runs now. End with [`Kernel::finish_init`].
    InInit(PendingInit),
    /// The call waits for another one. Go on with [`Kernel::resume`] when
    /// [`Kernel::is_ready`].
    Waiting(Waiter),
}

/// A load whose module's init is running: the module is COMING, listed in
/// `/proc/modules` as `Loading`.
pub struct PendingInit {
    call: Call,
    loading: Box<Loading>,
}

impl std::fmt::Debug for PendingInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingInit")
            .field("module", &self.name())
            .finish()
    }
}

impl PendingInit {
    /// The module's name.
    pub fn name(&self) -> &str {
        load::loading_name(&self.loading)
    }

    /// Whether the module has an init function (without one, what init "returns" is ignored).
    pub fn has_init(&self) -> bool {
        load::loading_has_init(&self.loading)
    }
}

/// How [`Kernel::finish_init_steps`] ended a load.
#[derive(Debug)]
#[must_use = "a failed init's module must be freed"]
pub enum InitEnd {
    /// The load returned this.
    Done(SysResult),
    /// The init failed: the module is GOING until [`Kernel::free_failed`].
    Going(FailedInit),
}

/// A load whose init failed: its module is GOING.
#[derive(Debug)]
pub struct FailedInit {
    call: Call,
    name: String,
    ret: i32,
}

/// A call that waits for another.
pub struct Waiter {
    call: Call,
    on: WaitOn,
}

enum WaitOn {
    /// A same-name module is COMING: `finished_loading(name)`.
    Name {
        loading: Box<Loading>,
        step: &'static str,
    },
    /// 6.12's idempotent `finit_module`: the call `winner` loads the same file.
    File { winner: u64 },
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.on {
            WaitOn::Name { loading, step } => f
                .debug_struct("Waiter")
                .field("module", &load::loading_name(loading))
                .field("step", step)
                .finish(),
            WaitOn::File { winner } => f.debug_struct("Waiter").field("file_of", winner).finish(),
        }
    }
}

impl Waiter {
    /// The name of the module whose load it waits for, when it waits for a name.
    pub fn waits_for_name(&self) -> Option<&str> {
        match &self.on {
            WaitOn::Name { loading, .. } => Some(load::loading_name(loading)),
            WaitOn::File { .. } => None,
        }
    }
}

impl Kernel {
    fn new_call(&mut self) -> Call {
        self.next_call += 1;
        Call {
            id: self.next_call,
            log_start: self.log.next_seq(),
            file: None,
        }
    }

    /// The end of a call: its trace outcome, and its result handed to the calls that wait on
    /// its file.
    fn complete(&mut self, call: &Call, r: SysResult) -> SysResult {
        self.trace_outcome(&r, call.log_start);
        if call.file.is_some() {
            self.idem.retain(|(_, id)| *id != call.id);
            if let Some(n) = self.idem_waiting.remove(&call.id) {
                self.idem_done.insert(call.id, (r.clone(), n));
            }
        }
        r
    }

    fn progress(&mut self, call: Call, phase: Phase) -> Progress {
        // The placement given for the next load is used up, whatever became of it.
        self.placement = None;
        match phase {
            Phase::Done(r) => Progress::Done(self.complete(&call, r)),
            Phase::Init(loading) => Progress::InInit(PendingInit { call, loading }),
            Phase::Wait(loading, step) => Progress::Waiting(Waiter {
                call,
                on: WaitOn::Name { loading, step },
            }),
        }
    }

    /// `init_module(2)` up to the module's init or a wait (see the module documentation).
    pub fn start_init_module(&mut self, image: &[u8], uargs: Option<&[u8]>) -> Progress {
        let call = self.new_call();
        let phase = match self.init_module_checks(image) {
            Ok(()) => load::start_load(self, image.to_vec(), uargs, 0),
            Err(e) => Phase::Done(Err(e)),
        };
        self.progress(call, phase)
    }

    /// `finit_module(2)` up to the module's init or a wait. On 6.12 a second call on the same
    /// file (inode) while the first is in progress waits for the first and returns what it
    /// returns (`idempotent_init_module()`).
    pub fn start_finit_module(
        &mut self,
        fd: FinitFd<'_>,
        uargs: Option<&[u8]>,
        flags: u32,
    ) -> Progress {
        let call = self.new_call();
        if let Err(e) = self.finit_checks(flags) {
            return self.progress(call, Phase::Done(Err(e)));
        }
        let call = match self.idempotent(call, crate::file::file_key(fd)) {
            Ok(call) => call,
            Err(waiting) => return waiting,
        };
        let phase = match crate::file::kernel_read_file_from_fd(fd, self.settings.memory_limit) {
            Ok(buf) => self.finit_load(buf, uargs, flags),
            Err(e) => Phase::Done(Err(SysError::new("kernel_read_file", e))),
        };
        self.progress(call, phase)
    }

    /// `finit_module(2)` on a file already read into memory (no descriptor checks), up to the
    /// module's init or a wait; `file` identifies the file for 6.12's idempotent load (`None`:
    /// a file no other call shares).
    pub fn start_finit_module_bytes(
        &mut self,
        buf: Vec<u8>,
        uargs: Option<&[u8]>,
        flags: u32,
        file: Option<FileKey>,
    ) -> Progress {
        let call = self.new_call();
        if let Err(e) = self.finit_checks(flags) {
            return self.progress(call, Phase::Done(Err(e)));
        }
        let call = match self.idempotent(call, file) {
            Ok(call) => call,
            Err(waiting) => return waiting,
        };
        let phase = self.finit_load(buf, uargs, flags);
        self.progress(call, phase)
    }

    /// 6.12's `idempotent()`: the first call on a file registers it and goes on (`Ok`); a
    /// later one, while the first is in progress, waits for it (`Err`).
    fn idempotent(&mut self, mut call: Call, file: Option<FileKey>) -> Result<Call, Progress> {
        let Some(key) = file.filter(|_| self.version() == KernelVersion::V6_12) else {
            return Ok(call);
        };
        if let Some(&(_, winner)) = self.idem.iter().find(|(k, _)| *k == key) {
            *self.idem_waiting.entry(winner).or_default() += 1;
            return Err(Progress::Waiting(Waiter {
                call,
                on: WaitOn::File { winner },
            }));
        }
        self.idem.push((key, call.id));
        call.file = Some(key);
        Ok(call)
    }

    /// Ends a load whose init returned `ret` (`do_init_module()`): LIVE, or on a negative
    /// `ret` the module is freed and the load fails with `-ret`.
    pub fn finish_init(&mut self, pending: PendingInit, ret: i32) -> SysResult {
        match self.finish_init_steps(pending, ret) {
            InitEnd::Done(r) => r,
            InitEnd::Going(f) => self.free_failed(f),
        }
    }

    /// [`Kernel::finish_init`] in the kernel's steps: a failed init leaves its module GOING
    /// (`Unloading`; other loads of the name get `EBUSY` at once) until
    /// [`Kernel::free_failed`].
    pub fn finish_init_steps(&mut self, pending: PendingInit, ret: i32) -> InitEnd {
        let PendingInit { call, mut loading } = pending;
        if load::init_fails(&loading, ret) {
            load::fail_init(self, &mut loading);
            return InitEnd::Going(FailedInit {
                call,
                name: load::loading_name(&loading).to_string(),
                ret,
            });
        }
        let r = load::finish_init(self, &mut loading, ret);
        InitEnd::Done(self.complete(&call, r))
    }

    /// The end of a failed init: `free_module()`, and the load's result, `-ret`.
    pub fn free_failed(&mut self, f: FailedInit) -> SysResult {
        load::free_going(self, &f.name);
        let r = Err(SysError::new("do_init_module", Errno(-f.ret)));
        self.complete(&f.call, r)
    }

    /// Whether the call `w` waits for has finished, so that [`Kernel::resume`] goes on.
    pub fn is_ready(&self, w: &Waiter) -> bool {
        match &w.on {
            WaitOn::Name { loading, .. } => load::finished_loading(self, loading),
            WaitOn::File { winner } => self.idem_done.contains_key(winner),
        }
    }

    /// Goes on with a waiting call: its result once what it waited for has finished, else
    /// the same wait again.
    pub fn resume(&mut self, w: Waiter) -> Progress {
        if !self.is_ready(&w) {
            return Progress::Waiting(w);
        }
        let Waiter { call, on } = w;
        let r = match on {
            WaitOn::Name { loading, step } => load::finish_wait(self, &loading, step),
            WaitOn::File { winner } => self.take_idempotent_result(winner),
        };
        Progress::Done(self.complete(&call, r))
    }

    fn take_idempotent_result(&mut self, winner: u64) -> SysResult {
        let Some((r, n)) = self.idem_done.get_mut(&winner) else {
            return Err(SysError::new(
                "idempotent_wait_for_completion",
                Errno::EINTR,
            ));
        };
        let r = r.clone();
        *n -= 1;
        if *n == 0 {
            self.idem_done.remove(&winner);
        }
        r
    }

    /// Ends a waiting call as a signal would: `EINTR`.
    pub fn interrupt(&mut self, w: Waiter) -> SysResult {
        let Waiter { call, on } = w;
        let r = match on {
            WaitOn::Name { loading, step } => load::interrupt_wait(self, &loading, step),
            WaitOn::File { winner } => {
                if let Some(n) = self.idem_waiting.get_mut(&winner) {
                    *n -= 1;
                    if *n == 0 {
                        self.idem_waiting.remove(&winner);
                    }
                } else if let Some((_, n)) = self.idem_done.get_mut(&winner) {
                    *n -= 1;
                    if *n == 0 {
                        self.idem_done.remove(&winner);
                    }
                }
                Err(SysError::new(
                    "idempotent_wait_for_completion",
                    Errno::EINTR,
                ))
            }
        };
        self.complete(&call, r)
    }

    /// Drives a call to its end on this thread: init runs as the init hooks say; a wait
    /// for a call this thread left in progress can never end, so it is interrupted (`EINTR`).
    pub fn run_to_end(&mut self, mut p: Progress) -> SysResult {
        loop {
            p = match p {
                Progress::Done(r) => return r,
                Progress::InInit(pending) => {
                    let ret = self.run_init(pending.name());
                    return self.finish_init(pending, ret);
                }
                Progress::Waiting(w) if self.is_ready(&w) => self.resume(w),
                Progress::Waiting(w) => return self.interrupt(w),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::ModuleState;
    use crate::load::elf_check::tests::{fixture, profile};

    const KERNELS: [&str; 4] = [
        "debian-6.1-amd64",
        "debian-6.1-arm64",
        "debian-6.12-amd64",
        "debian-6.12-arm64",
    ];

    fn in_init(p: Progress) -> PendingInit {
        match p {
            Progress::InInit(p) => p,
            other => panic!("expected the module in init, got {other:?}"),
        }
    }

    fn waiting(p: Progress) -> Waiter {
        match p {
            Progress::Waiting(w) => w,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    fn done(p: Progress) -> SysResult {
        match p {
            Progress::Done(r) => r,
            other => panic!("expected the end of the call, got {other:?}"),
        }
    }

    fn errno(r: SysResult) -> Errno {
        r.expect_err("the call fails").errno
    }

    #[test]
    fn a_module_in_init_is_coming_and_a_same_name_load_waits_for_it() {
        for kernel in KERNELS {
            for (ret, after) in [(0, Errno::EEXIST), (-19, Errno::EBUSY)] {
                let ko = fixture(kernel, "mp_hold.ko");
                let mut k = Kernel::new(profile(kernel));
                let a = in_init(k.start_init_module(&ko, Some(b"hold_ms=100")));
                assert_eq!(k.module("mp_hold").unwrap().state, ModuleState::Coming);
                assert!(k.proc_modules().contains(" Loading "), "{kernel}");
                // delete_module() of a module in init: "Doing init or already dying?"
                assert_eq!(errno(k.delete_module(b"mp_hold", 0o4000)), Errno::EBUSY);
                let b = waiting(k.start_init_module(&ko, Some(b"")));
                assert_eq!(b.waits_for_name(), Some("mp_hold"));
                assert!(!k.is_ready(&b));
                let b = waiting(k.resume(b));
                let ra = k.finish_init(a, ret);
                assert!(k.is_ready(&b));
                let rb = done(k.resume(b));
                assert_eq!(errno(rb), after, "{kernel} init returned {ret}");
                if ret == 0 {
                    ra.unwrap();
                    k.delete_module(b"mp_hold", 0o4000).unwrap();
                } else {
                    assert_eq!(errno(ra), Errno::ENODEV);
                }
                assert_eq!(k.memory().used(), 0, "{kernel}: nothing left");
                // Nothing is left behind: the next load loads.
                k.init_module(&ko, Some(b"")).unwrap();
            }
        }
    }

    #[test]
    fn on_6_12_a_finit_of_the_same_file_returns_what_the_first_returns() {
        let key = FileKey { dev: 1, ino: 2 };
        for kernel in KERNELS {
            for ret in [0, -19] {
                let ko = fixture(kernel, "mp_hold.ko");
                let mut k = Kernel::new(profile(kernel));
                let a = in_init(k.start_finit_module_bytes(ko.clone(), Some(b""), 0, Some(key)));
                let b = k.start_finit_module_bytes(ko.clone(), Some(b""), 0, Some(key));
                let b = waiting(b);
                let idempotent = kernel.contains("6.12");
                assert_eq!(b.waits_for_name().is_none(), idempotent, "{kernel}");
                let ra = k.finish_init(a, ret);
                let rb = done(k.resume(b));
                if idempotent {
                    assert_eq!(ra, rb, "{kernel}");
                } else {
                    let want = if ret == 0 {
                        Errno::EEXIST
                    } else {
                        Errno::EBUSY
                    };
                    assert_eq!(errno(rb), want, "{kernel}");
                }
                // Another file (inode) is not idempotent with it.
                let other = FileKey { dev: 1, ino: 3 };
                if ret == 0 {
                    let c = k.start_finit_module_bytes(ko.clone(), None, 0, Some(other));
                    assert_eq!(errno(done(c)), Errno::EEXIST);
                }
                assert!(k.idem.is_empty() && k.idem_waiting.is_empty() && k.idem_done.is_empty());
            }
        }
    }

    #[test]
    fn a_wait_no_one_can_end_is_interrupted() {
        let kernel = "debian-6.12-amd64";
        let ko = fixture(kernel, "mp_hold.ko");
        let mut k = Kernel::new(profile(kernel));
        let a = in_init(k.start_init_module(&ko, Some(b"")));
        let used = k.memory().used();
        assert_eq!(errno(k.init_module(&ko, Some(b""))), Errno::EINTR);
        assert_eq!(k.memory().used(), used);
        k.finish_init(a, 0).unwrap();
    }
}
