//! ELF validity checks: `elf_validity_check()` + `setup_load_info()` (6.1) and
//! `elf_validity_cache_copy()` (6.12), then `rewrite_section_headers()`, all in
//! kernel/module/main.c.
//!
//! Every failure is `ENOEXEC` with the kernel's log line. Order of the load path around these
//! steps (both versions): `module_sig_check()` → the ELF checks → blacklist →
//! [`rewrite_section_headers`]; [`early_load`] runs the first two.
#![warn(missing_docs)]

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
/// `elf_validity_check()` then `setup_load_info()`; 6.12 `elf_validity_cache_copy()`.
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
        image: image.into(),
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

#[cfg(test)]
pub(crate) mod tests {
    //! The early load steps against the real kernels: the fixtures and their broken variants
    //! (tests/fixtures/ko/<kernel>/), the recorded results (tests/conformance/recorded/), and
    //! the Debian modules of the four kernels.

    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use super::*;
    use crate::load::decompress::module_decompress;

    /// The four kernels.
    pub(crate) const KERNELS: [&str; 4] = [
        "debian-6.1-amd64",
        "debian-6.1-arm64",
        "debian-6.12-amd64",
        "debian-6.12-arm64",
    ];

    /// Decompression limit of the tests.
    const LIMIT: usize = 64 << 20;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    pub(crate) fn fixture(kernel: &str, file: &str) -> Vec<u8> {
        let p = repo().join("tests/fixtures/ko").join(kernel).join(file);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    pub(crate) fn profile(kernel: &str) -> &'static Profile {
        Profile::builtin(kernel).unwrap()
    }

    /// One `init_module`/`finit_module` step through the model's early steps: the entry checks
    /// that decide before them (init_module: `len < 64` is ENOEXEC; finit_module: flags outside
    /// 1|2|4 are EINVAL, an empty file is EINVAL), decompression, `module_sig_check()`, the ELF
    /// checks.
    pub(crate) fn early_step(
        kernel: &str,
        op: &str,
        file: &str,
        flags: u32,
        len: Option<usize>,
        sig_enforce: bool,
    ) -> (Result<LoadInfo, Errno>, Vec<String>) {
        let p = profile(kernel);
        let mut log = KernelLog::new();
        let mut bytes = fixture(kernel, file);
        let settings = SigSettings {
            sig_enforce,
            ..SigSettings::default()
        };
        let r = (|| {
            if op == "init_module" {
                if let Some(n) = len {
                    bytes.resize(n, 0);
                }
                if bytes.len() < ELF_HEADER_SIZE {
                    return Err(Errno::ENOEXEC);
                }
                early_load(p, bytes, 0, &settings, &mut log)
            } else {
                if flags & !7 != 0 || bytes.is_empty() {
                    return Err(Errno::EINVAL);
                }
                if flags & MODULE_INIT_COMPRESSED_FILE != 0 {
                    bytes = module_decompress(p, &bytes, LIMIT, &mut log)?;
                }
                early_load(p, bytes, flags, &settings, &mut log)
            }
        })();
        (r, log.texts())
    }

