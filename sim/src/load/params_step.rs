//! The parameter step of `load_module()`: `parse_args()` over the module's `__param` table in
//! relocated module memory, then the sysfs values (`/sys/module/<m>/parameters/*`).

use crate::errno::Errno;
use crate::kernel::{Kernel, SysError, SysResult};
use crate::load::Loading;
use crate::load::layout::kernel_image_base;
use crate::params::{self, ArgBuf, Ctx, KernelFn, KernelParam, OpFn, OpsKind, ParamEnv};
use crate::taint::{Lockdep, Taint};

/// `KSYM_NAME_LEN`: kallsyms names (what `%ps` prints for an address) are shorter.
const KSYM_NAME_LEN: usize = 512;

/// A module symbol's name as kallsyms gives it: at most `KSYM_NAME_LEN - 1` bytes. Names the
/// simulator keeps are cut there, so that overlapping names in a string table cannot make the
/// copies cost the number of symbols times the image size.
fn ksym_name(name: &[u8]) -> String {
    crate::image::decode_bytes(&name[..name.len().min(KSYM_NAME_LEN - 1)])
}

/// Names an address the way the parameter code recognises ops: a vmlinux export (the simulator
/// gives export `i` the address `kernel_image_base + 16 * i`), else one of the module's own
/// symbols (the first at that address).
pub(crate) fn namer<'a>(
    kernel_profile: &'a crate::profile::Profile,
    given: &'a indexmap::IndexMap<String, u64>,
    own: &'a [(u64, &'a [u8])],
) -> impl Fn(u64) -> Option<String> + 'a {
    let base = kernel_image_base(kernel_profile);
    // Addresses given for kernel symbols (Kernel::set_symbol_addresses) name them first.
    let given: std::collections::HashMap<u64, &String> =
        given.iter().rev().map(|(n, a)| (*a, n)).collect();
    let mut own_at: std::collections::HashMap<u64, &[u8]> = std::collections::HashMap::new();
    for (a, n) in own {
        own_at.entry(*a).or_insert(n);
    }
    move |addr: u64| {
        if let Some(n) = given.get(&addr) {
            return Some((*n).clone());
        }
        if addr >= base && (addr - base).is_multiple_of(16) {
            let i = usize::try_from((addr - base) / 16).ok()?;
            if let Some((name, _)) = kernel_profile.exports().get_index(i) {
                return Some(name.clone());
            }
        }
        own_at.get(&addr).map(|n| ksym_name(n))
    }
}

/// Calls in a function that do not make it more than a wrapper: tracing, return thunks and
/// stack protection, which the compiler and kernel build add around any body.
fn is_instrumentation(name: &str) -> bool {
    matches!(
        name,
        "__fentry__"
            | "__x86_return_thunk"
            | "__stack_chk_fail"
            | "_mcount"
            | "__sanitizer_cov_trace_pc"
    ) || name.starts_with("__x86_indirect_thunk")
}

/// The module's functions that do nothing but call one `kernel/params.c` function (a
/// `module_param_cb()` ops struct whose `set` is `return param_set_int(val, kp);`), found from
/// the relocations inside each function's code: exactly one relocation target besides
/// instrumentation, and that target is a params.c function. The simulator cannot run module
/// code; for such a wrapper it runs the function it wraps, for anything else it reports the
/// ops as custom (`NoModuleCode`).
fn thin_wrappers(l: &Loading) -> std::collections::HashMap<String, KernelFn> {
    let mut out = std::collections::HashMap::new();
    let Ok(syms) = l.info.symbols() else {
        return out;
    };
    // Relocations by the section they patch, sorted by offset: each function's are a range.
    let mut by_target: std::collections::HashMap<u32, Vec<(u64, u32)>> =
        std::collections::HashMap::new();
    for (relsec, relas) in &l.relas {
        if let Some(sec) = l.info.sections.get(*relsec) {
            let v = by_target.entry(sec.info).or_default();
            v.extend(relas.iter().map(|r| (r.offset, r.sym)));
        }
    }
    for v in by_target.values_mut() {
        v.sort_unstable();
    }
    for f in syms
        .iter()
        .filter(|s| s.typ() == 2 && s.size > 0 && s.shndx != 0)
    {
        let Some(relocs) = by_target.get(&u32::from(f.shndx)) else {
            continue;
        };
        let end = f.value.saturating_add(f.size);
        let start = relocs.partition_point(|(o, _)| *o < f.value);
        let mut target: Option<&[u8]> = None;
        let mut wrapper = true;
        // A wrapper is a few instructions: past MAX_WRAPPER_RELOCS relocations a function is
        // not one (and hostile tables cannot make this quadratic).
        for (i, (_, sym)) in relocs[start..]
            .iter()
            .take_while(|(o, _)| *o < end)
            .enumerate()
        {
            if i == MAX_WRAPPER_RELOCS {
                wrapper = false;
                break;
            }
            let name = syms.get(*sym as usize).map(|s| s.name).unwrap_or_default();
            if is_instrumentation(std::str::from_utf8(name).unwrap_or("")) {
                continue;
            }
            match target {
                None => target = Some(name),
                Some(t) if t == name => {}
                Some(_) => {
                    wrapper = false;
                    break;
                }
            }
        }
        if !wrapper {
            continue;
        }
        let k = target
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(KernelFn::from_symbol);
        if let Some(k) = k {
            out.insert(ksym_name(f.name), k);
        }
    }
    out
}

