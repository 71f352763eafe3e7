//! ELF validity checks: `elf_validity_check()` + `setup_load_info()` (6.1) and
//! `elf_validity_cache_copy()` (6.12), then `rewrite_section_headers()`, all in
//! kernel/module/main.c.
//!
//! Every failure is `ENOEXEC` with the kernel's log line. Order of the load path around these
//! steps (both versions): `module_sig_check()` → the ELF checks → blacklist →
//! [`rewrite_section_headers`]; [`early_load`] runs the first two.

use crate::errno::Errno;
use crate::image::{
    ELF_HEADER_SIZE, ElfHeader, Indices, LoadInfo, ModInfo, SECTION_HEADER_SIZE, Section, cstr_at,
    decode_bytes, parse_versions,
};
use crate::load::signing::{SigSettings, module_sig_check};
use crate::log::KernelLog;
use crate::profile::{Arch, KernelVersion, Profile};

/// `MODULE_INIT_IGNORE_MODVERSIONS` (`include/uapi/linux/module.h`).
pub const MODULE_INIT_IGNORE_MODVERSIONS: u32 = 1;
/// `MODULE_INIT_IGNORE_VERMAGIC`.
pub const MODULE_INIT_IGNORE_VERMAGIC: u32 = 2;
/// `MODULE_INIT_COMPRESSED_FILE`.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

const ET_REL: u16 = 1;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const SHT_NULL: u32 = 0;
const SHT_SYMTAB: u32 = 2;
const SHT_NOBITS: u32 = 8;
const SHF_ALLOC: u64 = 2;
/// What the kernel prints when it has no module name yet.
const NO_NAME: &str = "(missing .modinfo section or name field)";

/// The result of the header and section-table checks shared by both versions.
struct Checked {
    header: ElfHeader,
    sections: Vec<Section>,
    secstrings_offset: u64,
    strsize: u64,
}

/// Runs the early steps of `load_module()` on a (decompressed) image: `module_sig_check()`
/// (`load::signing`), then the profile's ELF checks ([`check_elf`]).
///
/// Fails with the errno of the first failing step, its log lines in `log`.
pub fn early_load(
    profile: &Profile,
    image: Vec<u8>,
    flags: u32,
    settings: &SigSettings,
    log: &mut KernelLog,
) -> Result<LoadInfo, Errno> {
    let sig = module_sig_check(profile, &image, flags, settings, log)?;
    check_elf(profile, image, sig.len, flags, sig.sig_ok, log)
}

/// The ELF checks of the profile's kernel on the first `len` bytes of `image`: 6.1
/// [`elf_validity_check`] then [`setup_load_info`]; 6.12 [`elf_validity_cache_copy`].
/// `sig_ok` is what `module_sig_check()` decided; it is stored in the result.
///
/// Fails with `ENOEXEC` and the kernel's log line.
pub fn check_elf(
    profile: &Profile,
    mut image: Vec<u8>,
    len: usize,
    flags: u32,
    sig_ok: bool,
    log: &mut KernelLog,
) -> Result<LoadInfo, Errno> {
    image.truncate(len);
    let mut info = match profile.version() {
        KernelVersion::V6_1 => {
            let checked = elf_validity_check(profile, &image, log)?;
            setup_load_info(profile, image, checked, flags, log)?
        }
        KernelVersion::V6_12 => elf_validity_cache_copy(profile, image, flags, log)?,
    };
    info.sig_ok = sig_ok;
    Ok(info)
}

/// Models `elf_validity_check()` in kernel/module/main.c (6.1): header, section header table,
/// section name table, section 0, then every section's offset and (for `SHF_ALLOC`) name.
fn elf_validity_check(
    profile: &Profile,
    image: &[u8],
    log: &mut KernelLog,
) -> Result<Checked, Errno> {
    let checked = check_header_and_table(profile, image, log)?;
    for s in checked.sections.iter().skip(1) {
        check_section(&checked, s, image.len(), log)?;
    }
    Ok(checked)
}

