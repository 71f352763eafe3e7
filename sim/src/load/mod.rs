//! The load path: `load_module()` of kernel/module/main.c, one function per kernel step, named
//! after the kernel function it models, in the kernel's order for the profile's version.
//!
//! 6.1: `module_sig_check` → `elf_validity_check` → `setup_load_info` → `blacklisted` →
//! `rewrite_section_headers` → `check_modstruct_version` → `layout_and_allocate` (with
//! `check_modinfo` and its taints first) → `add_unformed_module` → signature taint → ...
//! 6.12: `module_sig_check` → `elf_validity_cache_copy` → `early_mod_check` (blacklist,
//! modstruct version, vermagic, duplicate) → `layout_and_allocate` → `add_unformed_module` →
//! `module_augment_kernel_taints` → ...
//! Both then: `percpu_modalloc` → `module_unload_init` → `find_module_sections` → export CRC
//! check → `simplify_symbols` → `apply_relocations` → `post_relocation` → args →
//! `complete_formation` → `parse_args` → `mod_sysfs_setup` → `do_init_module`.

pub mod checks;
pub mod decompress;
pub mod elf_check;
pub mod finalize;
pub mod layout;
pub mod params_step;
pub mod reloc;
pub mod signing;
pub mod symbols;

use crate::errno::Errno;
use crate::image::LoadInfo;
use crate::kernel::{
    Kernel, MODULE_NAME_LEN, MODULE_REF_BASE, Module, ModuleExport, ModuleState, SysError,
    SysResult,
};
use crate::memory::RegionKind;
use crate::profile::{Arch, KernelVersion};
use crate::taint::Taint;
use crate::trace::{TraceEvent, reloc_type_name};
use layout::{
    LayoutSection, MemType, SHF_ALLOC, SHF_EXECINSTR, SHF_RO_AFTER_INIT, SHF_WRITE, SHT_NOBITS,
};
use symbols::SimpleSym;

/// `SHT_RELA`.
const SHT_RELA: u32 = 4;
/// `SHT_REL`.
const SHT_REL: u32 = 9;
/// `sizeof(struct kernel_symbol)` with `CONFIG_HAVE_ARCH_PREL32_RELOCATIONS` (both arches).
const KERNEL_SYMBOL_SIZE: u64 = 12;
/// The reserved per-cpu area modules allocate from (`PERCPU_MODULE_RESERVE`, 8 KiB).
pub const PERCPU_MODULE_RESERVE: u64 = 8 << 10;

fn fail(step: &'static str) -> impl Fn(Errno) -> SysError {
    move |e| SysError::new(step, e)
}

/// A module being loaded: what `load_module()` keeps between steps.
pub(crate) struct Loading {
    pub(crate) info: LoadInfo,
    pub(crate) module: Module,
    pub(crate) flags: u32,
    /// `sh_addr` of every section after `move_module()` (0 when not allocated).
    pub(crate) addr: Vec<u64>,
    /// Allocated region base per `MemType` (0 when empty).
    pub(crate) region: [u64; 7],
    /// Allocated region size per `MemType` (a placement can make it larger than the layout's).
    pub(crate) region_size: [u64; 7],
    /// The layout's size per `MemType` (`mod->mem[type].size`), what `/proc/modules` counts.
    pub(crate) layout_size: [u64; 7],
    /// Per-cpu allocation (offset in the reserve, size).
    pub(crate) percpu: Option<(u64, u64)>,
    /// Every `SHT_RELA` section's entries, in the order they are applied (arm64's
    /// `module_frob_arch_sections()` sorts some).
    pub(crate) relas: std::collections::BTreeMap<usize, Vec<reloc::Rela>>,
    /// What `module_frob_arch_sections()` decided (arm64 PLTs).
    pub(crate) plt: reloc::PltLayout,
    /// The section addresses to use instead of the simulator's own
    /// ([`Kernel::place_next_load`]), taken when the load starts.
    pub(crate) placement: Option<indexmap::IndexMap<String, u64>>,
}

