//! Symbol resolution: `find_symbol()`, `resolve_symbol()`, `simplify_symbols()`,
//! `verify_exported_symbols()` (kernel/module/main.c), over the profile's vmlinux exports and
//! the loaded modules' exports.

use crate::errno::Errno;
use crate::image::{LoadInfo, decode_text};
use crate::kernel::{Kernel, Module, ModuleState};
use crate::load::layout::kernel_image_base;
use crate::taint::Taint;

/// `SHN_UNDEF`.
pub const SHN_UNDEF: u16 = 0;
/// `SHN_ABS`.
pub const SHN_ABS: u16 = 0xfff1;
/// `SHN_COMMON`.
pub const SHN_COMMON: u16 = 0xfff2;
/// `SHN_LIVEPATCH`.
pub const SHN_LIVEPATCH: u16 = 0xff20;
/// `STB_WEAK`.
pub const STB_WEAK: u8 = 2;

/// A symbol `find_symbol()` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The owning module, `None` for vmlinux.
    pub owner: Option<String>,
    /// The symbol's address.
    pub value: u64,
    /// `EXPORT_SYMBOL_GPL`.
    pub gpl_only: bool,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its CRC, if the exporter has CRCs.
    pub crc: Option<u32>,
}

/// The address of the vmlinux export `name`: given ([`Kernel::set_symbol_addresses`]), else
/// the simulator's own: the kernel image base plus 16 bytes per export, in the profile's order.
pub fn vmlinux_symbol_address(kernel: &Kernel, name: &str) -> Option<u64> {
    let i = kernel.profile.exports().get_index_of(name)?;
    if let Some(&a) = kernel.given_symbols.get(name) {
        return Some(a);
    }
    Some(kernel_image_base(&kernel.profile) + 16 * i as u64)
}

/// Models `find_symbol()`: vmlinux first, then every formed module in list order. With
/// `gplok == false`, GPL-only exports are passed over.
pub fn find_symbol(kernel: &Kernel, name: &str, gplok: bool) -> Option<Found> {
    if let Some(e) = kernel.profile.export(name)
        && (gplok || !e.gpl_only)
    {
        return Some(Found {
            owner: None,
            value: vmlinux_symbol_address(kernel, name).unwrap_or(0),
            gpl_only: e.gpl_only,
            namespace: e.namespace.clone(),
            crc: Some(e.crc),
        });
    }
    // The formed modules' exports (the kernel walks the module list; the simulator keeps an
    // index of the same exports, so the result is the same).
    if let Some((owner, e)) = kernel.exports.get(name)
        && (gplok || !e.gpl_only)
    {
        return Some(Found {
            owner: Some(owner.clone()),
            value: e.value,
            gpl_only: e.gpl_only,
            namespace: e.namespace.clone(),
            crc: e.crc,
        });
    }
    None
}

/// Why `resolve_symbol()` did not give a symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Not found (the caller may accept it for a weak symbol).
    NotFound,
    /// Found, but refused with this errno.
    Refused(Errno),
}

/// Models `inherit_taint()`.
fn inherit_taint(
    kernel: &mut Kernel,
    module: &mut Module,
    owner: Option<&str>,
    name: &str,
) -> bool {
    let Some(owner) = owner else { return true };
    let owner_p = kernel
        .module(owner)
        .is_some_and(|o| o.taints & Taint::ProprietaryModule.mask() != 0);
    if !owner_p {
        return true;
    }
    if module.using_gplonly_symbols {
        kernel.log.err(format!(
            "{}: module using GPL-only symbols uses symbols {name} from proprietary module {owner}.",
            module.name
        ));
        return false;
    }
    if module.taints & Taint::ProprietaryModule.mask() == 0 {
        kernel.log.warn(format!(
            "{}: module uses symbols {name} from proprietary module {owner}, inheriting taint.",
            module.name
        ));
        module.taints |= Taint::ProprietaryModule.mask();
    }
    true
}

/// Models `verify_namespace_is_imported()`.
fn verify_namespace_is_imported(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &Module,
    name: &str,
    ns: Option<&str>,
) -> Result<(), Errno> {
    let Some(ns) = ns.filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    if info.modinfo.get_all("import_ns").contains(&ns) {
        return Ok(());
    }
    let line = format!(
        "{}: module uses symbol ({name}) from namespace {ns}, but does not import it.",
        module.name
    );
    if kernel
        .profile
        .is_enabled("MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS")
    {
        kernel.log.warn(line);
        Ok(())
    } else {
        kernel.log.err(line);
        Err(Errno::EINVAL)
    }
}

/// Models `ref_module()` with `strong_try_module_get()`: record that `module` uses `owner`.
fn ref_module(kernel: &mut Kernel, module: &mut Module, owner: &str) -> Result<(), Errno> {
    if module.uses.iter().any(|u| u == owner) {
        return Ok(());
    }
    let Some(o) = kernel.modules.iter_mut().find(|m| m.name == owner) else {
        return Err(Errno::ENOENT);
    };
    match o.state {
        ModuleState::Coming => return Err(Errno::EBUSY),
        ModuleState::Going => return Err(Errno::ENOENT),
        _ => {}
    }
    o.refcnt += 1;
    o.users.insert(0, module.name.clone());
    module.uses.push(owner.to_string());
    Ok(())
}

