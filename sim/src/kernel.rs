//! `Kernel`: one simulated machine — a profile, its settings, the loaded modules, the kernel
//! log, the taint state and the module memory — with the three module system calls as methods.
//!
//! *Invariant:* this is the only place that mutates the simulated machine's state; a failed
//! system call leaves no module behind (as the kernel's error paths free everything), but its
//! taints and log lines stay, as on a real kernel. No global state: create as many as you like.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::errno::Errno;
use crate::file::FinitFd;
use crate::log::{KernelLog, LogLine};
use crate::memory::Memory;
use crate::profile::{KernelVersion, Profile};
use crate::taint::{Lockdep, Taint, TaintState, module_flags_taint};

mod calls;
mod persist;
pub use calls::{FailedInit, FileKey, InitEnd, PendingInit, Progress, Waiter};
pub use persist::{FORMAT as MACHINE_FORMAT, PersistError};

/// `MODULE_NAME_LEN` on 64-bit kernels.
pub const MODULE_NAME_LEN: usize = 56;
/// `MODULE_REF_BASE`: the reference a loaded module holds on itself.
pub const MODULE_REF_BASE: i64 = 1;

/// `finit_module` flags (`include/uapi/linux/module.h`).
pub const MODULE_INIT_IGNORE_MODVERSIONS: u32 = 1;
/// Ignore the version magic.
pub const MODULE_INIT_IGNORE_VERMAGIC: u32 = 2;
/// The file is compressed; the kernel decompresses it.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;
/// `delete_module` flag: force (`O_TRUNC`).
pub const O_TRUNC: u32 = 0o1000;

/// A profile held by a kernel: one of the embedded ones, or one built at run time.
#[derive(Clone)]
pub enum ProfileRef {
    /// An embedded profile (`Profile::builtin`).
    Static(&'static Profile),
    /// A profile built from a headers directory or a module.
    Shared(Arc<Profile>),
}

impl Deref for ProfileRef {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        match self {
            ProfileRef::Static(p) => p,
            ProfileRef::Shared(p) => p,
        }
    }
}

impl From<&'static Profile> for ProfileRef {
    fn from(p: &'static Profile) -> Self {
        ProfileRef::Static(p)
    }
}

impl From<Profile> for ProfileRef {
    fn from(p: Profile) -> Self {
        ProfileRef::Shared(Arc::new(p))
    }
}

impl fmt::Debug for ProfileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileRef({})", self.name())
    }
}

/// How a simulated machine is set up, beyond its profile: what a real one would take from
/// capabilities, sysctls and the boot command line.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// The caller has `CAP_SYS_MODULE`.
    pub cap_sys_module: bool,
    /// `kernel.modules_disabled`.
    pub modules_disabled: bool,
    /// `module.sig_enforce` (also forced on by `CONFIG_MODULE_SIG_FORCE`).
    pub sig_enforce: bool,
    /// Kernel lockdown forbids unsigned modules.
    pub lockdown: bool,
    /// `module_blacklist=` names.
    pub blacklist: Vec<String>,
    /// Bytes of module memory the machine can allocate (`ENOMEM` past it).
    pub memory_limit: u64,
    /// x86: the return thunk the CPU needs (`x86_return_thunk` when `X86_FEATURE_RETHUNK` is
    /// set: `__x86_return_thunk`, `srso_return_thunk`, `its_return_thunk` ...), or `None`
    /// when it needs none and `apply_returns()` turns each thunk jump into `ret` (QEMU's
    /// default x86 CPU under TCG, which the ground truth is recorded on).
    pub x86_return_thunk: Option<String>,
    /// The machine booted with one CPU and no other has come online: x86 runs with its lock
    /// prefixes patched out (`uniproc_patched`), and a module's `.smp_locks` prefixes become
    /// DS prefixes when it loads (`alternatives_smp_module_add()`). True for QEMU's `-smp 1`,
    /// the machine the ground truth is recorded on.
    pub uniprocessor: bool,
    /// x86: how the kernel mitigates Spectre v2 on this CPU, which decides what
    /// `apply_retpolines()` makes of the module's `__x86_indirect_thunk_*` calls and jumps.
    /// [`X86Retpoline::Thunks`] is what QEMU's default CPU under TCG gets (the ground truth's
    /// machine); the boot options `spectre_v2=`, `nospectre_v2` and `mitigations=off` change it
    /// ([`Settings::apply_cmdline`]).
    pub x86_retpoline: X86Retpoline,
}