/// How far a load got without waiting for anything else.
pub(crate) enum Phase {
    /// The load ended (failed before init).
    Done(SysResult),
    /// The module is COMING, in the module list for everyone to see: its init is to run now
    /// ([`finish_init`]).
    Init(Box<Loading>),
    /// A module of the same name is COMING: the load waits until it has finished loading
    /// (`finished_loading()`), then fails ([`finish_wait`]). The step that waits.
    Wait(Box<Loading>, &'static str),
}

/// Why a load stopped before init.
pub(crate) enum Stop {
    /// It failed.
    Fail(SysError),
    /// It waits for a same-name module in init: the step that waits.
    Wait(&'static str),
}

impl From<SysError> for Stop {
    fn from(e: SysError) -> Self {
        Stop::Fail(e)
    }
}

/// Models `load_module()`: everything after the system call's own checks, the module's init
/// run as [`Kernel`]'s init hooks say. A load that would wait for another in progress (which a
/// caller of this function cannot have started) fails with `EINTR`, as a signal would end the
/// wait.
pub fn load_module(
    kernel: &mut Kernel,
    image: Vec<u8>,
    uargs: Option<&[u8]>,
    flags: u32,
) -> SysResult {
    match start_load(kernel, image, uargs, flags) {
        Phase::Done(r) => r,
        Phase::Init(mut l) => {
            let ret = kernel.run_init(&l.module.name);
            finish_init(kernel, &mut l, ret)
        }
        Phase::Wait(l, step) => interrupt_wait(kernel, &l, step),
    }
}

/// A waiting load ended by a signal: `wait_event_interruptible()` returns `-ERESTARTSYS`,
/// which userspace sees as `EINTR`.
pub(crate) fn interrupt_wait(kernel: &mut Kernel, l: &Loading, step: &'static str) -> SysResult {
    free_loading(kernel, l);
    Err(SysError::new(step, Errno::EINTR))
}

/// After the wait of [`Phase::Wait`]: `module_patient_check_exists()` (6.12) and 6.1's
/// `add_unformed_module()` (with "module: Don't wait for GOING modules") do not load again
/// but fail, `EEXIST` when the module that was loading is now live, `EBUSY` when it failed
/// or is going.
pub(crate) fn finish_wait(kernel: &mut Kernel, l: &Loading, step: &'static str) -> SysResult {
    let live = kernel
        .modules
        .iter()
        .any(|m| m.name == l.module.name && m.state == ModuleState::Live);
    free_loading(kernel, l);
    Err(SysError::new(
        step,
        if live { Errno::EEXIST } else { Errno::EBUSY },
    ))
}

/// Whether a load waiting in [`Phase::Wait`] may go on: no module of its name is COMING.
pub(crate) fn finished_loading(kernel: &Kernel, l: &Loading) -> bool {
    !kernel
        .modules
        .iter()
        .any(|m| m.name == l.module.name && m.state == ModuleState::Coming)
}

/// The name of the module a load is loading.
pub(crate) fn loading_name(l: &Loading) -> &str {
    &l.module.name
}

/// Whether the module being loaded has an init function.
pub(crate) fn loading_has_init(l: &Loading) -> bool {
    l.module.has_init
}

/// [`load_module`] up to the module's init, or to a wait.
pub(crate) fn start_load(
    kernel: &mut Kernel,
    image: Vec<u8>,
    uargs: Option<&[u8]>,
    flags: u32,
) -> Phase {
    match start_load_inner(kernel, image, uargs, flags) {
        Ok(p) => p,
        Err(e) => Phase::Done(Err(e)),
    }
}

fn start_load_inner(
    kernel: &mut Kernel,
    image: Vec<u8>,
    uargs: Option<&[u8]>,
    flags: u32,
) -> Result<Phase, SysError> {
    let version = kernel.version();
    // module_sig_check(): may shorten the image (the signature trailer is stripped).
    let sig_settings = signing::SigSettings {
        sig_enforce: kernel.settings.sig_enforce,
        lockdown: kernel.settings.lockdown,
        comm: "modloader".to_string(),
    };
    let sig = signing::module_sig_check(
        &kernel.profile,
        &image,
        flags,
        &sig_settings,
        &mut kernel.log,
    )
    .map_err(fail("module_sig_check"))?;
    let image_len = image.len();
    if kernel.tracing() {
        let ev = {
            TraceEvent::new(
            "module_sig_check",
            "kernel/module/signing.c",
            if sig.sig_ok {
                "the appended signature was made by the kernel's module key: sig_ok"
            } else {
                "no signature the kernel can verify: the module loads unsigned and taints the kernel E"
            },
        )
        .with("image bytes", image_len)
        .with("bytes after the signature trailer is stripped", sig.len)
        .with("sig_enforce", sig_settings.sig_enforce)
        };
        kernel.push_trace(ev);
    }
    let info = elf_check::check_elf(
        &kernel.profile,
        image,
        sig.len,
        flags,
        sig.sig_ok,
        &mut kernel.log,
    )
    .map_err(fail(match version {
        KernelVersion::V6_1 => "elf_validity_check",
        KernelVersion::V6_12 => "elf_validity_cache_copy",
    }))?;
    if kernel.tracing() {
        let ev = {
            TraceEvent::new(
                match version {
                    KernelVersion::V6_1 => "elf_validity_check",
                    KernelVersion::V6_12 => "elf_validity_cache_copy",
                },
                "kernel/module/main.c",
                "the ELF header, section table and the module's special sections are valid",
            )
            .with("e_machine", info.e_machine)
            .with("sections", info.sections.len())
            .with("module name (info->name)", &info.name)
            .with("vermagic", info.modinfo.get("vermagic").unwrap_or("(none)"))
            .with("license", info.modinfo.get("license").unwrap_or("(none)"))
            .with("__versions entries", info.versions.len())
        };
        kernel.push_trace(ev);
    }
    let module = new_module(kernel, &info);
    let shnum = info.sections.len();
    let mut l = Loading {
        info,
        module,
        flags,
        addr: vec![0; shnum],
        region: [0; 7],
        region_size: [0; 7],
        layout_size: [0; 7],
        percpu: None,
        relas: std::collections::BTreeMap::new(),
        plt: reloc::PltLayout::default(),
        placement: kernel.placement.take(),
    };
    let r = match version {
        KernelVersion::V6_1 => load_6_1(kernel, &mut l, uargs),
        KernelVersion::V6_12 => load_6_12(kernel, &mut l, uargs),
    };
    Ok(match r {
        Ok(()) => Phase::Init(Box::new(l)),
        Err(Stop::Wait(step)) => Phase::Wait(Box::new(l), step),
        Err(Stop::Fail(e)) => {
            free_loading(kernel, &l);
            Phase::Done(Err(e))
        }
    })
}

/// The `struct module` the kernel works with: its name from the on-disk `.gnu.linkonce.this_module`.
fn new_module(kernel: &Kernel, info: &LoadInfo) -> Module {
    let raw_name: Vec<u8> = info
        .this_module_data()
        .ok()
        .and_then(|d| d.get(kernel.profile.this_module().name_offset..))
        .map(|d| {
            let d = &d[..d.len().min(MODULE_NAME_LEN)];
            let n = d.iter().position(|&b| b == 0).unwrap_or(d.len());
            d[..n].to_vec()
        })
        .unwrap_or_else(|| info.name.as_bytes().to_vec());
    Module {
        name: crate::image::decode_bytes(&raw_name),
        raw_name,
        state: ModuleState::Unformed,
        taints: 0,
        refcnt: 0,
        users: Vec::new(),
        uses: Vec::new(),
        has_init: false,
        has_exit: false,
        size: 0,
        base: 0,
        regions: Vec::new(),
        exports: indexmap::IndexMap::new(),
        params: Vec::new(),
        sig_ok: false,
        using_gplonly_symbols: false,
        percpu_end: 0,
        kparams: Vec::new(),
        param_symbols: std::collections::BTreeMap::new(),
        sections: Vec::new(),
        placement_mismatches: Vec::new(),
    }
}

/// The steps both versions take first, in the same order: `blacklisted()`,
/// `rewrite_section_headers()`, `check_modstruct_version()` (6.12 runs them inside
/// `early_mod_check()`).
fn blacklist_and_modstruct_version(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    if checks::blacklisted(kernel, &l.info.name) {
        kernel
            .log
            .err(format!("Module {} is blacklisted", l.info.name));
        return Err(SysError::new("blacklisted", Errno::EPERM));
    }
    elf_check::rewrite_section_headers(&mut l.info, 0);
    if !checks::check_modstruct_version(kernel, &l.info, &mut l.module) {
        return Err(SysError::new("check_modstruct_version", Errno::ENOEXEC));
    }
    trace_versions(kernel, l);
    Ok(())
}

fn load_6_1(kernel: &mut Kernel, l: &mut Loading, uargs: Option<&[u8]>) -> Result<(), Stop> {
    blacklist_and_modstruct_version(kernel, l)?;
    checks::check_modinfo_6_1(kernel, &l.info, &mut l.module, l.flags)
        .map_err(fail("check_modinfo"))?;
    trace_modinfo(kernel, l);
    layout_and_allocate(kernel, l)?;
    add_unformed_module(kernel, &l.module, "add_unformed_module")?;
    let sig_ok = l.info.sig_ok;
    checks::sig_taint(kernel, &mut l.module, sig_ok);
    after_unformed(
        kernel,
        l,
        uargs,
        Some(kernel.taint.test(Taint::ProprietaryModule)),
    )
}

fn load_6_12(kernel: &mut Kernel, l: &mut Loading, uargs: Option<&[u8]>) -> Result<(), Stop> {
    // early_mod_check()
    blacklist_and_modstruct_version(kernel, l)?;
    checks::check_modinfo_6_12(kernel, &l.info, &mut l.module, l.flags)
        .map_err(fail("check_modinfo"))?;
    trace_modinfo(kernel, l);
    add_unformed_module(kernel, &l.module, "module_patient_check_exists")?;
    layout_and_allocate(kernel, l)?;
    add_unformed_module(kernel, &l.module, "add_unformed_module")?;
    let sig_ok = l.info.sig_ok;
    checks::module_augment_kernel_taints(kernel, &l.info, &mut l.module, sig_ok);
    after_unformed(kernel, l, uargs, None)
}

/// Models `add_unformed_module()` (and 6.12's `module_patient_check_exists()`, the `step`): a
/// module of the same name gives `EEXIST` when live, `EBUSY` when going; while it is COMING
/// (its init running) the load waits for it ([`Stop::Wait`]). An UNFORMED module is never
/// seen: the simulator runs a load up to init in one step.
fn add_unformed_module(kernel: &Kernel, module: &Module, step: &'static str) -> Result<(), Stop> {
    match kernel.modules.iter().find(|m| m.name == module.name) {
        None => Ok(()),
        Some(old) if old.state == ModuleState::Live => {
            Err(SysError::new(step, Errno::EEXIST).into())
        }
        Some(old) if matches!(old.state, ModuleState::Coming | ModuleState::Unformed) => {
            Err(Stop::Wait(step))
        }
        Some(_) => Err(SysError::new(step, Errno::EBUSY).into()),
    }
}

fn layout_sections_of(info: &LoadInfo) -> Vec<LayoutSection> {
    info.sections
        .iter()
        .map(|s| LayoutSection {
            name: s.name.clone(),
            sh_type: s.sh_type,
            flags: s.flags,
            size: s.size,
            addralign: s.addralign,
        })
        .collect()
}

/// Models `layout_and_allocate()` (without 6.1's `check_modinfo`, done by the caller):
/// `module_frob_arch_sections`, `module_enforce_rwx_sections`, the per-cpu and ro_after_init
/// flags, `layout_sections`, `layout_symtab`, `move_module`.
fn layout_and_allocate(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    let version = kernel.version();
    module_frob_arch_sections(kernel, l)?;
    // module_enforce_rwx_sections() (kernel/module/strict_rwx.c).
    let strict_rwx = kernel.profile.is_enabled("STRICT_MODULE_RWX");
    if strict_rwx
        && let Some((i, s)) = l
            .info
            .sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.flags & (SHF_WRITE | SHF_EXECINSTR) == SHF_WRITE | SHF_EXECINSTR)
    {
        kernel.log.err(format!(
            "{}: section {} (index {i}) has invalid WRITE|EXEC flags",
            l.module.name, s.name
        ));
        return Err(SysError::new("module_enforce_rwx_sections", Errno::ENOEXEC));
    }
    // The per-cpu section is allocated separately (index 0 when there is none, harmlessly).
    let pcpu = l.info.index.pcpu;
    if let Some(s) = l.info.sections.get_mut(pcpu) {
        s.flags &= !SHF_ALLOC;
    }
    for name in [".data..ro_after_init", "__jump_table"] {
        if let Some(i) = l.info.find_sec(name)
            && let Some(s) = l.info.sections.get_mut(i)
        {
            s.flags |= SHF_RO_AFTER_INIT;
        }
    }
    let secs = layout_sections_of(&l.info);
    let mut lay = layout::layout_sections(version, &secs, strict_rwx);
    let counts = symtab_counts(kernel, &l.info, &lay);
    layout::layout_symtab(
        version,
        &mut lay,
        &secs,
        l.info.index.sym,
        l.info.index.str,
        counts,
        strict_rwx,
    );
    // layout_symtab() sets SHF_ALLOC on .symtab and .strtab (they live in init memory).
    for i in [l.info.index.sym, l.info.index.str] {
        if let Some(s) = l.info.sections.get_mut(i) {
            s.flags |= SHF_ALLOC;
        }
    }
    move_module(kernel, l, &lay)?;
    trace_layout(kernel, l);
    Ok(())
}

/// The symbol table of `info`, names borrowed from `image` (a shared handle on `info.image`).
fn image_symbols<'a>(
    info: &LoadInfo,
    image: &'a [u8],
) -> Result<Vec<crate::image::Symbol<'a>>, crate::image::ImageError> {
    let symtab = info.section(info.index.sym)?;
    let strtab = info.section(info.index.str)?;
    crate::image::Symbol::read_table(image, symtab, strtab.offset)
}

