//! The shared part of the fuzz targets (`fuzz_targets/*.rs`):
//!
//! - [`alloc`]: a counting global allocator that aborts, with a backtrace, when one input makes a
//!   single allocation, or a peak of live heap bytes, above its [`budget`];
//! - [`Input`]: reads a target's control bytes off the front of the fuzzer's input (zeros once
//!   it runs out, so every input means something);
//! - [`KernelState`]: what a simulated machine shows after a system call, for comparing two
//!   runs (tracing on and off) without keeping both machines alive;
//! - [`fixtures`]: fixture modules embedded at build time (the harness does not depend on
//!   the working directory, and a reproducer stays one after the tree changes);
//! - [`init`]: warm-up before the first input (profiles parsed, lazy tables filled), so that
//!   one-time allocations are not charged to an input.
//!
//! A target states its invariants with `assert!`/`panic!` (libFuzzer turns the panic into a
//! crash and keeps the input); every message starts with `invariant:`.

use std::hash::{DefaultHasher, Hash, Hasher};

use sim::kernel::{Kernel, SysResult};
use sim::log::LogLine;
use sim::profile::Profile;

pub mod alloc;
pub mod fixtures;

pub use alloc::budget;

/// The four embedded profiles, in the order the targets' control bytes select them.
pub const KERNELS: [&str; 4] = [
    "debian-6.1-amd64",
    "debian-6.1-arm64",
    "debian-6.12-amd64",
    "debian-6.12-arm64",
];

/// The simulated memory limits the targets choose from (the largest is the one the allocation
/// bound is stated for).
pub const MEMORY_LIMITS: [u64; 4] = [64 << 20, 4 << 20, 256 << 10, 32 << 10];

/// `delete_module`'s force flag (`O_TRUNC`).
pub const FORCE: u32 = sim::kernel::O_TRUNC;

/// The embedded profile `KERNELS[i % 4]`.
pub fn profile(i: u8) -> &'static Profile {
    let name = KERNELS[usize::from(i) % KERNELS.len()];
    Profile::builtin(name).unwrap_or_else(|e| panic!("embedded profile {name}: {e}"))
}

/// Before the first input: parse the four profiles and run one load and unload on each, so
/// that what is built once per process is not charged to the first input's allocation budget.
pub fn init() {
    // A panic (an invariant) stops the allocation count before the backtrace is made.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        alloc::end();
        hook(info);
    }));
    for (i, _) in KERNELS.iter().enumerate() {
        let p = profile(i as u8);
        let mut k = Kernel::new(p);
        let _ = k.init_module(fixtures::mp_lib(i as u8), Some(b"p=1"));
        let _ = k.delete_module(b"mp_lib", FORCE);
        let _ = sim::params::ParamEnv::from_profile(p);
    }
}

/// A reader of control bytes: each call takes bytes off the front; past the end it gives zeros
/// (and empty slices), so that any input decodes.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A `Hasher` that `Debug` output can be written into (no intermediate string).
struct HashWriter(DefaultHasher);

impl std::fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// A hash of `v`'s `Debug` output.
pub fn debug_hash(v: &impl std::fmt::Debug) -> u64 {
    let mut w = HashWriter(DefaultHasher::new());
    let _ = std::fmt::write(&mut w, format_args!("{v:?}"));
    w.0.finish()
}

/// What a machine shows after a system call: its outcome, the log lines it printed, the
/// module list (`/proc/modules` and every field of every module, hashed), taint, and the
/// module memory (every region's place, kind, label and bytes, hashed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelState {
    /// The call's result.
    pub result: SysResult,
    /// The log lines the call printed.
    pub log: Vec<LogLine>,
    /// `/proc/modules`.
    pub proc_modules: String,
    /// Every module, unformed ones included (the machine's `Debug`), and the taint mask.
    pub kernel: String,
    /// A hash of every module's `Debug` (sections, parameters, exports ...).
    pub modules_hash: u64,
    /// Bytes of module memory in use.
    pub memory_used: u64,
    /// A hash of every memory region.
    pub memory_hash: u64,
}

impl KernelState {
    /// The state of `k` after a call that returned `result` and started at log line
    /// `log_start`.
    pub fn of(k: &Kernel, result: &SysResult, log_start: u64) -> Self {
        let mut h = DefaultHasher::new();
        for m in k.modules() {
            debug_hash(m).hash(&mut h);
        }
        let modules_hash = h.finish();
        let mut h = DefaultHasher::new();
        for r in k.memory().regions() {
            r.base.hash(&mut h);
            r.kind.hash(&mut h);
            r.label.hash(&mut h);
            r.bytes.hash(&mut h);
        }
        KernelState {
            result: result.clone(),
            log: k.log_since(log_start).to_vec(),
            proc_modules: k.proc_modules(),
            kernel: format!("{k:?}"),
            modules_hash,
            memory_used: k.memory().used(),
            memory_hash: h.finish(),
        }
    }
}