/// The Spectre v2 mitigation as far as module code is concerned (x86).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum X86Retpoline {
    /// `X86_FEATURE_RETPOLINE`: indirect branches keep going through the retpoline thunks.
    #[default]
    Thunks,
    /// `X86_FEATURE_RETPOLINE_LFENCE` (`spectre_v2=retpoline,lfence`): `lfence; call *%reg`.
    Lfence,
    /// No retpolines (`spectre_v2=off`, or a CPU with eIBRS): plain `call *%reg`.
    Off,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cap_sys_module: true,
            modules_disabled: false,
            sig_enforce: false,
            lockdown: false,
            blacklist: Vec::new(),
            memory_limit: crate::memory::DEFAULT_LIMIT,
            x86_return_thunk: None,
            uniprocessor: true,
            x86_retpoline: X86Retpoline::Thunks,
        }
    }
}

impl Settings {
    /// Apply boot command line words the simulator understands (`module_blacklist=a,b`,
    /// `module.sig_enforce=1`, `nomodule`, `spectre_v2=`, `nospectre_v2`, `mitigations=off`);
    /// others are ignored, as the kernel ignores unknown
    /// boot parameters for this purpose.
    pub fn apply_cmdline(&mut self, cmdline: &str) {
        for w in cmdline.split_whitespace() {
            if let Some(list) = w.strip_prefix("module_blacklist=") {
                self.blacklist
                    .extend(list.split(',').filter(|s| !s.is_empty()).map(String::from));
            } else if let Some(v) = w.strip_prefix("module.sig_enforce=") {
                self.sig_enforce |= matches!(v.as_bytes().first(), Some(b'1' | b'y' | b'Y'));
            } else if w == "nomodule" {
                self.modules_disabled = true;
            } else if let Some(v) = w.strip_prefix("spectre_v2=") {
                // arch/x86/kernel/cpu/bugs.c spectre_v2_parse_cmdline(): the modes that pick
                // the retpoline flavour; the others depend on the CPU and are left alone.
                match v {
                    "off" => self.x86_retpoline = X86Retpoline::Off,
                    "retpoline,lfence" | "retpoline,amd" => {
                        self.x86_retpoline = X86Retpoline::Lfence;
                    }
                    "retpoline" | "retpoline,generic" => self.x86_retpoline = X86Retpoline::Thunks,
                    _ => {}
                }
            } else if w == "nospectre_v2" || w == "mitigations=off" {
                self.x86_retpoline = X86Retpoline::Off;
            }
        }
    }
}

/// `enum module_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModuleState {
    /// Normal state.
    Live,
    /// Fully formed, running `init`.
    Coming,
    /// Going away.
    Going,
    /// Still setting up.
    Unformed,
}

impl ModuleState {
    /// `/sys/module/<m>/initstate`.
    pub fn sysfs(self) -> &'static str {
        match self {
            ModuleState::Live => "live",
            ModuleState::Coming => "coming",
            ModuleState::Going => "going",
            ModuleState::Unformed => "unformed",
        }
    }
}

/// A symbol a loaded module exports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleExport {
    /// Its address in module memory.
    pub value: u64,
    /// `EXPORT_SYMBOL_GPL`.
    pub gpl_only: bool,
    /// Its namespace, if any.
    pub namespace: Option<String>,
    /// Its CRC (`__kcrctab*`), if the module has one.
    pub crc: Option<u32>,
}

/// What `init` returns for a module: the default hook returns 0.
pub type InitHook = Arc<dyn Fn(&str) -> i32 + Send + Sync>;