/// The counts `layout_symtab()` needs: `is_core_symbol()` decides which symbols stay.
fn symtab_counts(kernel: &Kernel, info: &LoadInfo, lay: &layout::Layout) -> layout::SymtabCounts {
    let syms = info.symbols().unwrap_or_default();
    let kallsyms_all = kernel.profile.is_enabled("KALLSYMS_ALL");
    let shnum = info.sections.len();
    let mut ndst = 0u64;
    let mut strtab_size = 0u64;
    for (i, s) in syms.iter().enumerate() {
        let keep = i == 0 || {
            let idx = usize::from(s.shndx);
            if s.shndx == symbols::SHN_UNDEF || idx >= shnum || s.name.is_empty() {
                false
            } else if kallsyms_all && info.index.pcpu != 0 && info.index.pcpu == idx {
                true
            } else {
                let sec = &info.sections[idx];
                let in_init = lay
                    .placements
                    .get(idx)
                    .copied()
                    .flatten()
                    .is_some_and(|p| p.mem.is_init());
                sec.flags & SHF_ALLOC != 0
                    && (kallsyms_all || sec.flags & SHF_EXECINSTR != 0)
                    && !in_init
            }
        };
        if keep {
            ndst += 1;
            strtab_size += s.name.len() as u64 + 1;
        }
    }
    layout::SymtabCounts {
        nsrc: syms.len() as u64,
        ndst,
        strtab_size,
    }
}