/// Models `resolve_symbol()` (and `resolve_symbol_wait()`, which in a simulation without
/// concurrency gives up at once on an owner still in `init`: "gave up waiting").
pub fn resolve_symbol(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    name: &str,
) -> Result<u64, Unresolved> {
    let gplok = module.taints & Taint::ProprietaryModule.mask() == 0;
    let Some(f) = find_symbol(kernel, name, gplok) else {
        // A symbol given with an address by the caller: exported by something outside the
        // simulation (Kernel::set_symbol_addresses).
        return kernel
            .given_symbols
            .get(name)
            .copied()
            .ok_or(Unresolved::NotFound);
    };
    if f.gpl_only {
        module.using_gplonly_symbols = true;
    }
    if !inherit_taint(kernel, module, f.owner.as_deref(), name) {
        return Err(Unresolved::NotFound);
    }
    if !crate::load::checks::check_version(kernel, info, module, name, f.crc) {
        return Err(Unresolved::Refused(Errno::EINVAL));
    }
    verify_namespace_is_imported(kernel, info, module, name, f.namespace.as_deref())
        .map_err(Unresolved::Refused)?;
    if let Some(owner) = &f.owner
        && let Err(e) = ref_module(kernel, module, owner)
    {
        if e == Errno::EBUSY {
            kernel.log.warn(format!(
                "{}: gave up waiting for init of module {owner}.",
                module.name
            ));
        }
        return Err(Unresolved::Refused(e));
    }
    Ok(f.value)
}

/// One symbol of `.symtab` as `simplify_symbols()` sees and rewrites it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleSym<'a> {
    /// The name's bytes, borrowed from the image.
    pub name: &'a [u8],
    /// `st_value` (rewritten to an absolute address).
    pub value: u64,
    /// `st_shndx`.
    pub shndx: u16,
    /// `ELF_ST_BIND(st_info)`.
    pub bind: u8,
}

/// Models `simplify_symbols()`: resolve undefined symbols, make defined ones absolute
/// (`section_addr[shndx]`; the per-cpu section's symbols go to `percpu`). Every bad symbol
/// gets its log line; the last error is returned.
pub fn simplify_symbols(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    syms: &mut [SimpleSym<'_>],
    section_addr: &[u64],
    percpu: u64,
    shnum: usize,
) -> Result<(), Errno> {
    let mut ret = Ok(());
    for s in syms.iter_mut().skip(1) {
        match s.shndx {
            SHN_COMMON => {
                if s.name.starts_with(b"__gnu_lto") {
                    continue;
                }
                kernel
                    .log
                    .warn(format!("{}: please compile with -fno-common", module.name));
                ret = Err(Errno::ENOEXEC);
            }
            SHN_ABS | SHN_LIVEPATCH => {}
            // A name longer than every name that could resolve it is not found, without
            // reading it (the kernel's strcmp stops at the first difference too).
            SHN_UNDEF => match if s.name.len() > kernel.longest_symbol_name() {
                Err(Unresolved::NotFound)
            } else {
                resolve_symbol(kernel, info, module, &decode_text(s.name))
            } {
                Ok(v) => s.value = v,
                Err(Unresolved::NotFound) if s.bind == STB_WEAK => {}
                Err(u) => {
                    let e = match u {
                        Unresolved::NotFound => Errno::ENOENT,
                        Unresolved::Refused(e) => e,
                    };
                    kernel.log.warn(format!(
                        "{}: Unknown symbol {} (err -{})",
                        module.name,
                        printable(s.name),
                        e.0
                    ));
                    ret = Err(e);
                }
            },
            shndx => {
                let i = usize::from(shndx);
                if i >= shnum {
                    kernel.log.err(format!(
                        "{}: Symbol {} has an invalid section index {} (max {})",
                        module.name,
                        printable(s.name),
                        shndx,
                        shnum.saturating_sub(1)
                    ));
                    ret = Err(Errno::ENOEXEC);
                    continue;
                }
                let base = if info.index.pcpu != 0 && info.index.pcpu == i {
                    percpu
                } else {
                    section_addr.get(i).copied().unwrap_or(0)
                };
                s.value = s.value.wrapping_add(base);
            }
        }
    }
    ret
}

/// A name for a log line: no more than a printk record holds (the log cuts the line there),
/// so that a long name costs no more than a short one.
fn printable(name: &[u8]) -> std::borrow::Cow<'_, str> {
    decode_text(&name[..name.len().min(1024)])
}

/// Models `verify_exported_symbols()`: no export may already exist anywhere.
pub fn verify_exported_symbols(kernel: &mut Kernel, module: &Module) -> Result<(), Errno> {
    for name in module.exports.keys() {
        if let Some(f) = find_symbol(kernel, name, true) {
            let owner = f.owner.unwrap_or_else(|| "kernel".to_string());
            kernel.log.err(format!(
                "{}: exports duplicate symbol {name} (owned by {owner})",
                module.name
            ));
            return Err(Errno::ENOEXEC);
        }
    }
    Ok(())
}