/// The checks of `elf_validity_check()` / `elf_validity_cache_copy()` up to the section loop,
/// in the kernel's order.
fn check_header_and_table(
    profile: &Profile,
    image: &[u8],
    log: &mut KernelLog,
) -> Result<Checked, Errno> {
    let len = image.len();
    if len < ELF_HEADER_SIZE {
        log.err(format!("Invalid ELF header len {len}"));
        return Err(Errno::ENOEXEC);
    }
    let header = ElfHeader::parse(image).map_err(|_| Errno::ENOEXEC)?;
    if header.ident[..4] != *b"\x7fELF" {
        log.err("Invalid ELF header magic: != \x7fELF");
        return Err(Errno::ENOEXEC);
    }
    if header.e_type != ET_REL {
        log.err(format!(
            "Invalid ELF header type: {} != {ET_REL}",
            header.e_type
        ));
        return Err(Errno::ENOEXEC);
    }
    if !elf_check_arch(profile, &header) {
        log.err(format!(
            "Invalid architecture in ELF header: {}",
            header.e_machine
        ));
        return Err(Errno::ENOEXEC);
    }
    if profile.version() == KernelVersion::V6_12 && !module_elf_check_arch(profile, &header) {
        log.err(format!(
            "Invalid module architecture in ELF header: {}",
            header.e_machine
        ));
        return Err(Errno::ENOEXEC);
    }
    if usize::from(header.e_shentsize) != SECTION_HEADER_SIZE {
        log.err("Invalid ELF section header size");
        return Err(Errno::ENOEXEC);
    }
    let table = u64::from(header.e_shnum) * SECTION_HEADER_SIZE as u64;
    if header.e_shoff >= len as u64 || table > len as u64 - header.e_shoff {
        log.err("Invalid ELF section header overflow");
        return Err(Errno::ENOEXEC);
    }
    let mut sections =
        Section::read_table(image, header.e_shoff, header.e_shnum).map_err(|_| Errno::ENOEXEC)?;
    let (shstrndx, shnum) = (header.e_shstrndx, header.e_shnum);
    if shstrndx == 0 || shstrndx >= shnum {
        log.err(format!(
            "Invalid ELF section name index: {shstrndx} || e_shstrndx ({shstrndx}) >= e_shnum ({shnum})"
        ));
        return Err(Errno::ENOEXEC);
    }
    let strhdr = sections
        .get(usize::from(shstrndx))
        .ok_or(Errno::ENOEXEC)?
        .clone();
    if validate_section_offset(&strhdr, len).is_err() {
        log.err(format!("Invalid ELF section hdr(type {})", strhdr.sh_type));
        return Err(Errno::ENOEXEC);
    }
    if strhdr.size == 0 {
        log.err("empty section name table");
        return Err(Errno::ENOEXEC);
    }
    let last = strhdr.offset + strhdr.size - 1; // in bounds: validated above
    if image.get(usize::try_from(last).unwrap_or(usize::MAX)) != Some(&0) {
        log.err("ELF Spec violation: section name table isn't null terminated");
        return Err(Errno::ENOEXEC);
    }
    let s0 = sections.first().ok_or(Errno::ENOEXEC)?;
    if s0.sh_type != SHT_NULL || s0.size != 0 || s0.addr != 0 {
        log.err(format!(
            "ELF Spec violation: section 0 type({})!=SH_NULL or non-zero len or addr",
            s0.sh_type as i32
        ));
        return Err(Errno::ENOEXEC);
    }
    // Names as the kernel reads them (`secstrings + sh_name`); only those of SHF_ALLOC
    // sections are checked to lie in the table (below), the others are read wherever they point.
    for s in &mut sections {
        s.name = decode_bytes(Section::read_name(image, strhdr.offset, s.sh_name));
    }
    Ok(Checked {
        header,
        sections,
        secstrings_offset: strhdr.offset,
        strsize: strhdr.size,
    })
}