/// Models `move_module()`: allocate each region in the module area and copy the sections.
/// With a placement ([`Kernel::place_next_load`]) the regions go where the given section
/// addresses say (see [`placed_regions`]).
fn move_module(kernel: &mut Kernel, l: &mut Loading, lay: &layout::Layout) -> SysResult {
    let version = kernel.version();
    let sizes = layout::allocated_sizes(version, lay);
    let (area_start, area_end) = layout::module_area(&kernel.profile);
    let placement = l.placement.take();
    let given = placement
        .as_ref()
        .map(|p| placed_regions(l, lay, &sizes, p))
        .unwrap_or_default();
    for t in MemType::ALL {
        let mut size = sizes[t as usize];
        if size == 0 {
            continue;
        }
        let base = match given.get(&t) {
            Some(&(base, need)) => {
                size = size.max(need);
                base
            }
            None => {
                // First fit from the lowest address that may be free (vmalloc): memory that
                // unloaded modules gave back is used again.
                if let Some(low) = kernel.memory.take_lowest_module_free() {
                    kernel.next_module_addr = kernel.next_module_addr.min(low.max(area_start));
                }
                kernel
                    .memory
                    .first_fit(
                        kernel.next_module_addr,
                        area_end,
                        size,
                        layout::PAGE_SIZE,
                        layout::PAGE_SIZE,
                    )
                    .ok_or_else(|| SysError::new("move_module", Errno::ENOMEM))?
            }
        };
        let end = base
            .checked_add(size)
            .filter(|&e| placement.is_some() || e <= area_end)
            .ok_or_else(|| SysError::new("move_module", Errno::ENOMEM))?;
        kernel
            .memory
            .alloc(
                base,
                size,
                RegionKind::Module,
                format!("{}: {t:?}", l.module.name),
            )
            .map_err(|_| SysError::new("move_module", Errno::ENOMEM))?;
        if placement.is_none() && base == kernel.next_module_addr {
            // Everything below is in use: the next search starts past this region and its
            // guard page (a region placed higher left a gap below that may fit a later one).
            kernel.next_module_addr = layout::page_align(end) + layout::PAGE_SIZE;
        }
        l.region[t as usize] = base;
        l.region_size[t as usize] = size;
        l.module.regions.push(base);
    }
    for (i, p) in lay.placements.iter().enumerate() {
        let Some(p) = p else { continue };
        let Some(s) = l.info.sections.get(i) else {
            continue;
        };
        if s.flags & SHF_ALLOC == 0 {
            continue;
        }
        let own = l.region[p.mem as usize].wrapping_add(p.offset);
        // A placed load keeps every given address, an empty section's too.
        let addr = match placement.as_ref().and_then(|m| m.get(&s.name)) {
            Some(&a) => {
                if a != own {
                    l.module.placement_mismatches.push(format!(
                        "{}: given at {a:#x}, the simulator's layout puts it at {own:#x} \
                         ({:?} region + {:#x})",
                        s.name, p.mem, p.offset
                    ));
                }
                a
            }
            _ => own,
        };
        l.addr[i] = addr;
        l.module.sections.push(crate::kernel::ModuleSection {
            name: s.name.clone(),
            addr,
            size: s.size,
            init: p.mem.is_init(),
        });
        if s.sh_type != SHT_NOBITS && s.size > 0 {
            let data = l
                .info
                .section_data(i)
                .map_err(|_| SysError::new("move_module", Errno::ENOEXEC))?
                .to_vec();
            kernel
                .memory
                .write(addr, &data)
                .map_err(|_| SysError::new("move_module", Errno::ENOEXEC))?;
        }
    }
    l.module.base = l.region[MemType::Text as usize];
    l.layout_size = sizes;
    l.module.size = match version {
        KernelVersion::V6_1 => sizes[MemType::Text as usize] + sizes[MemType::InitText as usize],
        KernelVersion::V6_12 => sizes.iter().sum(),
    };
    Ok(())
}

/// Where a placement puts each region: its base (the given address of the region's first
/// non-empty section with one, less that section's offset in the simulator's layout) and the
/// size it must have so that every given section of the region fits.
fn placed_regions(
    l: &Loading,
    lay: &layout::Layout,
    sizes: &[u64; 7],
    given: &indexmap::IndexMap<String, u64>,
) -> std::collections::BTreeMap<MemType, (u64, u64)> {
    let mut out: std::collections::BTreeMap<MemType, (u64, u64)> = Default::default();
    for (i, p) in lay.placements.iter().enumerate() {
        let (Some(p), Some(s)) = (p, l.info.sections.get(i)) else {
            continue;
        };
        if s.flags & SHF_ALLOC == 0 || s.size == 0 || sizes[p.mem as usize] == 0 {
            continue;
        }
        let Some(&a) = given.get(&s.name) else {
            continue;
        };
        let (base, size) = *out
            .entry(p.mem)
            .or_insert((a.wrapping_sub(p.offset), sizes[p.mem as usize]));
        // The region covers every section given an address in it, below its first one too.
        let lo = base.min(a);
        let hi = base.saturating_add(size).max(a.saturating_add(s.size));
        out.insert(p.mem, (lo, layout::page_align(hi - lo)));
    }
    out
}