/// More relocations than a function that only calls another one has.
const MAX_WRAPPER_RELOCS: usize = 64;

/// Replace a custom ops' module functions that are thin wrappers by what they wrap.
fn resolve_wrappers(
    kp: &mut [KernelParam],
    wrappers: &std::collections::HashMap<String, KernelFn>,
) {
    for p in kp {
        if let OpsKind::Custom(c) = &mut p.ops {
            for f in [&mut c.set, &mut c.get, &mut c.free] {
                if let OpFn::Opaque(n) = f
                    && let Some(k) = wrappers.get(n.as_str())
                {
                    *f = OpFn::Kernel(*k);
                }
            }
        }
    }
}

/// `mod->args = strndup_user(uargs)`: `EFAULT` for a NULL pointer, `ENOMEM` past the limit.
pub fn strndup_user(uargs: Option<&[u8]>) -> Result<ArgBuf, Errno> {
    ArgBuf::strndup_user(uargs)
}

/// Models `parse_args(mod->name, mod->args, mod->kp, mod->num_kp, -32768, 32767, mod,
/// unknown_module_param_cb)` and the `` after `--' `` warning, then fills the module's sysfs
/// parameter values. On failure the parameters are destroyed (charp copies freed).
pub(crate) fn parse_module_args(
    kernel: &mut Kernel,
    l: &mut Loading,
    args: ArgBuf,
    own_symbols: &[(u64, &[u8])],
) -> SysResult {
    let env = ParamEnv::from_profile(&kernel.profile);
    let name = l.module.name.clone();
    let mut kp: Vec<KernelParam> = match l.info.find_sec("__param") {
        Some(i) => {
            let size = l.info.sections[i].size;
            let n = namer(&kernel.profile, &kernel.given_symbols, own_symbols);
            params::read_param_section(&kernel.memory, l.addr[i], size, &n)
                .map_err(|e| SysError::new("find_module_sections", e))?
        }
        None => Vec::new(),
    };
    resolve_wrappers(&mut kp, &thin_wrappers(l));
    let profile = kernel.profile.clone();
    let given = kernel.given_symbols.clone();
    let base_namer = namer(&profile, &given, own_symbols);
    // The module's own symbols the parameter code named, kept with the module so that its
    // parameters are freed (destroy_params) as they were set, whatever those symbols are.
    let named: std::cell::RefCell<std::collections::BTreeMap<u64, String>> = Default::default();
    let n = |addr: u64| {
        let r = base_namer(addr);
        if let Some(name) = &r
            && own_symbols.iter().any(|(a, _)| *a == addr)
        {
            named.borrow_mut().insert(addr, name.clone());
        }
        r
    };
    let mut code = params::NoModuleCode;
    let mut ctx = Ctx::new(&env, &mut kernel.memory, &mut kernel.log, &n, &mut code);
    let out = params::load_module_parse_args(name.as_bytes(), args, &kp, false, &mut ctx);
    let taint_user = ctx.taint_user;
    if let Err(e) = out.result {
        params::destroy_params(&kp, &mut ctx);
        if taint_user {
            kernel
                .taint
                .add(Taint::User, Lockdep::StillOk, &mut kernel.log);
        }
        return Err(SysError::new("parse_args", e));
    }
    let mut values: Vec<(String, String)> = Vec::new();
    for p in kp.iter().filter(|p| params::module::has_sysfs_file(p)) {
        // A `get` in the module's own code (not a thin wrapper of a params.c function) cannot
        // run here: say so instead of showing a value.
        if let OpsKind::Custom(c) = &p.ops
            && let OpFn::Opaque(f) = &c.get
        {
            values.push((
                p.name_str(),
                format!("<module code {f}() in custom ops {}>", c.symbol),
            ));
            continue;
        }
        let v = match params::param_attr_show(p, &mut ctx) {
            Ok(mut b) => {
                if b.last() == Some(&b'\n') {
                    b.pop();
                }
                params::decode_bytes(&b)
            }
            Err(e) => format!("<error {e}>"),
        };
        values.push((p.name_str(), v));
    }
    values.sort();
    if taint_user {
        kernel
            .taint
            .add(Taint::User, Lockdep::StillOk, &mut kernel.log);
    }
    if let Some(m) = kernel.modules.iter_mut().find(|m| m.name == name) {
        m.params = values;
        m.kparams = kp;
        m.param_symbols = named.take();
    }
    Ok(())
}