/// Every module the machine holds, unformed ones included: the `modules` field of its
/// `Debug` output (the only place unformed modules show).
pub fn all_module_names(k: &Kernel) -> String {
    let d = format!("{k:?}");
    match (d.find("modules: "), d.rfind(", tainted")) {
        (Some(a), Some(b)) if a < b => d[a..b].to_string(),
        _ => format!("{:?}", k.modules().map(|m| &m.name).collect::<Vec<_>>()),
    }
}

/// The names of the formed modules, newest first.
pub fn module_names(k: &Kernel) -> Vec<String> {
    k.modules().map(|m| m.name.clone()).collect()
}

/// Whether a loaded module's array parameters make the kernel's own code lose what it
/// allocated: `param_array` steps from element to element by `(int)elemsize`,
/// `param_array_free` by `elemsize * i` in `unsigned int` arithmetic — with an `elemsize` of
/// 2³¹ or more they visit different addresses, so the kernel frees what was never set — and
/// with an `elemsize` under the 8 bytes of a `charp` the elements overlap, so setting one
/// writes its pointer over the previous one's. The heap (`kmalloc_parameter`) a load leaves
/// behind is then the kernel's leak too.
pub fn arrays_walk_apart(k: &Kernel, name: &str) -> bool {
    let Some(m) = k.module(name) else {
        return false;
    };
    m.kparams.iter().any(|p| {
        matches!(
            p.ops,
            sim::params::table::OpsKind::Std(sim::params::table::StdOps::Array)
        ) && sim::params::table::KparamArray::read(k.memory(), p.arg)
            .is_ok_and(|a| a.elemsize >= 1 << 31 || a.elemsize < 8)
    })
}

/// Whether the memory in use beyond what was in use before (`used_before`, of which
/// `heap_before` parameter heap) is only parameter heap (`kmalloced_param`).
pub fn only_param_heap_left(k: &Kernel, used_before: u64, heap_before: u64) -> bool {
    k.memory().used().wrapping_sub(param_heap(k)) == used_before.wrapping_sub(heap_before)
}

/// Bytes of parameter heap (`kmalloc_parameter`) in use.
pub fn param_heap(k: &Kernel) -> u64 {
    k.memory()
        .regions()
        .filter(|r| r.label == sim::params::ops::KMALLOCED_PARAM_LABEL)
        .map(|r| r.bytes.len() as u64)
        .sum()
}

/// Checks the invariants of a module system call that loads: on failure nothing is left (no
/// module, not even an unformed one, and not a byte more module memory than before; parameter
/// heap only when `kernel_leaks()` says the kernel leaks it too, see [`arrays_walk_apart`]); on
/// success exactly one new module, live, whose live sections can be read back. Returns the new
/// module's name on success.
#[allow(clippy::too_many_arguments)]
pub fn check_load_outcome(
    what: &str,
    k: &Kernel,
    result: &SysResult,
    names_before: &[String],
    all_before: &str,
    used_before: u64,
    heap_before: u64,
    kernel_leaks: impl FnOnce() -> bool,
) -> Option<String> {
    let names = module_names(k);
    match result {
        Err(e) => {
            assert!(
                e.errno.0 != 0,
                "invariant: {what}: a failed load has errno 0 ({e:?})"
            );
            assert_eq!(
                all_module_names(k),
                all_before,
                "invariant: {what}: a failed load ({e}) left a module behind"
            );
            if k.memory().used() != used_before
                && !(only_param_heap_left(k, used_before, heap_before) && kernel_leaks())
            {
                assert_eq!(
                    k.memory().used(),
                    used_before,
                    "invariant: {what}: a failed load ({e}) left module memory in use"
                );
            }
            None
        }
        Ok(()) => {
            let new: Vec<&String> = names.iter().filter(|n| !names_before.contains(n)).collect();
            assert!(
                new.len() == 1 && names.len() == names_before.len() + 1,
                "invariant: {what}: a successful load must add exactly one module \
                 (before {names_before:?}, after {names:?})"
            );
            let name = new[0].clone();
            let m = k.module(&name).expect("the new module");
            assert_eq!(
                m.state,
                sim::kernel::ModuleState::Live,
                "invariant: {what}: {name} is not live after a successful load"
            );
            // `section_bytes` goes by name: check each name's first section (names repeat
            // in malformed images, as they may in a real module's sysfs directory).
            let first = |s: &&sim::kernel::ModuleSection| {
                m.sections.iter().position(|o| o.name == s.name)
                    == m.sections.iter().position(|o| std::ptr::eq(o, *s))
            };
            for s in m
                .sections
                .iter()
                .filter(|s| !s.init && s.size > 0)
                .filter(first)
            {
                match k.section_bytes(&name, &s.name) {
                    Ok(b) => assert_eq!(
                        b.len() as u64,
                        s.size,
                        "invariant: {what}: {name} section {} reads back {} bytes, not its size",
                        s.name,
                        b.len()
                    ),
                    Err(e) => panic!(
                        "invariant: {what}: live section {} of {name} ({:#x}, {} bytes) cannot \
                         be read: {e}",
                        s.name, s.addr, s.size
                    ),
                }
            }
            Some(name)
        }
    }
}