/// Everything after the module is unique: per-cpu, unload init, sections, symbols,
/// relocations, exports, arguments, formation, parameters, sysfs, init.
fn after_unformed(
    kernel: &mut Kernel,
    l: &mut Loading,
    uargs: Option<&[u8]>,
    prev_p_taint: Option<bool>,
) -> Result<(), Stop> {
    percpu_modalloc(kernel, l)?;
    // module_unload_init(): one reference for the module, one held during init.
    l.module.refcnt = MODULE_REF_BASE + 1;
    // find_module_sections()
    if l.info.find_sec(".ctors").is_some()
        && l.info.find_sec(".init_array").is_some()
        && kernel.profile.is_enabled("CONSTRUCTORS")
    {
        kernel.log.warn(format!(
            "{}: has both .ctors and .init_array.",
            l.module.name
        ));
        return Err(SysError::new("find_module_sections", Errno::EINVAL).into());
    }
    if l.info.find_sec("__obsparm").is_some() {
        kernel
            .log
            .warn(format!("{}: Ignoring obsolete parameters", l.module.name));
    }
    let has = |n: &str| {
        l.info
            .find_sec(n)
            .is_some_and(|i| l.info.sections[i].size > 0)
    };
    let without_crcs = (has("__ksymtab") && l.info.find_sec("__kcrctab").is_none())
        || (has("__ksymtab_gpl") && l.info.find_sec("__kcrctab_gpl").is_none());
    checks::check_export_versions(kernel, &mut l.module, without_crcs, prev_p_taint)
        .map_err(fail("check_export_symbol_versions"))?;
    // simplify_symbols(). The names are borrowed from the image (shared, so the load can go
    // on changing `l` while they are in use).
    let image = std::sync::Arc::clone(&l.info.image);
    let mut syms: Vec<SimpleSym> = image_symbols(&l.info, &image)
        .map_err(|_| SysError::new("simplify_symbols", Errno::ENOEXEC))?
        .into_iter()
        .map(|s| SimpleSym {
            name: s.name,
            value: s.value,
            shndx: s.shndx,
            bind: s.bind(),
        })
        .collect();
    let percpu_addr = l.percpu.map_or(0, |(off, _)| percpu_base(kernel) + off);
    let shnum = l.info.sections.len();
    symbols::simplify_symbols(
        kernel,
        &l.info,
        &mut l.module,
        &mut syms,
        &l.addr,
        percpu_addr,
        shnum,
    )
    .map_err(fail("simplify_symbols"))?;
    trace_symbols(kernel, l, &syms);
    apply_relocations(kernel, l, &syms)?;
    trace_relocations(kernel, l);
    // post_relocation(): the kernel's export tables are now readable.
    read_exports(kernel, l)?;
    if kernel.tracing() {
        let ev = {
            let names: Vec<&str> = l.module.exports.keys().map(String::as_str).collect();
            TraceEvent::new(
                "find_module_sections",
                "kernel/module/main.c",
                "the module's export table, read from relocated memory",
            )
            .with("exports", names.len())
            .with("names", names.join(" "))
        };
        kernel.push_trace(ev);
    }
    finalize::module_finalize(kernel, l)?;
    read_init_exit(kernel, l);
    // mod->args = strndup_user(uargs): a NULL pointer faults here, late.
    let args = params_step::strndup_user(uargs).map_err(fail("strndup_user"))?;
    finalize::ftrace_module_init(kernel, l);
    complete_formation(kernel, l)?;
    // prepare_coming_module(): the MODULE_STATE_COMING notifiers; the jump label one writes
    // into the module.
    finalize::jump_label_add_module(kernel, l);
    // The module's own named symbols, to name ops pointers: not section symbols (no name) nor
    // arm64 mapping symbols (`$x`, `$d`), which share addresses with the real ones.
    let own: Vec<(u64, &[u8])> = syms
        .iter()
        .filter(|s| {
            s.shndx != symbols::SHN_UNDEF && !s.name.is_empty() && !s.name.starts_with(b"$")
        })
        .map(|s| (s.value, s.name))
        .collect();
    // parse_args() destroys what it set when it fails; a failed mod_sysfs_setup() goes to
    // coming_cleanup, which destroys the parameters (destroy_params) too.
    if let Err(e) = params_step::parse_module_args(kernel, l, args, &own) {
        remove_formed(kernel, &l.module.name);
        return Err(e.into());
    }
    if let Err(e) = mod_sysfs_setup(kernel, l) {
        if let Some(m) = remove_formed(kernel, &l.module.name) {
            kernel.destroy_params(&m);
        }
        return Err(e.into());
    }
    if kernel.tracing() {
        let ev = {
            let params = kernel
                .module(&l.module.name)
                .map(|m| m.params.clone())
                .unwrap_or_default();
            let mut ev = TraceEvent::new(
                "parse_args",
                "kernel/params.c",
                "the parameter string was parsed into the module's __param table",
            );
            for (k, v) in params {
                ev = ev.with(format!("/sys/module/{}/parameters/{k}", l.module.name), v);
            }
            ev
        };
        kernel.push_trace(ev);
    }
    Ok(())
}

fn trace_versions(kernel: &mut Kernel, l: &Loading) {
    if kernel.tracing() {
        let ev = {
            let own = l
                .info
                .versions
                .iter()
                .find(|v| v.name == "module_layout")
                .map(|v| format!("{:#010x}", v.crc));
            let kern = kernel
                .profile
                .export("module_layout")
                .map(|e| format!("{:#010x}", e.crc));
            TraceEvent::new(
                "check_modstruct_version",
                "kernel/module/version.c",
                "the module was built against this kernel's struct module (module_layout CRC)",
            )
            .with(
                "module's CRC of module_layout",
                own.unwrap_or_else(|| "(no __versions entry)".into()),
            )
            .with(
                "kernel's CRC of module_layout",
                kern.unwrap_or_else(|| "(not exported)".into()),
            )
        };
        kernel.push_trace(ev);
    }
}