/// One iteration of the section loop of `elf_validity_check()` (and of
/// `elf_validity_cache_copy()`, which also counts names between the two checks: see there).
/// `Ok(false)` for `SHT_NULL`/`SHT_NOBITS` sections, which the loop skips.
fn check_section(
    checked: &Checked,
    s: &Section,
    len: usize,
    log: &mut KernelLog,
) -> Result<bool, Errno> {
    if !check_section_offset(checked, s, len, log)? {
        return Ok(false);
    }
    check_section_name(checked, s, log)?;
    Ok(true)
}

/// The first half of a section loop iteration: type switch, `sh_link` of a symbol table,
/// `validate_section_offset()`.
fn check_section_offset(
    checked: &Checked,
    s: &Section,
    len: usize,
    log: &mut KernelLog,
) -> Result<bool, Errno> {
    let shnum = u32::from(checked.header.e_shnum);
    match s.sh_type {
        SHT_NULL | SHT_NOBITS => return Ok(false),
        SHT_SYMTAB if s.link == 0 || s.link >= shnum => {
            log.err(format!(
                "Invalid ELF sh_link!=SHN_UNDEF({}) or (sh_link({}) >= hdr->e_shnum({shnum})",
                s.link as i32, s.link as i32
            ));
            return Err(Errno::ENOEXEC);
        }
        _ => {}
    }
    if validate_section_offset(s, len).is_err() {
        log.err(format!(
            "Invalid ELF section in module (section {} type {})",
            s.index, s.sh_type
        ));
        return Err(Errno::ENOEXEC);
    }
    Ok(true)
}

/// The second half: the name of an `SHF_ALLOC` section must start inside the name table.
fn check_section_name(checked: &Checked, s: &Section, log: &mut KernelLog) -> Result<(), Errno> {
    if s.flags & SHF_ALLOC != 0 && u64::from(s.sh_name) >= checked.strsize {
        log.err(format!(
            "Invalid ELF section name in module (section {} type {})",
            s.index, s.sh_type
        ));
        return Err(Errno::ENOEXEC);
    }
    Ok(())
}

/// Models `validate_section_offset()` in kernel/module/main.c: `sh_offset + sh_size` must not
/// wrap nor pass `info->len`.
fn validate_section_offset(s: &Section, len: usize) -> Result<(), Errno> {
    match s.end() {
        Some(end) if end <= len as u64 => Ok(()),
        _ => Err(Errno::ENOEXEC),
    }
}

/// Models `elf_check_arch()` of the profile's architecture (`arch/*/include/asm/elf.h`):
/// `e_machine` must be `EM_X86_64` (62) on x86_64, `EM_AARCH64` (183) on arm64. Neither
/// kernel looks at `EI_CLASS`/`EI_DATA` here.
fn elf_check_arch(profile: &Profile, header: &ElfHeader) -> bool {
    header.e_machine
        == match profile.arch() {
            Arch::X86_64 => EM_X86_64,
            Arch::Aarch64 => EM_AARCH64,
        }
}

/// Models `module_elf_check_arch()` (6.12, kernel/module/main.c): the weak default, `true`;
/// neither x86 nor arm64 overrides it.
fn module_elf_check_arch(_profile: &Profile, _header: &ElfHeader) -> bool {
    true
}

/// The kernel's `find_sec()` over the section headers: first `SHF_ALLOC` section named `name`,
/// 0 when none.
fn find_sec(sections: &[Section], name: &str) -> usize {
    sections
        .iter()
        .skip(1)
        .find(|s| s.flags & SHF_ALLOC != 0 && s.name == name)
        .map_or(0, |s| s.index)
}

/// `get_modinfo()` needs `.modinfo` read as the kernel reads it: at `sh_offset`, `sh_size`
/// bytes (section 0, offset and size 0, when there is none).
fn read_modinfo(image: &[u8], sections: &[Section], index: usize) -> ModInfo {
    match sections.get(index) {
        Some(s) if index != 0 => ModInfo::parse(image, s.offset, s.size),
        _ => ModInfo::empty(),
    }
}