/// Whether known, reported failures of the simulator or the loader fail the run too
/// (`MODSIM_FUZZ_STRICT=1`); by default the harness steps around them (each place says which
/// reproducer in `fuzz/regressions/` shows it), so that fuzzing goes on past them.
pub fn strict() -> bool {
    static S: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *S.get_or_init(|| std::env::var_os("MODSIM_FUZZ_STRICT").is_some_and(|v| v != "0"))
}

/// A module whose `struct module` name has no NUL in its `MODULE_NAME_LEN` bytes: no name a
/// caller can pass to `delete_module` (cut at 55 bytes, as the kernel's `strncpy_from_user`
/// does) matches it, on the kernel (whose `strlen` runs past the field) as in the simulator.
/// Not a failure: the checks that unload skip it.
pub fn unterminated_name(k: &Kernel, name: &str) -> bool {
    k.module(name)
        .is_some_and(|m| m.raw_name.len() >= sim::kernel::MODULE_NAME_LEN)
}

/// The bytes of the name of the module `name` (its text, for a module not loaded).
pub fn raw_name(k: &Kernel, name: &str) -> Vec<u8> {
    k.module(name)
        .map_or_else(|| name.as_bytes().to_vec(), |m| m.raw_name.clone())
}

/// Removes `name` (forced) and checks that the machine is back where it was before the load:
/// the same modules and the same module memory in use.
pub fn check_unload(
    what: &str,
    k: &mut Kernel,
    name: &str,
    all_before: &str,
    used_before: u64,
    heap_before: u64,
) -> u64 {
    if unterminated_name(k, name) {
        return 0;
    }
    let kernel_leaks = arrays_walk_apart(k, name);
    // delete_module compares the name's bytes (`Module::raw_name`), not its text.
    let raw = raw_name(k, name);
    let r = k.delete_module(&raw, FORCE);
    assert!(
        r.is_ok(),
        "invariant: {what}: forced delete_module of the module just loaded ({name}) failed: {r:?}"
    );
    assert_eq!(
        all_module_names(k),
        all_before,
        "invariant: {what}: delete_module({name}) did not leave the modules as before the load"
    );
    if kernel_leaks && only_param_heap_left(k, used_before, heap_before) {
        // The kernel's leak (see arrays_walk_apart): its size.
        return k.memory().used() - used_before;
    }
    assert_eq!(
        k.memory().used(),
        used_before,
        "invariant: {what}: delete_module({name}) did not free all its memory"
    );
    0
}

/// Removes every module, newest first (forced), and checks that no module memory is left.
pub fn check_unload_all(what: &str, k: &mut Kernel, leaked: u64) {
    if module_names(k).iter().any(|n| unterminated_name(k, n)) {
        return;
    }
    let kernel_leaks = module_names(k).iter().any(|n| arrays_walk_apart(k, n));
    for n in module_names(k) {
        let raw = raw_name(k, &n);
        let r = k.delete_module(&raw, FORCE);
        assert!(
            r.is_ok(),
            "invariant: {what}: forced delete_module({n}) failed: {r:?}"
        );
    }
    // What is left may be parameter heap the kernel leaks too (see arrays_walk_apart): the
    // leaks already seen (`leaked`), or those of the modules removed here.
    let heap_only = only_param_heap_left(k, 0, 0);
    if !(heap_only && (kernel_leaks || k.memory().used() == leaked)) {
        assert_eq!(
            k.memory().used(),
            0,
            "invariant: {what}: module memory left after every module was removed"
        );
    }
}

/// Compares the states of the same call with tracing off (`plain`) and on (`traced`).
pub fn check_tracing_changes_nothing(what: &str, plain: &KernelState, traced: &KernelState) {
    if plain != traced {
        panic!(
            "invariant: {what}: tracing changed the load:\n  untraced: {plain:?}\n  traced:   {traced:?}"
        );
    }
}

/// A scratch directory of this process (under `$TMPDIR`), created once.
pub fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("modsim-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    })
}