fn trace_modinfo(kernel: &mut Kernel, l: &Loading) {
    if kernel.tracing() {
        let ev = {
            TraceEvent::new(
                "check_modinfo",
                "kernel/module/main.c",
                "version magic and the taints .modinfo implies",
            )
            .with(
                "module vermagic",
                l.info.modinfo.get("vermagic").unwrap_or("(none)"),
            )
            .with("kernel vermagic", kernel.profile.vermagic())
            .with(
                "compared",
                if l.info.index.vers != 0 {
                    "the part after the first space (the module has __versions)"
                } else {
                    "the whole string"
                },
            )
            .with("module taints so far", l.module.taint_letters())
        };
        kernel.push_trace(ev);
    }
}

fn trace_layout(kernel: &mut Kernel, l: &Loading) {
    if kernel.tracing() {
        let ev = {
            let mut ev = TraceEvent::new(
                "layout_and_allocate",
                "kernel/module/main.c",
                "sections laid out into the module's memory regions",
            );
            for t in MemType::ALL {
                if l.region_size[t as usize] != 0 {
                    let name = match (kernel.version(), t) {
                        (KernelVersion::V6_1, MemType::Text) => "core_layout".to_string(),
                        (KernelVersion::V6_1, MemType::InitText) => "init_layout".to_string(),
                        (_, t) => format!("{t:?}"),
                    };
                    ev = ev.with(
                        format!("region {name}"),
                        format!(
                            "{:#x} size {:#x}",
                            l.region[t as usize], l.region_size[t as usize]
                        ),
                    );
                }
            }
            for (i, s) in l.info.sections.iter().enumerate() {
                if l.addr[i] != 0 && s.flags & SHF_ALLOC != 0 {
                    ev = ev.with(
                        format!("section {}", s.name),
                        format!("{:#x} size {:#x}", l.addr[i], s.size),
                    );
                }
            }
            ev.with("size with init memory (freed after init)", l.module.size)
        };
        kernel.push_trace(ev);
    }
}

fn trace_symbols(kernel: &mut Kernel, l: &Loading, syms: &[SimpleSym<'_>]) {
    if kernel.tracing() {
        let ev = {
            let undef: Vec<&SimpleSym> = syms
                .iter()
                .skip(1)
                .filter(|s| s.shndx == symbols::SHN_UNDEF)
                .collect();
            // Each undefined symbol counted once: a vmlinux export (whatever its address), else
            // a weak one left at 0, else one a module (or a given address) resolved.
            let is_kernel = |s: &SimpleSym<'_>| {
                std::str::from_utf8(s.name).is_ok_and(|n| kernel.profile.export(n).is_some())
            };
            let from_kernel = undef.iter().filter(|s| is_kernel(s)).count();
            let weak_unresolved = undef
                .iter()
                .filter(|s| !is_kernel(s) && s.value == 0)
                .count();
            TraceEvent::new(
                "simplify_symbols",
                "kernel/module/main.c",
                "undefined symbols resolved, each CRC checked against its exporter (check_version)",
            )
            .with("symbols", syms.len())
            .with("undefined", undef.len())
            .with("resolved from vmlinux (Module.symvers)", from_kernel)
            .with(
                "resolved from modules",
                undef.len() - from_kernel - weak_unresolved,
            )
            .with("weak, left at 0", weak_unresolved)
            .with("uses modules", l.module.uses.join(" "))
        };
        kernel.push_trace(ev);
    }
}

fn trace_relocations(kernel: &mut Kernel, l: &Loading) {
    if kernel.tracing() {
        let ev = {
            let aarch64 = kernel.profile.arch() == Arch::Aarch64;
            let mut counts: std::collections::BTreeMap<u32, usize> =
                std::collections::BTreeMap::new();
            for (i, relas) in &l.relas {
                let target = l.info.sections.get(*i).map_or(0, |s| s.info as usize);
                if l.info
                    .sections
                    .get(target)
                    .is_some_and(|t| t.flags & SHF_ALLOC != 0)
                {
                    for r in relas {
                        *counts.entry(r.r_type).or_default() += 1;
                    }
                }
            }
            let mut ev = TraceEvent::new(
                "apply_relocations",
                "arch/*/kernel/module.c",
                "relocations applied into module memory",
            );
            for (t, n) in counts {
                ev = ev.with(reloc_type_name(aarch64, t), n);
            }
            ev
        };
        kernel.push_trace(ev);
    }
}

fn percpu_base(kernel: &Kernel) -> u64 {
    layout::percpu_base(&kernel.profile)
}

/// Models `percpu_modalloc()`: a per-cpu section is allocated from the 8 KiB module reserve.
fn percpu_modalloc(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    let i = l.info.index.pcpu;
    if i == 0 {
        return Ok(());
    }
    let Some(s) = l.info.sections.get(i) else {
        return Ok(());
    };
    if s.size == 0 {
        return Ok(());
    }
    let mut align = s.addralign.max(1);
    if align > layout::PAGE_SIZE {
        kernel.log.warn(format!(
            "{}: per-cpu alignment {} > {}",
            l.module.name,
            align,
            layout::PAGE_SIZE
        ));
        align = layout::PAGE_SIZE;
    }
    let used: u64 = kernel
        .modules
        .iter()
        .map(|m| m.percpu_end)
        .max()
        .unwrap_or(0);
    let off = used.div_ceil(align) * align;
    if off + s.size > PERCPU_MODULE_RESERVE {
        kernel.log.warn(format!(
            "{}: Could not allocate {} bytes percpu data",
            l.module.name, s.size
        ));
        return Err(SysError::new("percpu_modalloc", Errno::ENOMEM));
    }
    l.percpu = Some((off, s.size));
    l.module.percpu_end = off + s.size;
    Ok(())
}

fn reloc_sections(l: &Loading) -> Vec<reloc::RelocSection> {
    l.info
        .sections
        .iter()
        .enumerate()
        .map(|(i, s)| reloc::RelocSection {
            index: i,
            name: s.name.clone(),
            sh_type: s.sh_type,
            flags: s.flags,
            addr: l.addr.get(i).copied().unwrap_or(0),
            size: s.size,
            info: s.info,
            addralign: s.addralign,
        })
        .collect()
}