    /// What the real kernels did (tests/conformance/recorded/<kernel>/{elf,signature,
    /// sig_enforce,finit}.jsonl), per kernel: bad_secoff's section index and the two
    /// architecture numbers differ.
    #[test]
    fn broken_variants_give_the_recorded_errno_and_log_lines() {
        for kernel in KERNELS {
            let amd64 = kernel.ends_with("amd64");
            let v612 = kernel.contains("6.12");
            let secoff = if kernel == "debian-6.1-amd64" { 3 } else { 1 };
            let (machine, other) = if amd64 { (3, 183) } else { (40, 62) };
            let magic = "Invalid ELF header magic: != \x7fELF".to_owned();
            let overflow = "Invalid ELF section header overflow".to_owned();
            let not_pkcs7 = "module: not signed with expected PKCS#7 message".to_owned();
            let params = "module: PKCS#7 signature info has unexpected non-zero params".to_owned();
            let unsigned = "Loading of unsigned module is rejected".to_owned();
            #[allow(clippy::type_complexity)]
            let cases: Vec<(&str, &str, u32, bool, Result<(), Errno>, Vec<String>)> = vec![
                (
                    "finit_module",
                    "bad_magic.ko",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![magic.clone()],
                ),
                (
                    "init_module",
                    "bad_truncated.ko",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![overflow.clone()],
                ),
                (
                    "finit_module",
                    "bad_shoff.ko",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![overflow.clone()],
                ),
                (
                    "finit_module",
                    "bad_secoff.ko",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![format!(
                        "Invalid ELF section in module (section {secoff} type 1)"
                    )],
                ),
                (
                    "init_module",
                    "bad_machine.ko",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![format!("Invalid architecture in ELF header: {machine}")],
                ),
                (
                    "finit_module",
                    "bad_otherarch.ko",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![format!("Invalid architecture in ELF header: {other}")],
                ),
                (
                    "init_module",
                    "mp_lib.ko.xz",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![magic.clone()],
                ),
                (
                    "finit_module",
                    "mp_lib.ko.gz",
                    0,
                    false,
                    Err(Errno::ENOEXEC),
                    vec![magic.clone()],
                ),
                (
                    "finit_module",
                    "bad_sig_garbage.ko",
                    0,
                    false,
                    Err(Errno::EBADMSG),
                    vec![],
                ),
                (
                    "init_module",
                    "bad_sig_params.ko",
                    0,
                    false,
                    Err(Errno::EBADMSG),
                    vec![params],
                ),
                (
                    "finit_module",
                    "bad_sig_type.ko",
                    0,
                    false,
                    Ok(()),
                    vec![not_pkcs7.clone()],
                ),
                (
                    "init_module",
                    "bad_sig_len.ko",
                    0,
                    false,
                    Err(Errno::EBADMSG),
                    vec![],
                ),
                (
                    "finit_module",
                    "bad_sig_garbage.ko",
                    1,
                    false,
                    Ok(()),
                    vec![],
                ),
                (
                    "finit_module",
                    "bad_sig_garbage.ko",
                    2,
                    false,
                    Ok(()),
                    vec![],
                ),
                ("finit_module", "mp_lib.ko", 0, false, Ok(()), vec![]),
                (
                    "finit_module",
                    "mp_lib.ko",
                    0,
                    true,
                    Err(Errno::EKEYREJECTED),
                    vec![unsigned.clone()],
                ),
                (
                    "init_module",
                    "mp_lib.ko",
                    0,
                    true,
                    Err(Errno::EKEYREJECTED),
                    vec![unsigned.clone()],
                ),
                (
                    "finit_module",
                    "bad_sig_type.ko",
                    0,
                    true,
                    Err(Errno::EKEYREJECTED),
                    vec![
                        not_pkcs7,
                        "Loading of module with unsupported crypto is rejected".into(),
                    ],
                ),
                (
                    "finit_module",
                    "bad_sig_garbage.ko",
                    0,
                    true,
                    Err(Errno::EBADMSG),
                    vec![],
                ),
                (
                    "finit_module",
                    "mp_lib.ko",
                    2,
                    true,
                    Err(Errno::EKEYREJECTED),
                    vec![unsigned],
                ),
                (
                    "finit_module",
                    "mp_lib.ko",
                    4,
                    false,
                    if v612 {
                        Err(Errno::EINVAL)
                    } else {
                        Err(Errno::EOPNOTSUPP)
                    },
                    if v612 {
                        vec!["not an xz compressed module".into()]
                    } else {
                        vec![]
                    },
                ),
                (
                    "finit_module",
                    "mp_lib.ko.zst",
                    4,
                    false,
                    if v612 {
                        Err(Errno::EINVAL)
                    } else {
                        Err(Errno::EOPNOTSUPP)
                    },
                    if v612 {
                        vec!["not an xz compressed module".into()]
                    } else {
                        vec![]
                    },
                ),
                (
                    "finit_module",
                    "mp_lib.ko.xz",
                    4,
                    false,
                    if v612 { Ok(()) } else { Err(Errno::EOPNOTSUPP) },
                    vec![],
                ),
            ];
            for (op, file, flags, enforce, want, lines) in cases {
                let (r, log) = early_step(kernel, op, file, flags, None, enforce);
                let what = format!("{kernel} {op} {file} flags {flags} enforce {enforce}");
                assert_eq!(r.as_ref().map(|_| ()).map_err(|e| *e), want, "{what}");
                assert_eq!(log, lines, "{what}");
                if let Ok(info) = r {
                    assert_eq!(info.name, "mp_lib", "{what}");
                    assert!(!info.sig_ok, "{what}");
                }
            }
        }
    }