/// One loaded module (`struct module`, as far as the simulator needs it).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Module {
    /// `mod->name`, as text ([`crate::image::decode_bytes`]: each byte of an invalid UTF-8
    /// sequence is the character U+00XX).
    pub name: String,
    /// `mod->name`'s bytes, what `delete_module` compares a name with.
    pub raw_name: Vec<u8>,
    /// `mod->state`.
    pub state: ModuleState,
    /// `mod->taints`.
    pub taints: u64,
    /// `mod->refcnt` (including `MODULE_REF_BASE`).
    pub refcnt: i64,
    /// Modules that use this one (`source_list`), newest first.
    pub users: Vec<String>,
    /// Modules this one uses (`target_list`).
    pub uses: Vec<String>,
    /// The module has an init function.
    pub has_init: bool,
    /// The module has an exit function.
    pub has_exit: bool,
    /// The size `/proc/modules` shows.
    pub size: u64,
    /// The core text base address `/proc/modules` shows.
    pub base: u64,
    /// Memory regions to free on unload (base addresses).
    pub regions: Vec<u64>,
    /// Exported symbols.
    pub exports: indexmap::IndexMap<String, ModuleExport>,
    /// `/sys/module/<m>/parameters/*` (name → value as shown), sorted by name.
    pub params: Vec<(String, String)>,
    /// `mod->sig_ok`.
    pub sig_ok: bool,
    /// `mod->using_gplonly_symbols`.
    pub using_gplonly_symbols: bool,
    /// End of the module's per-cpu allocation in the module reserve (0: none).
    pub percpu_end: u64,
    /// The `__param` table, as read from module memory (for sysfs and `destroy_params`).
    pub kparams: Vec<crate::params::KernelParam>,
    /// The module's own symbols its parameter code was found at (address → name), so that
    /// `destroy_params` on unload runs the `free` the load's `set` went with.
    pub param_symbols: std::collections::BTreeMap<u64, String>,
    /// Every allocated section (`/sys/module/<m>/sections/`), in section header order.
    pub sections: Vec<ModuleSection>,
    /// Where a placement given with [`Kernel::place_next_load`] disagreed with the
    /// simulator's own layout (empty when it agreed, or without a placement).
    pub placement_mismatches: Vec<String>,
}

/// One allocated section of a loaded module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleSection {
    /// Section name.
    pub name: String,
    /// Its address (`/sys/module/<m>/sections/<name>`).
    pub addr: u64,
    /// Its size in memory (arm64's PLT sections as `module_frob_arch_sections()` sized them).
    pub size: u64,
    /// In init memory: freed after a successful init (the address stays in sysfs).
    pub init: bool,
}

impl Module {
    /// `module_refcount()`: what `/sys/module/<m>/refcnt` and `/proc/modules` show.
    pub fn refcount(&self) -> i64 {
        self.refcnt - MODULE_REF_BASE
    }

    /// `/sys/module/<m>/taint` (`module_flags_taint()`).
    pub fn taint_letters(&self) -> String {
        module_flags_taint(self.taints)
    }

    /// The module's `/proc/modules` line (`m_show()` in kernel/module/procfs.c), without the
    /// newline.
    pub fn proc_modules_line(&self) -> String {
        let mut s = format!("{} {} {} ", self.name, self.size, self.refcount());
        let mut printed = false;
        for u in &self.users {
            printed = true;
            s.push_str(u);
            s.push(',');
        }
        if self.has_init && !self.has_exit {
            printed = true;
            s.push_str("[permanent],");
        }
        if !printed {
            s.push('-');
        }
        let state = match self.state {
            ModuleState::Going => "Unloading",
            ModuleState::Coming => "Loading",
            _ => "Live",
        };
        s.push_str(&format!(" {state} 0x{:016x}", self.base));
        let flags = self.flags(true);
        if !flags.is_empty() {
            s.push(' ');
            s.push_str(&flags);
        }
        s
    }

    /// `module_flags()`: `(` taint letters, `-` GOING or `+` COMING when `show_state`, `)`;
    /// empty for an untainted live module.
    pub fn flags(&self, show_state: bool) -> String {
        let in_transit = matches!(self.state, ModuleState::Going | ModuleState::Coming);
        if self.taints == 0 && !in_transit {
            return String::new();
        }
        let mut s = format!("({}", self.taint_letters());
        match self.state {
            ModuleState::Going if show_state => s.push('-'),
            ModuleState::Coming if show_state => s.push('+'),
            _ => {}
        }
        s.push(')');
        s
    }
}

/// A failed system call: the errno userspace sees and the load step that decided it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {errno}")]
pub struct SysError {
    /// The errno the system call returns.
    pub errno: Errno,
    /// The kernel function (load step) that failed.
    pub step: &'static str,
}

impl SysError {
    /// A failure of `step` with `errno`.
    pub fn new(step: &'static str, errno: Errno) -> Self {
        SysError { errno, step }
    }
}

/// The result of a simulated system call.
pub type SysResult = Result<(), SysError>;