/// Models `module_frob_arch_sections()`: arm64 sizes its PLT sections (and sorts relocations);
/// x86_64 changes nothing.
fn module_frob_arch_sections(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    for (i, s) in l.info.sections.iter().enumerate() {
        if s.sh_type == SHT_RELA {
            let relas = l
                .info
                .relas(i)
                .map_err(|_| SysError::new("module_frob_arch_sections", Errno::ENOEXEC))?;
            let relas = relas
                .into_iter()
                .map(|r| reloc::Rela {
                    offset: r.offset,
                    sym: r.sym,
                    r_type: r.r_type,
                    addend: r.addend,
                })
                .collect();
            l.relas.insert(i, relas);
        }
    }
    if kernel.profile.arch() != Arch::Aarch64 {
        return Ok(());
    }
    let syms: Vec<reloc::RelocSymbol> = l
        .info
        .symbols()
        .map_err(|_| SysError::new("module_frob_arch_sections", Errno::ENOEXEC))?
        .into_iter()
        .map(|s| reloc::RelocSymbol {
            value: s.value,
            shndx: s.shndx,
        })
        .collect();
    let secs = reloc_sections(l);
    let plt = reloc::module_frob_arch_sections(
        &kernel.profile,
        reloc::Cpu::default(),
        &l.module.name,
        &secs,
        &mut l.relas,
        &syms,
        &mut kernel.log,
    )
    .map_err(fail("module_frob_arch_sections"))?;
    for u in plt.updates() {
        if let Some(s) = l.info.sections.get_mut(u.index) {
            s.sh_type = u.sh_type;
            s.flags = u.flags;
            s.addralign = u.addralign;
            s.size = u.size;
        }
    }
    for (i, a) in &plt.raised_alignments {
        if let Some(s) = l.info.sections.get_mut(*i) {
            s.addralign = *a;
        }
    }
    l.plt = plt;
    Ok(())
}