    /// Where the recordings are: `$MODSIM_RECORDED`, else tests/conformance/recorded.
    fn recorded_dir() -> PathBuf {
        std::env::var_os("MODSIM_RECORDED")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("tests/conformance/recorded"))
    }

    /// Every `init_module`/`finit_module` step of every recorded scenario whose outcome the
    /// early steps can decide: where the model fails, the kernel failed with the same errno and
    /// exactly the same log lines; where it passes, the kernel's log starts with the model's
    /// lines. Steps the model cannot judge are skipped: after a capability drop or
    /// `modules_disabled`, other fds than read-only, missing files.
    #[test]
    fn early_steps_match_every_recorded_load() {
        let dir = recorded_dir();
        if !dir.is_dir() {
            eprintln!("no recordings at {} (set MODSIM_RECORDED)", dir.display());
            return;
        }
        let scen_dir = repo().join("tests/conformance/scenarios");
        let (mut failures_checked, mut passes_checked) = (0, 0);
        for kernel in KERNELS {
            let kdir = dir.join(kernel);
            let Ok(rd) = std::fs::read_dir(&kdir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for rec in files {
                let name = rec.file_name().unwrap().to_string_lossy().into_owned();
                let Ok(scen) = std::fs::read_to_string(scen_dir.join(&name)) else {
                    continue;
                };
                let steps: Vec<serde_json::Value> = scen
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                let text = std::fs::read_to_string(&rec).unwrap();
                let mut enforce = false;
                let mut blind = false;
                for line in text.lines() {
                    let r: serde_json::Value = serde_json::from_str(line).unwrap();
                    let Some(n) = r["step"].as_u64() else {
                        continue;
                    };
                    let step = &steps[n as usize - 1];
                    let op = step["op"].as_str().unwrap();
                    match op {
                        "drop_capability" => blind = true,
                        "write" => {
                            let path = step["path"].as_str().unwrap();
                            let on = step["value"].as_str().unwrap().trim() == "1";
                            if path.ends_with("sig_enforce") && r["errno"].is_null() {
                                enforce |= on;
                            }
                            if path.ends_with("modules_disabled") && on {
                                blind = true;
                            }
                        }
                        "init_module" | "finit_module" if !blind => {
                            let file = step["file"].as_str().unwrap();
                            if !step["fd"].is_null() && step["fd"] != "rdonly" {
                                continue;
                            }
                            if !repo()
                                .join("tests/fixtures/ko")
                                .join(kernel)
                                .join(file)
                                .is_file()
                            {
                                continue;
                            }
                            let flags = step["flags"].as_u64().unwrap_or(0) as u32;
                            let len = step["len"].as_u64().map(|l| l as usize);
                            let (got, log) = early_step(kernel, op, file, flags, len, enforce);
                            let want_errno = r["errno"].as_str();
                            let want_log: Vec<String> = r["dmesg"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap().to_owned())
                                .collect();
                            let what = format!("{kernel} {name} step {n}: {step}");
                            match got {
                                Err(e) => {
                                    assert_eq!(Some(e.name().as_str()), want_errno, "{what}");
                                    assert_eq!(log, want_log, "{what}");
                                    failures_checked += 1;
                                }
                                Ok(_) => {
                                    assert!(
                                        want_log.starts_with(&log),
                                        "{what}: model {log:?}, kernel {want_log:?}"
                                    );
                                    passes_checked += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        eprintln!("checked {failures_checked} refused and {passes_checked} accepted loads");
        assert!(failures_checked + passes_checked > 0);
    }

    /// Where the Debian module trees are: `$MODSIM_LAB_ROOT`, else target/lab/root.
    fn lab_root() -> PathBuf {
        std::env::var_os("MODSIM_LAB_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/lab/root"))
    }

    fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                module_files(&p, out);
            } else if p.to_string_lossy().ends_with(".ko")
                || p.to_string_lossy().ends_with(".ko.xz")
            {
                out.push(p);
            }
        }
    }

    /// Runs every `stride`-th Debian module of each kernel through decompression (6.12) and
    /// the early steps: each passes with `sig_ok`, without a log line, under its file name, and
    /// its symbols and relocations read. Returns the number of modules checked (0 when the lab
    /// tree is not there).
    fn check_debian_modules(stride: usize) -> usize {
        let root = lab_root();
        if !root.is_dir() {
            eprintln!(
                "no Debian module trees at {} (set MODSIM_LAB_ROOT)",
                root.display()
            );
            return 0;
        }
        let mut total = 0;
        for kernel in KERNELS {
            let p = profile(kernel);
            let mut files = Vec::new();
            module_files(&root.join(kernel).join("lib/modules"), &mut files);
            files.sort();
            assert!(!files.is_empty(), "no modules under {}", root.display());
            let start = Instant::now();
            let mut n = 0;
            for f in files.iter().step_by(stride) {
                let mut bytes = std::fs::read(f).unwrap();
                let mut log = KernelLog::new();
                let fname = f.file_name().unwrap().to_string_lossy().into_owned();
                if fname.ends_with(".xz") {
                    bytes = module_decompress(p, &bytes, LIMIT, &mut log)
                        .unwrap_or_else(|e| panic!("{}: {e} {log:?}", f.display()));
                }
                let info = early_load(p, bytes, 0, &SigSettings::default(), &mut log)
                    .unwrap_or_else(|e| panic!("{}: {e} {log:?}", f.display()));
                assert!(log.is_empty(), "{}: {log:?}", f.display());
                assert!(info.sig_ok, "{}", f.display());
                let stem = fname.split(".ko").next().unwrap().replace('-', "_");
                assert_eq!(info.name, stem, "{}", f.display());
                info.symbols().unwrap();
                for s in &info.sections {
                    if s.sh_type == object::elf::SHT_RELA.0 {
                        info.relas(s.index).unwrap();
                    }
                }
                n += 1;
            }
            eprintln!("{kernel}: {n} modules in {:.1?}", start.elapsed());
            total += n;
        }
        eprintln!("{total} Debian modules");
        total
    }

    /// Every 40th Debian module of the four kernels passes the early steps with a good
    /// signature (see [`check_debian_modules`]); skipped without the lab tree.
    #[test]
    fn a_sample_of_debian_modules_passes_the_early_steps_with_a_good_signature() {
        check_debian_modules(40);
    }

    /// All Debian modules of the four kernels (16285) pass the early steps with a good
    /// signature. About 20 s in a release build, minutes in a debug build: run with
    /// `MODSIM_LAB_ROOT=<lab>/root cargo test --release -p sim -- --ignored debian_modules`.
    #[test]
    #[ignore]
    fn all_debian_modules_pass_the_early_steps_with_a_good_signature() {
        assert!(check_debian_modules(1) > 0);
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::load::signing::SigSettings;

        const FILES: [&str; 6] = [
            "mp_lib.ko",
            "mp_types.ko",
            "mp_export.ko",
            "bad_sig_type.ko",
            "mp_lib.ko.xz",
            "no_versions.ko",
        ];

        /// Runs a mutated image through everything of this worktree that reads it.
        fn exercise(kernel: &str, bytes: Vec<u8>, flags: u32) {
            let p = profile(kernel);
            let mut log = KernelLog::new();
            let bytes = if flags & MODULE_INIT_COMPRESSED_FILE != 0 {
                match module_decompress(p, &bytes, 1 << 22, &mut log) {
                    Ok(b) => b,
                    Err(_) => return,
                }
            } else {
                bytes
            };
            let settings = SigSettings::default();
            if let Ok(mut info) = early_load(p, bytes, flags & 3, &settings, &mut log) {
                let _ = info.symbols();
                for i in 0..info.sections.len() + 1 {
                    let _ = info.section_data(i);
                    let _ = info.relas(i);
                }
                let _ = info.this_module_data();
                let _ = info.find_sec(".text");
                let _ = info.modinfo.get_all("alias");
                rewrite_section_headers(&mut info, 0xffff_c900_0000_0000);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

            /// Property: whatever bytes of a fixture are changed, and wherever it is cut, the
            /// early steps (decompression, signature, ELF checks) and the LoadInfo accessors
            /// return, with an errno or a value, and never panic.
            #[test]
            fn mutated_fixtures_never_panic(
                kernel in 0usize..4,
                file in 0usize..FILES.len(),
                edits in proptest::collection::vec(
                    (prop_oneof![0u64..64, 0u64..4096, any::<u64>()], any::<u8>()),
                    0..24,
                ),
                cut in proptest::option::of(any::<u64>()),
                from_end in any::<bool>(),
            ) {
                let kernel = KERNELS[kernel];
                let name = FILES[file];
                let mut bytes = fixture(kernel, name);
                let n = bytes.len() as u64;
                for (at, v) in edits {
                    // some edits near the end: the signature trailer and section headers
                    let i = if from_end { n - 1 - at % n } else { at % n };
                    bytes[i as usize] = v;
                }
                if let Some(c) = cut {
                    bytes.truncate((c % (n + 1)) as usize);
                }
                let flags = if name.ends_with(".xz") { MODULE_INIT_COMPRESSED_FILE } else { 0 };
                exercise(kernel, bytes, flags);
            }
        }
    }

    mod synthetic {
        //! Single-field changes of `mp_lib.ko` that reach each check of the two versions.

        use super::*;

        /// Byte offsets of `Elf64_Shdr` fields.
        const SH_NAME: usize = 0;
        const SH_TYPE: usize = 4;
        const SH_FLAGS: usize = 8;
        const SH_SIZE: usize = 32;
        const SH_LINK: usize = 40;

        struct Img {
            bytes: Vec<u8>,
            header: ElfHeader,
            sections: Vec<Section>,
        }

        impl Img {
            fn new(kernel: &str) -> Img {
                let bytes = fixture(kernel, "mp_lib.ko");
                let header = ElfHeader::parse(&bytes).unwrap();
                let mut sections =
                    Section::read_table(&bytes, header.e_shoff, header.e_shnum).unwrap();
                let str_off = sections[usize::from(header.e_shstrndx)].offset;
                for s in &mut sections {
                    s.name = decode_bytes(Section::read_name(&bytes, str_off, s.sh_name));
                }
                Img {
                    bytes,
                    header,
                    sections,
                }
            }
            fn idx(&self, name: &str) -> usize {
                self.sections.iter().position(|s| s.name == name).unwrap()
            }
            fn at(&self, sec: usize, field: usize) -> usize {
                self.header.e_shoff as usize + sec * SECTION_HEADER_SIZE + field
            }
            fn set32(&mut self, sec: usize, field: usize, v: u32) {
                let a = self.at(sec, field);
                self.bytes[a..a + 4].copy_from_slice(&v.to_le_bytes());
            }
            fn set64(&mut self, sec: usize, field: usize, v: u64) {
                let a = self.at(sec, field);
                self.bytes[a..a + 8].copy_from_slice(&v.to_le_bytes());
            }
            fn run(&self, kernel: &str, flags: u32) -> (Result<LoadInfo, Errno>, Vec<String>) {
                let mut log = KernelLog::new();
                let r = early_load(
                    profile(kernel),
                    self.bytes.clone(),
                    flags,
                    &SigSettings::default(),
                    &mut log,
                );
                (r, log.texts())
            }
        }

        fn fails(r: (Result<LoadInfo, Errno>, Vec<String>), line: &str) {
            assert_eq!(r.0.err(), Some(Errno::ENOEXEC), "{line}");
            assert_eq!(r.1, [line]);
        }

        #[test]
        fn header_checks_in_both_versions() {
            for kernel in KERNELS {
                let img = Img::new(kernel);
                let shnum = img.header.e_shnum;
                let mut i = Img::new(kernel);
                i.bytes[16] = 2; // e_type ET_EXEC
                fails(i.run(kernel, 0), "Invalid ELF header type: 2 != 1");
                let mut i = Img::new(kernel);
                i.bytes[58] = 40; // e_shentsize
                fails(i.run(kernel, 0), "Invalid ELF section header size");
                let mut i = Img::new(kernel);
                i.bytes[62] = 0; // e_shstrndx
                i.bytes[63] = 0;
                fails(
                    i.run(kernel, 0),
                    &format!(
                        "Invalid ELF section name index: 0 || e_shstrndx (0) >= e_shnum ({shnum})"
                    ),
                );
                let mut i = Img::new(kernel);
                let str_sec = usize::from(img.header.e_shstrndx);
                let last = (img.sections[str_sec].offset + img.sections[str_sec].size - 1) as usize;
                i.bytes[last] = b'x';
                fails(
                    i.run(kernel, 0),
                    "ELF Spec violation: section name table isn't null terminated",
                );
                let mut i = Img::new(kernel);
                i.set32(0, SH_TYPE, 1);
                fails(
                    i.run(kernel, 0),
                    "ELF Spec violation: section 0 type(1)!=SH_NULL or non-zero len or addr",
                );
                let mut i = Img::new(kernel);
                let symtab = img.idx(".symtab");
                i.set32(symtab, SH_LINK, 0);
                fails(
                    i.run(kernel, 0),
                    &format!(
                        "Invalid ELF sh_link!=SHN_UNDEF(0) or (sh_link(0) >= hdr->e_shnum({shnum})"
                    ),
                );
                let mut i = Img::new(kernel);
                let text = img.idx(".text");
                i.set32(text, SH_NAME, 0x10_0000);
                fails(
                    i.run(kernel, 0),
                    &format!("Invalid ELF section name in module (section {text} type 1)"),
                );
                let mut i = Img::new(kernel);
                i.set32(symtab, SH_TYPE, 1);
                fails(
                    i.run(kernel, 0),
                    "mp_lib: module has no symbols (stripped?)",
                );
            }
        }

        /// A signature trailer that is not PKCS#7 is stripped with the marker only (ENOPKG is
        /// soft): the ELF checks then see a 42-byte image.
        #[test]
        fn the_length_left_by_the_signature_check_is_checked_first() {
            for kernel in KERNELS {
                let mut bytes = vec![0u8; 30];
                bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                bytes.extend_from_slice(crate::image::MODULE_SIG_STRING);
                let mut log = KernelLog::new();
                let r = early_load(profile(kernel), bytes, 0, &SigSettings::default(), &mut log);
                assert_eq!(r.err(), Some(Errno::ENOEXEC));
                assert_eq!(
                    log.texts(),
                    [
                        "module: not signed with expected PKCS#7 message",
                        "Invalid ELF header len 42"
                    ]
                );
            }
        }

        #[test]
        fn this_module_checks_differ_between_6_1_and_6_12() {
            for kernel in KERNELS {
                let v612 = kernel.contains("6.12");
                let img = Img::new(kernel);
                let tm = img.idx(".gnu.linkonce.this_module");
                // size other than sizeof(struct module)
                let mut i = Img::new(kernel);
                i.set64(tm, SH_SIZE, img.sections[tm].size - 8);
                let r = i.run(kernel, 0);
                if v612 {
                    fails(
                        r,
                        "module mp_lib: .gnu.linkonce.this_module section size must match the kernel's built struct module size at run time",
                    );
                } else {
                    assert!(r.0.is_ok());
                }
                // not SHF_ALLOC
                let mut i = Img::new(kernel);
                i.set64(tm, SH_FLAGS, img.sections[tm].flags & !SHF_ALLOC);
                let r = i.run(kernel, 0);
                if v612 {
                    fails(
                        r,
                        "module mp_lib: .gnu.linkonce.this_module must occupy memory during process execution",
                    );
                } else {
                    assert_eq!(r.0.err(), Some(Errno::ENOEXEC));
                    assert_eq!(r.1, ["mp_lib: No module found in object"]);
                }
                // a second section of that name (non-ALLOC .comment)
                let mut i = Img::new(kernel);
                let comment = img.idx(".comment");
                i.set32(comment, SH_NAME, img.sections[tm].sh_name);
                let r = i.run(kernel, 0);
                if v612 {
                    fails(
                        r,
                        "module mp_lib: Only one .gnu.linkonce.this_module section must exist.",
                    );
                } else {
                    assert_eq!(r.0.unwrap().index.this_module, tm);
                }
                // a second .modinfo
                let mut i = Img::new(kernel);
                i.set32(comment, SH_NAME, img.sections[img.idx(".modinfo")].sh_name);
                let r = i.run(kernel, 0);
                if v612 {
                    fails(r, "Only one .modinfo section must exist.");
                } else {
                    assert!(r.0.is_ok());
                }
            }
        }

        /// `info->name` is modinfo's `name=`, else the on-disk struct module's name.
        #[test]
        fn the_name_falls_back_to_the_on_disk_struct_module() {
            for kernel in KERNELS {
                let img = Img::new(kernel);
                let mi = &img.sections[img.idx(".modinfo")];
                let sec = &img.bytes[mi.offset as usize..(mi.offset + mi.size) as usize];
                let at = sec.windows(11).position(|w| w == b"name=mp_lib").unwrap();
                let mut i = Img::new(kernel);
                i.bytes[mi.offset as usize + at + 10] = b'X';
                let (r, _) = i.run(kernel, 0);
                assert_eq!(r.unwrap().name, "mp_liX");
                // hide .modinfo: a name that is not ".modinfo"
                let text = img.sections[img.idx(".text")].sh_name;
                i.set32(mi.index, SH_NAME, text);
                let (r, log) = i.run(kernel, 0);
                let info = r.unwrap();
                assert!(log.is_empty());
                assert_eq!(info.name, "mp_lib");
                assert_eq!(info.index.info, 0);
                assert!(info.modinfo.entries().is_empty());
            }
        }

        #[test]
        fn load_info_indices_versions_and_rewritten_headers() {
            for kernel in KERNELS {
                let img = Img::new(kernel);
                let (r, _) = img.run(kernel, 0);
                let mut info = r.unwrap();
                assert_eq!(info.index.sym, img.idx(".symtab"));
                assert_eq!(info.index.str, img.idx(".strtab"));
                assert_eq!(info.index.info, img.idx(".modinfo"));
                assert_eq!(info.index.this_module, img.idx(".gnu.linkonce.this_module"));
                assert_eq!(info.index.vers, img.idx("__versions"));
                assert_eq!(info.index.pcpu, 0);
                assert_eq!(info.find_sec(".modinfo"), Some(info.index.info));
                assert!(!info.versions.is_empty());
                assert_eq!(
                    info.this_module_data().unwrap().len(),
                    profile(kernel).sizeof_struct_module()
                );
                let syms = info.symbols().unwrap();
                assert!(syms.iter().any(|s| s.name == b"mp_lib_fn" && s.bind() == 1));
                let relas: Vec<usize> = info
                    .sections
                    .iter()
                    .filter(|s| s.sh_type == object::elf::SHT_RELA.0)
                    .map(|s| s.index)
                    .collect();
                assert!(!relas.is_empty());
                for r in relas {
                    for rel in info.relas(r).unwrap() {
                        assert!((rel.sym as usize) < syms.len());
                    }
                }
                assert!(info.relas(info.index.sym).is_err());
                assert!(info.section_data(info.sections.len()).is_err());
                let (vers, modinfo) = (info.index.vers, info.index.info);
                rewrite_section_headers(&mut info, 0x1000_0000);
                assert_eq!(info.sections[0].addr, 0);
                assert_eq!(info.sections[1].addr, 0x1000_0000 + info.sections[1].offset);
                assert!(!info.sections[vers].is_alloc() && !info.sections[modinfo].is_alloc());
                assert_eq!(info.find_sec(".modinfo"), None);
                // IGNORE_MODVERSIONS: "Pretend no __versions section!"
                let (r, _) = img.run(kernel, MODULE_INIT_IGNORE_MODVERSIONS);
                let info = r.unwrap();
                assert_eq!(info.index.vers, 0);
                assert!(info.versions.is_empty());
            }
        }
    }
}