/// One simulated machine.
#[derive(Clone)]
pub struct Kernel {
    pub(crate) profile: ProfileRef,
    pub(crate) settings: Settings,
    /// Loaded modules in list order: index 0 is the list head (the newest).
    pub(crate) modules: Vec<Module>,
    pub(crate) log: KernelLog,
    pub(crate) taint: TaintState,
    pub(crate) memory: Memory,
    /// `pr_*_once` call sites that already printed.
    pub(crate) once: HashSet<String>,
    pub(crate) init_hooks: HashMap<String, InitHook>,
    /// Every formed module's exports: symbol → (owner, export). Kept in step with `modules`
    /// so `find_symbol()` need not walk the module list.
    pub(crate) exports: HashMap<String, (String, ModuleExport)>,
    /// What `init` returns for modules without a hook of their own.
    pub(crate) default_init_return: i32,
    /// The trace of the load path, when tracing is on.
    pub(crate) trace: Option<Vec<crate::trace::TraceEvent>>,
    /// Where the module allocator's first-fit search starts: no free page of the module area
    /// lies below it.
    pub(crate) next_module_addr: u64,
    /// Kernel symbol addresses given by the caller ([`Kernel::set_symbol_addresses`]).
    pub(crate) given_symbols: indexmap::IndexMap<String, u64>,
    /// Section addresses the next load must use ([`Kernel::place_next_load`]).
    pub(crate) placement: Option<indexmap::IndexMap<String, u64>>,
    /// No symbol that can resolve an undefined one has a longer name (vmlinux's exports, the
    /// given addresses, the modules' exports): an upper bound, never lowered.
    pub(crate) longest_symbol_name: usize,
    /// `last_unloaded_module`: the name and taint flags of the module unloaded last (shown by
    /// `print_modules()` in a warning's report).
    pub(crate) last_unloaded: Option<(String, String)>,
    /// The last module system call's number ([`Progress`]).
    pub(crate) next_call: u64,
    /// 6.12's idempotent `finit_module`: the files being loaded, by the call loading them.
    pub(crate) idem: Vec<(FileKey, u64)>,
    /// How many calls wait for each of those.
    pub(crate) idem_waiting: HashMap<u64, usize>,
    /// The result of a finished one, and how many waiting calls have yet to take it.
    pub(crate) idem_done: HashMap<u64, (SysResult, usize)>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("profile", &self.profile.name())
            .field(
                "modules",
                &self.modules.iter().map(|m| &m.name).collect::<Vec<_>>(),
            )
            .field("tainted", &self.taint.mask())
            .finish()
    }
}

impl Kernel {
    /// A freshly booted machine running `profile` with default settings.
    pub fn new(profile: impl Into<ProfileRef>) -> Self {
        Kernel::with_settings(profile, Settings::default())
    }

    /// A freshly booted machine running `profile` with `settings`.
    pub fn with_settings(profile: impl Into<ProfileRef>, settings: Settings) -> Self {
        let profile = profile.into();
        let mut settings = settings;
        settings.sig_enforce |= profile.is_enabled("MODULE_SIG_FORCE");
        // printk's record text limit (LOG_LINE_MAX less the prefix room): a longer record is cut.
        let printk_limit = match profile.version() {
            KernelVersion::V6_1 => 992 - 1 - 2,
            KernelVersion::V6_12 => 1024 - 1 - 2,
        };
        let memory = Memory::new(settings.memory_limit);
        // The ring buffer's size: CONFIG_LOG_BUF_SHIFT (17 on Debian's kernels).
        let log_buf_shift =
            u32::try_from(profile.config_int("LOG_BUF_SHIFT").unwrap_or(17)).unwrap_or(17);
        let next_module_addr = crate::load::layout::module_area(&profile).0;
        let longest_symbol_name = profile.exports().keys().map(String::len).max().unwrap_or(0);
        Kernel {
            profile,
            settings,
            modules: Vec::new(),
            log: KernelLog::with_record_limit(printk_limit).with_ring(log_buf_shift),
            taint: TaintState::default(),
            memory,
            once: HashSet::new(),
            init_hooks: HashMap::new(),
            exports: HashMap::new(),
            default_init_return: 0,
            trace: None,
            next_module_addr,
            given_symbols: indexmap::IndexMap::new(),
            placement: None,
            longest_symbol_name,
            last_unloaded: None,
            next_call: 0,
            idem: Vec::new(),
            idem_waiting: HashMap::new(),
            idem_done: HashMap::new(),
        }
    }