/// Models `apply_relocations()`: every `SHT_RELA` section whose target is allocated.
fn apply_relocations(kernel: &mut Kernel, l: &mut Loading, syms: &[SimpleSym<'_>]) -> SysResult {
    let shnum = l.info.sections.len();
    let secs = reloc_sections(l);
    let rsyms: Vec<reloc::RelocSymbol> = syms
        .iter()
        .map(|s| reloc::RelocSymbol {
            value: s.value,
            shndx: s.shndx,
        })
        .collect();
    let init_ranges: Vec<(u64, u64)> = MemType::ALL
        .iter()
        .filter(|t| t.is_init() && l.region_size[**t as usize] != 0)
        .map(|t| (l.region[*t as usize], l.region_size[*t as usize]))
        .collect();
    let mut plt = l.plt.plt_state(init_ranges);
    for i in 1..shnum {
        let s = &l.info.sections[i];
        let target = s.info as usize;
        if target >= shnum || l.info.sections[target].flags & SHF_ALLOC == 0 {
            continue;
        }
        match s.sh_type {
            SHT_REL => {
                kernel.log.err(format!(
                    "module {}: REL relocation unsupported",
                    l.module.name
                ));
                return Err(SysError::new("apply_relocate", Errno::ENOEXEC));
            }
            SHT_RELA => {
                let Some(relas) = l.relas.get(&i) else {
                    continue;
                };
                reloc::apply_relocate_add(
                    &kernel.profile,
                    &l.module.name,
                    &secs,
                    &rsyms,
                    i,
                    relas,
                    &mut kernel.memory,
                    &mut plt,
                    &mut kernel.log,
                )
                .map_err(fail("apply_relocate_add"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads `__ksymtab`/`__ksymtab_gpl` (PREL32 `struct kernel_symbol`) and the CRC tables from
/// relocated module memory, as `find_module_sections()` points `mod->syms` at them.
fn read_exports(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    for (tab, crctab, gpl) in [
        ("__ksymtab", "__kcrctab", false),
        ("__ksymtab_gpl", "__kcrctab_gpl", true),
    ] {
        let Some(i) = l.info.find_sec(tab) else {
            continue;
        };
        let base = l.addr[i];
        let n = l.info.sections[i].size / KERNEL_SYMBOL_SIZE;
        let crcs = l.info.find_sec(crctab).map(|c| l.addr[c]);
        for k in 0..n {
            let at = base + k * KERNEL_SYMBOL_SIZE;
            let rel = |off: u64| -> Option<u64> {
                let v = kernel.memory.read_u32(at + off).ok()? as i32;
                Some((at + off).wrapping_add(v as i64 as u64))
            };
            let (Some(value), Some(name_at)) = (rel(0), rel(4)) else {
                return Err(SysError::new("find_module_sections", Errno::ENOEXEC));
            };
            let name = kernel
                .memory
                .read_cstr(name_at, 4096)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let Ok(name) = name else {
                return Err(SysError::new("find_module_sections", Errno::ENOEXEC));
            };
            let ns_off = kernel.memory.read_u32(at + 8).unwrap_or(0);
            let namespace = if ns_off == 0 {
                None
            } else {
                rel(8)
                    .and_then(|a| kernel.memory.read_cstr(a, 4096).ok())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .filter(|s| !s.is_empty())
            };
            let crc = crcs.and_then(|c| kernel.memory.read_u32(c + 4 * k).ok());
            l.module.exports.insert(
                name,
                ModuleExport {
                    value,
                    gpl_only: gpl,
                    namespace,
                    crc,
                },
            );
        }
    }
    Ok(())
}

/// Whether the module has `init` and `exit`: the relocated pointers in its `struct module`.
fn read_init_exit(kernel: &Kernel, l: &mut Loading) {
    let this = l.addr.get(l.info.index.this_module).copied().unwrap_or(0);
    let layout = kernel.profile.this_module();
    l.module.has_init = kernel
        .memory
        .read_u64(this + layout.init_offset as u64)
        .is_ok_and(|v| v != 0);
    l.module.has_exit = layout.exit_offset.is_some_and(|o| {
        kernel
            .memory
            .read_u64(this + o as u64)
            .is_ok_and(|v| v != 0)
    });
}

/// Models `complete_formation()`: duplicate exports, then the module becomes visible, COMING.
fn complete_formation(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    symbols::verify_exported_symbols(kernel, &l.module).map_err(fail("verify_exported_symbols"))?;
    l.module.state = ModuleState::Coming;
    kernel.index_exports(&l.module);
    kernel.modules.insert(0, l.module.clone());
    Ok(())
}

/// Models `mod_sysfs_setup()`'s first failure: a built-in module of that name already has a
/// `/sys/module/<name>` directory.
fn mod_sysfs_setup(kernel: &mut Kernel, l: &Loading) -> SysResult {
    if kernel.profile.has_builtin_sysfs_dir(&l.module.name) {
        kernel
            .log
            .err(format!("{}: module is already loaded", l.module.name));
        return Err(SysError::new("mod_sysfs_init", Errno::EINVAL));
    }
    // kobject_init_and_add(&mod->mkobj.kobj, ..., "%s", mod->name): kobject_add_internal()
    // refuses an empty name with a WARN (recorded: odd_names.jsonl).
    if l.module.raw_name.is_empty() {
        let line = match kernel.version() {
            KernelVersion::V6_1 => 210,
            KernelVersion::V6_12 => 219,
        };
        kernel.warn(
            "kobject: ((____ptrval____)): attempted to be registered with empty name!",
            &format!("lib/kobject.c:{line} kobject_add_internal"),
        );
        return Err(SysError::new("mod_sysfs_init", Errno::EINVAL));
    }
    Ok(())
}

/// Take a formed module out of the list again (the error paths after `complete_formation`).
fn remove_formed(kernel: &mut Kernel, name: &str) -> Option<Module> {
    let i = kernel.modules.iter().position(|m| m.name == name)?;
    let m = kernel.modules.remove(i);
    kernel.unindex_exports(&m);
    Some(m)
}

/// The first half of `do_init_module()`'s failure path: the module is GOING (`Unloading` in
/// `/proc/modules`), still listed; what the load holds now belongs to it.
pub(crate) fn fail_init(kernel: &mut Kernel, l: &mut Loading) {
    if let Some(m) = kernel
        .modules
        .iter_mut()
        .find(|m| m.name == l.module.name && m.state == ModuleState::Coming)
    {
        m.state = ModuleState::Going;
        // module_put(): the reference held during init.
        m.refcnt -= 1;
    }
    l.module.regions.clear();
    l.module.uses.clear();
}

/// The second half: `free_module()` takes the GOING module `name` out of the list and frees it.
pub(crate) fn free_going(kernel: &mut Kernel, name: &str) {
    let Some(i) = kernel
        .modules
        .iter()
        .position(|m| m.name == name && m.state == ModuleState::Going)
    else {
        return;
    };
    let m = kernel.modules.remove(i);
    kernel.unindex_exports(&m);
    kernel.free_module(m);
}

/// Whether a load's init, returning `ret`, fails.
pub(crate) fn init_fails(l: &Loading, ret: i32) -> bool {
    l.module.has_init && ret < 0
}

/// Models `do_init_module()` once init has returned `ret` (ignored for a module without init):
/// a negative result unloads the module and is returned; a positive one warns (with a stack
/// dump) and counts as success; then LIVE, the init reference is dropped and the init regions
/// are freed.
pub(crate) fn finish_init(kernel: &mut Kernel, l: &mut Loading, ret: i32) -> SysResult {
    let name = l.module.name.clone();
    let ret = if l.module.has_init { ret } else { 0 };
    if ret < 0 {
        fail_init(kernel, l);
        free_going(kernel, &name);
        return Err(SysError::new("do_init_module", Errno(-ret)));
    }
    if kernel.tracing() {
        let ev = {
            TraceEvent::new(
                "do_init_module",
                "kernel/module/main.c",
                if l.module.has_init {
                    "the module's init function ran"
                } else {
                    "the module has no init function"
                },
            )
            .with("init returned", ret)
        };
        kernel.push_trace(ev);
    }
    if ret > 0 {
        kernel.log.warn(format!(
            "do_init_module: '{name}'->init suspiciously returned {ret}, it should follow 0/-E convention\ndo_init_module: loading module anyway..."
        ));
        dump_stack(kernel);
    }
    let version = kernel.version();
    let init_types: &[MemType] = match version {
        KernelVersion::V6_1 => &[MemType::InitText],
        KernelVersion::V6_12 => &[MemType::InitText, MemType::InitData, MemType::InitRodata],
    };
    // What the module's size loses is the init layout's size, not the allocation's (a
    // placement can make a region larger than its layout).
    let mut freed = 0u64;
    // A region is there when it has a size (a placement may put one at address 0).
    let init_bases: Vec<u64> = init_types
        .iter()
        .filter(|t| l.region_size[**t as usize] != 0)
        .map(|t| l.region[*t as usize])
        .collect();
    for t in init_types {
        if l.region_size[*t as usize] != 0 {
            kernel.memory.free(l.region[*t as usize]);
            freed = freed.saturating_add(l.layout_size[*t as usize]);
        }
    }
    if let Some(m) = kernel.modules.iter_mut().find(|m| m.name == name) {
        m.state = ModuleState::Live;
        m.refcnt -= 1;
        m.size = m.size.saturating_sub(freed);
        m.regions.retain(|b| !init_bases.contains(b));
    }
    l.module.regions.clear();
    Ok(())
}

/// `dump_stack()`: the simulator prints the header line and a one-line trace; comparisons
/// collapse any stack dump into one line.
pub(crate) fn dump_stack(kernel: &mut Kernel) {
    let tainted = kernel.taint.mask();
    kernel.log.warn(format!(
        "CPU: 0 PID: 1 Comm: modsim Tainted: {tainted:#x} {}",
        kernel.profile.release()
    ));
    kernel.log.warn("Call Trace:");
    kernel.log.warn(" <simulated>");
}

/// Undo what a failed load allocated: memory regions (a formed module was already removed).
fn free_loading(kernel: &mut Kernel, l: &Loading) {
    if kernel
        .modules
        .iter()
        .any(|m| m.name == l.module.name && m.state == ModuleState::Coming)
    {
        let _ = remove_formed(kernel, &l.module.name);
    }
    for base in &l.module.regions {
        kernel.memory.free(*base);
    }
    // Use links taken by simplify_symbols() are dropped with the module.
    for target in &l.module.uses {
        if let Some(t) = kernel.modules.iter_mut().find(|t| &t.name == target) {
            t.users.retain(|u| u != &l.module.name);
            t.refcnt -= 1;
        }
    }
}