/// `info->mod->name`: the `name` field of the on-disk `struct module`.
fn on_disk_name(profile: &Profile, image: &[u8], this_module: &Section) -> String {
    let off = this_module
        .offset
        .saturating_add(profile.this_module().name_offset as u64);
    cstr_at(image, off).map(decode_bytes).unwrap_or_default()
}

/// Models `setup_load_info()` in kernel/module/main.c (6.1): `.modinfo` (ALLOC, first match)
/// and its `name=`, the first symbol table, `.gnu.linkonce.this_module` (ALLOC, first match),
/// the name fallback, `__versions` and `.data..percpu`.
fn setup_load_info(
    profile: &Profile,
    image: Vec<u8>,
    checked: Checked,
    flags: u32,
    log: &mut KernelLog,
) -> Result<LoadInfo, Errno> {
    let sections = checked.sections;
    let mut index = Indices {
        info: find_sec(&sections, ".modinfo"),
        ..Indices::default()
    };
    let modinfo = read_modinfo(&image, &sections, index.info);
    let mut name = modinfo.get("name").map(str::to_owned);

    if let Some(s) = sections.iter().skip(1).find(|s| s.sh_type == SHT_SYMTAB) {
        index.sym = s.index;
        index.str = s.link as usize;
    }
    if index.sym == 0 {
        log.warn(format!(
            "{}: module has no symbols (stripped?)",
            name.as_deref().unwrap_or(NO_NAME)
        ));
        return Err(Errno::ENOEXEC);
    }
    index.this_module = find_sec(&sections, ".gnu.linkonce.this_module");
    let Some(this_module) = sections
        .get(index.this_module)
        .filter(|_| index.this_module != 0)
    else {
        log.warn(format!(
            "{}: No module found in object",
            name.as_deref().unwrap_or(NO_NAME)
        ));
        return Err(Errno::ENOEXEC);
    };
    if name.is_none() {
        name = Some(on_disk_name(profile, &image, this_module));
    }
    finish(
        image,
        checked.header,
        sections,
        checked.secstrings_offset,
        index,
        name.unwrap_or_default(),
        modinfo,
        flags,
    )
}