    /// The profile this machine runs.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The profile handle (cheap to clone), to start another machine of the same kind.
    pub fn profile_ref(&self) -> ProfileRef {
        self.profile.clone()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Change the settings (as sysctls and capabilities would; `sig_enforce` can only be
    /// turned on, as `module.sig_enforce` is `bool_enable_only`).
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Make `init` of the module `name` return `ret` (the default returns 0).
    pub fn set_init_return(&mut self, name: &str, ret: i32) {
        self.init_hooks
            .insert(name.to_string(), Arc::new(move |_| ret));
    }

    /// Turn the load-path trace on (or off, dropping what was traced).
    pub fn set_tracing(&mut self, on: bool) {
        self.trace = if on { Some(Vec::new()) } else { None };
    }

    /// Remove and return the trace recorded so far (empty when tracing is off).
    pub fn take_trace(&mut self) -> Vec<crate::trace::TraceEvent> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Record a trace event (no-op when tracing is off; `f` is not even called).
    pub(crate) fn trace(&mut self, f: impl FnOnce() -> crate::trace::TraceEvent) {
        if let Some(t) = &mut self.trace {
            t.push(f());
        }
    }

    /// True when the load path is being traced.
    pub(crate) fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Record a trace event built by the caller (only when tracing).
    pub(crate) fn push_trace(&mut self, ev: crate::trace::TraceEvent) {
        if let Some(t) = &mut self.trace {
            t.push(ev);
        }
    }

    /// The last trace event of a system call: how it ended, with the log lines it printed.
    fn trace_outcome(&mut self, r: &SysResult, log_start: u64) {
        if self.trace.is_none() {
            return;
        }
        let lines: Vec<String> = self
            .log
            .lines_since(log_start)
            .iter()
            .map(|l| l.text.clone())
            .collect();
        let ev = match r {
            Ok(()) => crate::trace::TraceEvent::new(
                "load_module",
                "kernel/module/main.c",
                "the module is loaded and LIVE",
            ),
            Err(e) => {
                let mut ev = crate::trace::TraceEvent::new(
                    e.step,
                    "kernel/module/main.c",
                    crate::trace::hint(e.step, e.errno),
                );
                ev.failed = Some(e.errno.name());
                ev
            }
        };
        let ev = lines.into_iter().fold(ev, |ev, l| ev.with("kernel log", l));
        self.trace(|| ev);
    }

    /// Make `init` of every module without a hook of its own return `ret`.
    pub fn set_default_init_return(&mut self, ret: i32) {
        self.default_init_return = ret;
    }

    /// Make `init` of modules without a hook return 0 again.
    pub fn clear_default_init_return(&mut self) {
        self.default_init_return = 0;
    }

    /// The init of the module `name`, to run without the machine (see `crate::shared`).
    pub(crate) fn init_fn(&self, name: &str) -> InitHook {
        match self.init_hooks.get(name) {
            Some(h) => Arc::clone(h),
            None => {
                let ret = self.default_init_return;
                Arc::new(move |_| ret)
            }
        }
    }

    /// What `init` of the module `name` returns: its hook's value, else the default.
    pub(crate) fn run_init(&self, name: &str) -> i32 {
        match self.init_hooks.get(name) {
            Some(h) => h(name),
            None => self.default_init_return,
        }
    }

    /// Give kernel symbols the addresses a real boot had (`/proc/kallsyms`), replacing any
    /// given before. They are used for vmlinux's exports, for the kernel functions and data
    /// the post-relocation patches point at (`ftrace_caller`, `ftrace_nop_ops` ...), and,
    /// last, to resolve an undefined symbol that neither vmlinux nor a loaded module exports
    /// (a symbol of a module outside the simulation; no CRC, no namespace, no reference).
    pub fn set_symbol_addresses(&mut self, symbols: indexmap::IndexMap<String, u64>) {
        let longest = symbols.keys().map(String::len).max().unwrap_or(0);
        self.longest_symbol_name = self.longest_symbol_name.max(longest);
        self.given_symbols = symbols;
    }

    /// The address of the kernel symbol `name`: given ([`Kernel::set_symbol_addresses`]),
    /// else the simulator's own for a vmlinux export or for a kernel symbol the
    /// post-relocation patches use.
    pub fn kernel_symbol_address(&self, name: &str) -> Option<u64> {
        if let Some(&a) = self.given_symbols.get(name) {
            return Some(a);
        }
        crate::load::symbols::vmlinux_symbol_address(self, name)
            .or_else(|| crate::load::finalize::internal_symbol_address(&self.profile, name))
    }

    /// Make the next load (`init_module`/`finit_module`) put its sections at these addresses
    /// (section name → address, what `/sys/module/<m>/sections/` shows after a real load)
    /// instead of the simulator's own. Each memory region is allocated where its sections'
    /// addresses say; a section whose given address is not where the simulator's layout puts
    /// it relative to the others is still put at the given address, and the disagreement is
    /// recorded in [`Module::placement_mismatches`]. The placement is used once.
    pub fn place_next_load(&mut self, sections: indexmap::IndexMap<String, u64>) {
        self.placement = Some(sections);
    }

    /// The bytes of a live section of a loaded module (`/proc/kcore` at its address), after
    /// relocation, the kernel's post-relocation patches and parameter parsing. `ENOENT` for an
    /// unknown module or section, `EFAULT` for a freed (init) one.
    pub fn section_bytes(&self, module: &str, section: &str) -> Result<Vec<u8>, Errno> {
        let m = self.module(module).ok_or(Errno::ENOENT)?;
        let s = m
            .sections
            .iter()
            .find(|s| s.name == section)
            .ok_or(Errno::ENOENT)?;
        if s.init {
            return Err(Errno::EFAULT);
        }
        let len = usize::try_from(s.size).map_err(|_| Errno::EFAULT)?;
        self.memory.read(s.addr, len).map(<[u8]>::to_vec)
    }

    /// Install a hook that runs as `init` of the module `name` and returns what it returns.
    pub fn set_init_hook(&mut self, name: &str, hook: InitHook) {
        self.init_hooks.insert(name.to_string(), hook);
    }

    /// The loaded modules in `/proc/modules` order (newest first), without unformed ones.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules
            .iter()
            .filter(|m| m.state != ModuleState::Unformed)
    }

    /// The loaded module `name`.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// `/proc/modules`.
    pub fn proc_modules(&self) -> String {
        self.modules()
            .map(|m| m.proc_modules_line() + "\n")
            .collect()
    }

    /// `/proc/sys/kernel/tainted`.
    pub fn tainted(&self) -> u64 {
        self.taint.mask()
    }

    /// The kernel log so far.
    pub fn log(&self) -> &[LogLine] {
        self.log.lines()
    }

    /// The number the next kernel log line will have (lines are numbered in the order printed,
    /// counting those the ring buffer dropped), for [`Kernel::log_since`].
    pub fn log_seq(&self) -> u64 {
        self.log.next_seq()
    }

    /// The kernel log lines still held that were printed since `seq` ([`Kernel::log_seq`]).
    pub fn log_since(&self, seq: u64) -> &[LogLine] {
        self.log.lines_since(seq)
    }

    /// Remove and return the kernel log lines so far (`dmesg -c`).
    pub fn take_log(&mut self) -> Vec<LogLine> {
        self.log.take()
    }

    /// The simulated module memory.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// `pr_*_once`: true the first time `site` asks.
    pub(crate) fn once(&mut self, site: &'static str) -> bool {
        if self.once.contains(site) {
            return false;
        }
        self.once.insert(site.to_string())
    }

    /// Models `add_taint_module()`: taint the module and the kernel.
    pub(crate) fn add_taint_module(&mut self, module: &mut Module, t: Taint, lockdep: Lockdep) {
        self.taint.add(t, lockdep, &mut self.log);
        module.taints |= t.mask();
    }

    /// Models `may_init_module()` / the `delete_module` permission check.
    fn may_init_module(&self) -> SysResult {
        if !self.settings.cap_sys_module || self.settings.modules_disabled {
            return Err(SysError::new("may_init_module", Errno::EPERM));
        }
        Ok(())
    }

    /// `init_module(2)`: models `SYSCALL_DEFINE3(init_module)` (kernel/module/main.c).
    /// `uargs` is the parameter string (`None`: a NULL pointer). The module's init runs as the
    /// init hooks say ([`Kernel::set_init_hook`]); for loads that overlap, see
    /// [`Kernel::start_init_module`].
    pub fn init_module(&mut self, image: &[u8], uargs: Option<&[u8]>) -> SysResult {
        let p = self.start_init_module(image, uargs);
        self.run_to_end(p)
    }

    /// The checks of `init_module(2)` before `load_module()`.
    fn init_module_checks(&self, image: &[u8]) -> SysResult {
        self.may_init_module()?;
        // copy_module_from_user(): shorter than an ELF header → ENOEXEC.
        if image.len() < 64 {
            return Err(SysError::new("copy_module_from_user", Errno::ENOEXEC));
        }
        if image.len() as u64 > self.settings.memory_limit {
            return Err(SysError::new("copy_module_from_user", Errno::ENOMEM));
        }
        Ok(())
    }

    /// `finit_module(2)`: models `SYSCALL_DEFINE3(finit_module)` (kernel/module/main.c).
    pub fn finit_module(&mut self, fd: FinitFd<'_>, uargs: Option<&[u8]>, flags: u32) -> SysResult {
        let p = self.start_finit_module(fd, uargs, flags);
        self.run_to_end(p)
    }

    /// `finit_module(2)`'s checks before it reads the file: permission, then the flags.
    fn finit_checks(&self, flags: u32) -> SysResult {
        self.may_init_module()?;
        if flags
            & !(MODULE_INIT_IGNORE_MODVERSIONS
                | MODULE_INIT_IGNORE_VERMAGIC
                | MODULE_INIT_COMPRESSED_FILE)
            != 0
        {
            return Err(SysError::new("finit_module", Errno::EINVAL));
        }
        Ok(())
    }

    /// `finit_module(2)` on a file already read into memory (skips the descriptor checks).
    pub fn finit_module_bytes(
        &mut self,
        buf: Vec<u8>,
        uargs: Option<&[u8]>,
        flags: u32,
    ) -> SysResult {
        let p = self.start_finit_module_bytes(buf, uargs, flags, None);
        self.run_to_end(p)
    }

    /// `finit_module(2)` after the file is read: decompression (6.12) and `load_module()`.
    fn finit_load(&mut self, buf: Vec<u8>, uargs: Option<&[u8]>, flags: u32) -> crate::load::Phase {
        let image = if flags & MODULE_INIT_COMPRESSED_FILE != 0 {
            match crate::load::decompress::module_decompress(
                &self.profile,
                &buf,
                usize::try_from(self.settings.memory_limit).unwrap_or(usize::MAX),
                &mut self.log,
            ) {
                Ok(image) => image,
                Err(e) => {
                    return crate::load::Phase::Done(Err(SysError::new("module_decompress", e)));
                }
            }
        } else {
            buf
        };
        crate::load::start_load(self, image, uargs, flags)
    }

    /// `delete_module(2)`: models `SYSCALL_DEFINE2(delete_module)` (kernel/module/main.c).
    pub fn delete_module(&mut self, name: &[u8], flags: u32) -> SysResult {
        let fail = |e| Err(SysError::new("delete_module", e));
        if !self.settings.cap_sys_module || self.settings.modules_disabled {
            return fail(Errno::EPERM);
        }
        // len = strncpy_from_user(name, name_user, MODULE_NAME_LEN); an empty name, or one
        // that fills the buffer (no NUL in 56 bytes), is ENOENT (the stable kernels' check:
        // recorded, tests/conformance/scenarios/odd_names.jsonl); then find_module(name),
        // which compares bytes.
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        if len == 0 || len >= MODULE_NAME_LEN {
            return fail(Errno::ENOENT);
        }
        let name = &name[..len];
        let Some(idx) = self
            .modules
            .iter()
            .position(|m| m.raw_name == name && m.state != ModuleState::Unformed)
        else {
            return fail(Errno::ENOENT);
        };
        if !self.modules[idx].users.is_empty() {
            return fail(Errno::EWOULDBLOCK);
        }
        if self.modules[idx].state != ModuleState::Live {
            return fail(Errno::EBUSY);
        }
        if self.modules[idx].has_init
            && !self.modules[idx].has_exit
            && !self.try_force_unload(flags)
        {
            return fail(Errno::EBUSY);
        }
        // try_stop_module(): drop the base reference unless someone holds another one.
        if self.modules[idx].refcnt != MODULE_REF_BASE && !self.try_force_unload(flags) {
            return fail(Errno::EWOULDBLOCK);
        }
        self.modules[idx].state = ModuleState::Going;
        let m = self.modules.remove(idx);
        self.last_unloaded = Some((m.name.clone(), m.flags(false)));
        self.free_module(m);
        Ok(())
    }

    /// Models `try_force_unload()`: `O_TRUNC` forces, and taints R.
    fn try_force_unload(&mut self, flags: u32) -> bool {
        let forced = flags & O_TRUNC != 0 && self.profile.is_enabled("MODULE_FORCE_UNLOAD");
        if forced {
            self.taint
                .add(Taint::ForcedRmmod, Lockdep::NowUnreliable, &mut self.log);
        }
        forced
    }

    /// Models `free_module()` and `module_unload_free()`: drop the use links (releasing the
    /// references this module held) and the memory.
    pub(crate) fn free_module(&mut self, m: Module) {
        self.unindex_exports(&m);
        for target in &m.uses {
            if let Some(t) = self.modules.iter_mut().find(|t| &t.name == target) {
                t.users.retain(|u| u != &m.name);
                t.refcnt -= 1;
            }
        }
        self.destroy_params(&m);
        for base in &m.regions {
            self.memory.free(*base);
        }
    }

    /// `destroy_params(mod->kp, mod->num_kp)`: each parameter's `free` (charp copies).
    pub(crate) fn destroy_params(&mut self, m: &Module) {
        if !m.kparams.is_empty() {
            let env = crate::params::ParamEnv::from_profile(&self.profile);
            // Kernel symbols are named as at load time, so that param_array_free finds the
            // element ops (param_free_charp) of an array parameter.
            let own: Vec<(u64, &[u8])> = m
                .param_symbols
                .iter()
                .map(|(a, n)| (*a, n.as_bytes()))
                .collect();
            let named = crate::load::params_step::namer(&self.profile, &self.given_symbols, &own);
            let mut code = crate::params::NoModuleCode;
            let mut ctx =
                crate::params::Ctx::new(&env, &mut self.memory, &mut self.log, &named, &mut code);
            crate::params::destroy_params(&m.kparams, &mut ctx);
        }
    }

    /// Add a module's exports to the export index (when it becomes formed).
    pub(crate) fn index_exports(&mut self, m: &Module) {
        for (name, e) in &m.exports {
            self.longest_symbol_name = self.longest_symbol_name.max(name.len());
            self.exports
                .entry(name.clone())
                .or_insert_with(|| (m.name.clone(), e.clone()));
        }
    }

    /// Remove a module's exports from the export index.
    pub(crate) fn unindex_exports(&mut self, m: &Module) {
        for name in m.exports.keys() {
            if self.exports.get(name).is_some_and(|(o, _)| o == &m.name) {
                self.exports.remove(name);
            }
        }
    }

    /// See the field: no name longer than this can resolve a symbol.
    pub(crate) fn longest_symbol_name(&self) -> usize {
        self.longest_symbol_name
    }

    /// `print_modules()`: the `Modules linked in:` line of a warning's report — every formed
    /// module, newest first, with its flags, and the module unloaded last.
    pub(crate) fn print_modules(&self) -> String {
        let mut s = String::from("Modules linked in:");
        for m in self
            .modules
            .iter()
            .filter(|m| m.state != ModuleState::Unformed)
        {
            s.push(' ');
            s.push_str(&m.name);
            s.push_str(&m.flags(true));
        }
        if let Some((name, flags)) = &self.last_unloaded {
            s.push_str(&format!(" [last unloaded: {name}{flags}]"));
        }
        s
    }

    /// `WARN()`: the report (`__warn()`: the cut line, the message, where, the modules, a
    /// stack dump, the end marker) and taint W. `site` is `file:line function` of the
    /// kernel the profile is.
    pub(crate) fn warn(&mut self, message: &str, site: &str) {
        self.log.warn("------------[ cut here ]------------");
        self.log.warn(message);
        self.log.warn(format!("WARNING: CPU: 0 PID: 1 at {site}"));
        let modules = self.print_modules();
        self.log.warn(modules);
        crate::load::dump_stack(self);
        self.log.warn("---[ end trace 0000000000000000 ]---");
        self.taint.add(Taint::Warn, Lockdep::StillOk, &mut self.log);
    }

    /// The kernel's version behaviour.
    pub(crate) fn version(&self) -> KernelVersion {
        self.profile.version()
    }
}