/// The common end of `setup_load_info()` and `elf_validity_cache_copy()`: `__versions`
/// (unless `MODULE_INIT_IGNORE_MODVERSIONS`) and `.data..percpu`, both by `find_sec()`.
#[allow(clippy::too_many_arguments)]
fn finish(
    image: Vec<u8>,
    header: ElfHeader,
    sections: Vec<Section>,
    secstrings_offset: u64,
    mut index: Indices,
    name: String,
    modinfo: ModInfo,
    flags: u32,
) -> Result<LoadInfo, Errno> {
    index.vers = if flags & MODULE_INIT_IGNORE_MODVERSIONS != 0 {
        0 // "Pretend no __versions section!"
    } else {
        find_sec(&sections, "__versions")
    };
    index.pcpu = find_sec(&sections, ".data..percpu");
    let versions = match sections.get(index.vers) {
        Some(s) if index.vers != 0 => parse_versions(&image, s.offset, s.size).unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(LoadInfo {
        len: image.len(),
        image,
        e_machine: header.e_machine,
        header,
        sections,
        secstrings_offset,
        index,
        name,
        modinfo,
        versions,
        sig_ok: false,
    })
}

/// Models `elf_validity_cache_copy()` in kernel/module/main.c (6.12): the checks of 6.1's
/// `elf_validity_check()` (plus `module_elf_check_arch()`), counting while it loops the
/// sections named `.gnu.linkonce.this_module` and `.modinfo` (whatever their flags) and the
/// symbol tables; then at most one `.modinfo`, exactly one symbol table, exactly one
/// `.gnu.linkonce.this_module`, which must be `SHF_ALLOC` and `sizeof(struct module)` long.
fn elf_validity_cache_copy(
    profile: &Profile,
    image: Vec<u8>,
    flags: u32,
    log: &mut KernelLog,
) -> Result<LoadInfo, Errno> {
    let checked = check_header_and_table(profile, &image, log)?;
    let (mut num_mod, mut mod_idx) = (0usize, 0usize);
    let (mut num_info, mut info_idx) = (0usize, 0usize);
    let (mut num_sym, mut sym_idx) = (0usize, 0usize);
    for s in checked.sections.iter().skip(1) {
        if s.sh_type == SHT_SYMTAB && s.link != 0 && s.link < u32::from(checked.header.e_shnum) {
            num_sym += 1;
            sym_idx = s.index;
        }
        if !check_section_offset(&checked, s, image.len(), log)? {
            continue;
        }
        if s.name == ".gnu.linkonce.this_module" {
            num_mod += 1;
            mod_idx = s.index;
        } else if s.name == ".modinfo" {
            num_info += 1;
            info_idx = s.index;
        }
        check_section_name(&checked, s, log)?;
    }

    let mut index = Indices::default();
    let mut modinfo = ModInfo::empty();
    let mut name = None;
    if num_info > 1 {
        log.err("Only one .modinfo section must exist.");
        return Err(Errno::ENOEXEC);
    } else if num_info == 1 {
        index.info = info_idx;
        modinfo = read_modinfo(&image, &checked.sections, info_idx);
        name = modinfo.get("name").map(str::to_owned);
    }
    let shown = |name: &Option<String>| name.clone().unwrap_or_else(|| NO_NAME.to_owned());

    if num_sym != 1 {
        log.warn(format!(
            "{}: module has no symbols (stripped?)",
            shown(&name)
        ));
        return Err(Errno::ENOEXEC);
    }
    index.sym = sym_idx;
    index.str = checked.sections.get(sym_idx).map_or(0, |s| s.link as usize);

    if num_mod != 1 {
        log.err(format!(
            "module {}: Only one .gnu.linkonce.this_module section must exist.",
            shown(&name)
        ));
        return Err(Errno::ENOEXEC);
    }
    let this_module = checked.sections.get(mod_idx).ok_or(Errno::ENOEXEC)?.clone();
    if this_module.sh_type == SHT_NOBITS {
        log.err(format!(
            "module {}: .gnu.linkonce.this_module section must have a size set",
            shown(&name)
        ));
        return Err(Errno::ENOEXEC);
    }
    if this_module.flags & SHF_ALLOC == 0 {
        log.err(format!(
            "module {}: .gnu.linkonce.this_module must occupy memory during process execution",
            shown(&name)
        ));
        return Err(Errno::ENOEXEC);
    }
    if this_module.size != profile.sizeof_struct_module() as u64 {
        log.err(format!(
            "module {}: .gnu.linkonce.this_module section size must match the kernel's built struct module size at run time",
            shown(&name)
        ));
        return Err(Errno::ENOEXEC);
    }
    index.this_module = mod_idx;
    let name = name.unwrap_or_else(|| on_disk_name(profile, &image, &this_module));
    finish(
        image,
        checked.header,
        checked.sections,
        checked.secstrings_offset,
        index,
        name,
        modinfo,
        flags,
    )
}

/// Models `rewrite_section_headers()` in kernel/module/main.c (6.1, 6.12): every section's
/// `sh_addr` becomes its address in the temporary image (`temp_base + sh_offset`; section 0
/// gets 0), and `SHF_ALLOC` is cleared on `__versions` and `.modinfo` (on section 0 when
/// either is absent, as the kernel does), so that they are never copied to module memory.
/// Cannot fail.
pub fn rewrite_section_headers(info: &mut LoadInfo, temp_base: u64) {
    for s in info.sections.iter_mut() {
        s.addr = if s.index == 0 {
            0
        } else {
            temp_base.wrapping_add(s.offset)
        };
    }
    for i in [info.index.vers, info.index.info] {
        if let Some(s) = info.sections.get_mut(i) {
            s.flags &= !SHF_ALLOC;
        }
    }
}
