//! What a module file says about itself, read from its ELF image (decompressed, see
//! [`crate::file`]): the `.modinfo` key/value list, the `__versions` table, the symbols it
//! exports (with their kind and namespace) and the ones it needs, its name, and the signature
//! appended to it.
//!
//! Only reading happens here; printing is the tools' business.
//!
//! **Exports.** In the 6.1 and 6.12 Debian modules, an `EXPORT_SYMBOL*` becomes a 12-byte
//! `struct kernel_symbol` entry in `__ksymtab` (or `__ksymtab_gpl` for the GPL-only ones) with
//! three 32-bit place-relative fields (value, name, namespace), filled by relocations
//! (`R_X86_64_PC32`, `R_AARCH64_PREL32`) that point at the strings in `__ksymtab_strings`; the
//! entry is also labelled by a local symbol `__ksymtab_<name>`, its name string by
//! `__kstrtab_<name>` and its namespace string (empty for none) by `__kstrtabns_<name>`; with
//! `CONFIG_MODVERSIONS` a local `__crc_<name>` symbol points at the CRC in `__kcrctab[_gpl]`.
//! [`read`] takes the exports from the entries through their relocations, which is what the
//! kernel reads; [`read_exports`] with [`ExportSource::SymbolNames`] reads them from the labels
//! instead, as a cross-check and for files whose relocations it does not understand.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{Endianness, SectionIndex};

/// A failure to read a module's ELF image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModinfoError {
    /// The data are not an ELF file of a kind this reader knows.
    #[error("not an ELF file: {0}")]
    NotElf(String),
    /// The ELF structure is broken (headers, section table, symbol table).
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// A section the reader needs has an impossible layout.
    #[error("section {section}: {detail}")]
    BadSection {
        /// The section's name.
        section: String,
        /// What is wrong with it.
        detail: String,
    },
}

fn malformed(e: object::Error) -> ModinfoError {
    ModinfoError::Malformed(e.to_string())
}

/// Whether an export is usable by any module or only by GPL-compatible ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExportKind {
    /// `EXPORT_SYMBOL` (`__ksymtab`).
    Plain,
    /// `EXPORT_SYMBOL_GPL` (`__ksymtab_gpl`).
    Gpl,
}

/// A symbol the module exports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Export {
    /// The symbol's name.
    pub name: String,
    /// Plain or GPL-only.
    pub kind: ExportKind,
    /// The namespace (`EXPORT_SYMBOL_NS`), `None` when it has none.
    pub namespace: Option<String>,
}

/// Where [`read_exports`] takes the exports from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportSource {
    /// The `__ksymtab` and `__ksymtab_gpl` entries, through their relocations (what the kernel
    /// reads). Falls back to [`ExportSource::SymbolNames`] when the relocations are of a kind
    /// this reader does not know.
    Entries,
    /// The `__ksymtab_<name>` labels of the entries and the `__kstrtabns_<name>` labels of the
    /// namespace strings.
    SymbolNames,
}

/// A symbol the module needs from the kernel or another module (undefined in its symbol table).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UndefinedSymbol {
    /// The symbol's name.
    pub name: String,
    /// A weak reference: the module loads without it (the address is then 0).
    pub weak: bool,
}

/// One `__versions` entry: the CRC the module was built against for a symbol it uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymbolVersion {
    /// The CRC (a `unsigned long` in the file; only the low 32 bits are ever set).
    pub crc: u64,
    /// The symbol's name.
    pub name: String,
}

/// The CRC of an exported symbol (a `__crc_<name>` symbol), as kmod's depmod reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExportCrc {
    /// The exported symbol's name (without `__crc_`).
    pub name: String,
    /// The CRC, or `None` when the symbol points outside its section.
    pub crc: Option<u32>,
}

/// One `key=value` string of `.modinfo`, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModinfoEntry {
    /// The part before the first `=` (the whole string when there is none).
    pub key: String,
    /// The part after the first `=` (empty when there is none).
    pub value: String,
}

/// The signature appended to a module (`~Module signature appended~\n` at the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The identifier type, as kmod's modinfo names it: `"PKCS#7"`, `"X509"` or `"PGP"`.
    pub id_type: &'static str,
    /// The signer: for PKCS#7 the common name of the signing certificate's issuer (kmod's
    /// `signer:`), `None` when the message has no name.
    pub signer: Option<String>,
    /// The key identifier: for PKCS#7 the certificate's serial number without leading zero
    /// bytes (kmod's `sig_key:`).
    pub key_id: Vec<u8>,
    /// The digest algorithm (`"sha256"`, ...), `None` when it is not one kmod knows.
    pub hash_algo: Option<&'static str>,
    /// The signature bytes (for PKCS#7 the signer's encrypted digest; kmod's `signature:`).
    pub signature: Vec<u8>,
    /// How many bytes of the file the signature covers (where the signature block starts).
    pub signed_len: usize,
}

impl Signature {
    /// `bytes` as kmod prints keys: upper-case hex pairs joined by `:`.
    pub fn hex(bytes: &[u8]) -> String {
        let mut s = String::with_capacity(bytes.len() * 3);
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push_str(&format!("{b:02X}"));
        }
        s
    }
}

/// Everything [`read`] finds in a module's ELF image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// 64-bit ELF (else 32-bit).
    pub is_64: bool,
    /// Big-endian (else little-endian).
    pub big_endian: bool,
    /// The ELF machine (`e_machine`: 62 for x86_64, 183 for aarch64).
    pub machine: u16,
    /// The module's name: `.modinfo`'s `name=`, else the name in `.gnu.linkonce.this_module`;
    /// `None` when neither has one.
    pub name: Option<String>,
    /// The `.modinfo` strings in order.
    pub modinfo: Vec<ModinfoEntry>,
    /// The `__versions` entries in order (empty without `CONFIG_MODVERSIONS`).
    pub versions: Vec<SymbolVersion>,
    /// The exported symbols: `__ksymtab` entries, then `__ksymtab_gpl` entries.
    pub exports: Vec<Export>,
    /// The `__crc_<name>` symbols in symbol table order.
    pub export_crcs: Vec<ExportCrc>,
    /// The undefined symbols in symbol table order.
    pub undefined: Vec<UndefinedSymbol>,
    /// The appended signature, if any.
    pub signature: Option<Signature>,
}

impl ModuleInfo {
    /// The values of a `.modinfo` key, in order (`"alias"`, `"depends"`, ...).
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.modinfo
            .iter()
            .filter(move |e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The first value of a `.modinfo` key.
    pub fn value<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.values(key).next()
    }

    /// The modules named by `.modinfo`'s `depends=` (which modpost computed at build time).
    pub fn depends(&self) -> Vec<&str> {
        self.values("depends")
            .flat_map(|v| v.split(','))
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Reads a module's ELF image (decompressed, signature included).
///
/// Fails with [`ModinfoError::NotElf`] for data that are not a 32- or 64-bit ELF file,
/// [`ModinfoError::Malformed`] for a broken header, section table or symbol table and
/// [`ModinfoError::BadSection`] for a `__versions` or `__ksymtab*` section of impossible size.
/// A missing section is not an error (its part stays empty); neither is a signature that
/// cannot be parsed (then [`ModuleInfo::signature`] is `None`, as kmod shows none).
pub fn read(data: &[u8]) -> Result<ModuleInfo, ModinfoError> {
    if ident(data)? {
        read_elf::<elf::FileHeader64<Endianness>>(data)
    } else {
        read_elf::<elf::FileHeader32<Endianness>>(data)
    }
}

/// Reads only the exports, from the given source (see [`ExportSource`]).
///
/// Fails like [`read`].
pub fn read_exports(data: &[u8], source: ExportSource) -> Result<Vec<Export>, ModinfoError> {
    if ident(data)? {
        exports_elf::<elf::FileHeader64<Endianness>>(data, source)
    } else {
        exports_elf::<elf::FileHeader32<Endianness>>(data, source)
    }
}

/// Checks the ELF magic; whether the file is 64-bit.
fn ident(data: &[u8]) -> Result<bool, ModinfoError> {
    if !data.starts_with(crate::file::ELF_MAGIC) {
        return Err(ModinfoError::NotElf("no ELF magic".into()));
    }
    match data.get(4) {
        Some(&c) if c == elf::ELFCLASS64.0 || c == elf::ELFCLASS32.0 => Ok(c == elf::ELFCLASS64.0),
        Some(c) => Err(ModinfoError::NotElf(format!("unknown ELF class {c}"))),
        None => Err(ModinfoError::NotElf("truncated ELF header".into())),
    }
}

/// The parsed skeleton shared by the readers.
struct Elf<'d, E: FileHeader<Endian = Endianness>> {
    data: &'d [u8],
    endian: Endianness,
    header: &'d E,
    sections: SectionTable<'d, E, &'d [u8]>,
    symbols: SymbolTable<'d, E, &'d [u8]>,
}

impl<'d, E: FileHeader<Endian = Endianness>> Elf<'d, E> {
    fn parse(data: &'d [u8]) -> Result<Self, ModinfoError> {
        let header = E::parse(data).map_err(|e| ModinfoError::NotElf(e.to_string()))?;
        let endian = header.endian().map_err(malformed)?;
        let sections = header.sections(endian, data).map_err(malformed)?;
        let symbols = sections
            .symbols(endian, data, elf::SHT_SYMTAB)
            .map_err(malformed)?;
        Ok(Elf {
            data,
            endian,
            header,
            sections,
            symbols,
        })
    }

    fn section(&self, name: &str) -> Option<(SectionIndex, &'d E::SectionHeader)> {
        self.sections.section_by_name(self.endian, name.as_bytes())
    }

    /// The bytes of a named section; empty when it is missing or `SHT_NOBITS`.
    fn section_data(&self, name: &str) -> Result<&'d [u8], ModinfoError> {
        match self.section(name) {
            Some((_, s)) => s
                .data(self.endian, self.data)
                .map_err(|_| bad(name, "outside the file")),
            None => Ok(&[]),
        }
    }

    fn index_data(&self, index: SectionIndex) -> Option<&'d [u8]> {
        let s = self.sections.section(index).ok()?;
        s.data(self.endian, self.data).ok()
    }

    fn sym_name(&self, sym: &E::Sym) -> &'d [u8] {
        sym.name(self.endian, self.symbols.strings()).unwrap_or(&[])
    }
}

fn bad(section: &str, detail: &str) -> ModinfoError {
    ModinfoError::BadSection {
        section: section.to_owned(),
        detail: detail.to_owned(),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The NUL-terminated string at `off` in `data` (to the end of `data` when there is no NUL).
fn cstr_at(data: &[u8], off: u64) -> Option<&[u8]> {
    let rest = data.get(usize::try_from(off).ok()?..)?;
    Some(rest.split(|&b| b == 0).next().unwrap_or(rest))
}

fn read_elf<E: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ModuleInfo, ModinfoError> {
    let elf = Elf::<E>::parse(data)?;
    let modinfo = modinfo_entries(elf.section_data(".modinfo")?);
    let name = modinfo
        .iter()
        .find(|e| e.key == "name")
        .map(|e| e.value.clone())
        .or_else(|| this_module_name(&elf));
    let versions = versions(&elf)?;
    let exports = exports(&elf, ExportSource::Entries)?;
    let mut export_crcs = Vec::new();
    let mut undefined = Vec::new();
    for sym in elf.symbols.iter().skip(1) {
        let shndx = sym.st_shndx(elf.endian);
        let n = elf.sym_name(sym);
        if shndx == elf::SHN_UNDEF {
            if !n.is_empty() {
                undefined.push(UndefinedSymbol {
                    name: lossy(n),
                    weak: sym.st_bind() == elf::STB_WEAK,
                });
            }
        } else if let Some(export) = n.strip_prefix(b"__crc_") {
            export_crcs.push(ExportCrc {
                name: lossy(export),
                crc: crc_value(&elf, sym),
            });
        }
    }
    Ok(ModuleInfo {
        is_64: elf.header.is_type_64(),
        big_endian: elf.endian == Endianness::Big,
        machine: elf.header.e_machine(elf.endian).0,
        name,
        modinfo,
        versions,
        exports,
        export_crcs,
        undefined,
        signature: signature(data),
    })
}

fn exports_elf<E: FileHeader<Endian = Endianness>>(
    data: &[u8],
    source: ExportSource,
) -> Result<Vec<Export>, ModinfoError> {
    exports(&Elf::<E>::parse(data)?, source)
}

/// The `.modinfo` strings, split as libkmod does: runs of NULs separate them.
fn modinfo_entries(sec: &[u8]) -> Vec<ModinfoEntry> {
    sec.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (k, v) = match s.iter().position(|&b| b == b'=') {
                Some(i) => (s.get(..i).unwrap_or(s), s.get(i + 1..).unwrap_or(&[])),
                None => (s, &[][..]),
            };
            ModinfoEntry {
                key: lossy(k),
                value: lossy(v),
            }
        })
        .collect()
}

/// `struct module`'s `name` field: after `enum module_state state` and `struct list_head list`,
/// i.e. at 3 words, `MODULE_NAME_LEN` (64 - word size) bytes long.
fn this_module_name<E: FileHeader<Endian = Endianness>>(elf: &Elf<'_, E>) -> Option<String> {
    let word = if elf.header.is_type_64() { 8 } else { 4 };
    let sec = elf.section_data(".gnu.linkonce.this_module").ok()?;
    let field = sec.get(3 * word..3 * word + (64 - word))?;
    let n = field.split(|&b| b == 0).next().unwrap_or(field);
    (!n.is_empty()).then(|| lossy(n))
}

/// `__versions`: `struct modversion_info { unsigned long crc; char name[64 - sizeof(long)]; }`.
fn versions<E: FileHeader<Endian = Endianness>>(
    elf: &Elf<'_, E>,
) -> Result<Vec<SymbolVersion>, ModinfoError> {
    let sec = elf.section_data("__versions")?;
    if sec.len() % 64 != 0 {
        return Err(bad(
            "__versions",
            &format!("size {} is not a multiple of 64", sec.len()),
        ));
    }
    let word = if elf.header.is_type_64() { 8 } else { 4 };
    Ok(sec
        .chunks_exact(64)
        .map(|e| {
            let (crc, name) = e.split_at(word);
            SymbolVersion {
                crc: uint(elf.endian, crc),
                name: lossy(name.split(|&b| b == 0).next().unwrap_or(name)),
            }
        })
        .collect())
}

/// An unsigned integer of 1 to 8 bytes in the file's byte order.
fn uint(endian: Endianness, b: &[u8]) -> u64 {
    let mut v = 0u64;
    if endian == Endianness::Little {
        for &x in b.iter().rev() {
            v = v << 8 | u64::from(x);
        }
    } else {
        for &x in b {
            v = v << 8 | u64::from(x);
        }
    }
    v
}

/// The CRC of a `__crc_` symbol: its value when absolute, else the 32-bit word it points at
/// (libkmod's `kmod_elf_resolve_crc`).
fn crc_value<E: FileHeader<Endian = Endianness>>(elf: &Elf<'_, E>, sym: &E::Sym) -> Option<u32> {
    let value: u64 = sym.st_value(elf.endian).into();
    let shndx = sym.st_shndx(elf.endian);
    if shndx == elf::SHN_ABS {
        return u32::try_from(value).ok();
    }
    let sec = elf.index_data(SectionIndex(shndx.0.into()))?;
    let start = usize::try_from(value).ok()?;
    let b = sec.get(start..start.checked_add(4)?)?;
    u32::try_from(uint(elf.endian, b)).ok()
}

/// The exports of both symbol tables, `__ksymtab` first.
fn exports<E: FileHeader<Endian = Endianness>>(
    elf: &Elf<'_, E>,
    source: ExportSource,
) -> Result<Vec<Export>, ModinfoError> {
    if source == ExportSource::Entries {
        let mut out = Vec::new();
        let mut understood = true;
        for (sec, kind) in [
            ("__ksymtab", ExportKind::Plain),
            ("__ksymtab_gpl", ExportKind::Gpl),
        ] {
            match exports_from_entries(elf, sec, kind)? {
                Some(v) => out.extend(v),
                None => understood = false,
            }
        }
        if understood {
            return Ok(out);
        }
    }
    exports_from_symbol_names(elf)
}

/// The size of one `struct kernel_symbol` whose fields the relocation type `r_type` fills:
/// three 32-bit offsets with `CONFIG_HAVE_ARCH_PREL32_RELOCATIONS`, three pointers otherwise.
/// `None` for a relocation this reader does not know.
fn entry_size(machine: elf::Machine, is_64: bool, r_type: elf::RelocationType) -> Option<u64> {
    let prel32 = (machine == elf::EM_X86_64 && r_type == elf::R_X86_64_PC32)
        || (machine == elf::EM_AARCH64 && r_type == elf::R_AARCH64_PREL32);
    let abs = (machine == elf::EM_X86_64 && r_type == elf::R_X86_64_64)
        || (machine == elf::EM_AARCH64 && r_type == elf::R_AARCH64_ABS64)
        || (machine == elf::EM_386 && r_type == elf::R_386_32)
        || (machine == elf::EM_ARM && r_type == elf::R_ARM_ABS32);
    match (prel32, abs, is_64) {
        (true, _, _) | (_, true, false) => Some(12),
        (_, true, true) => Some(24),
        _ => None,
    }
}

/// The exports of one `__ksymtab*` section from its entries' relocations: the second field of
/// each entry points at the name, the third at the namespace. `Ok(None)` when the section's
/// relocations are not of a kind this reader knows; `Ok(Some(empty))` when there is no section.
fn exports_from_entries<E: FileHeader<Endian = Endianness>>(
    elf: &Elf<'_, E>,
    name: &str,
    kind: ExportKind,
) -> Result<Option<Vec<Export>>, ModinfoError> {
    let Some((index, sec)) = elf.section(name) else {
        return Ok(Some(Vec::new()));
    };
    // The size of the bytes really in the file, so that a corrupt sh_size allocates nothing.
    let size = sec
        .data(elf.endian, elf.data)
        .map_err(|_| bad(name, "outside the file"))?
        .len() as u64;
    if size == 0 {
        return Ok(Some(Vec::new()));
    }
    // The RELA section that applies to this one.
    let mut relas: Option<&[E::Rela]> = None;
    for s in elf
        .sections
        .iter()
        .filter(|s| s.sh_info(elf.endian) as usize == index.0)
    {
        if let Some((r, link)) = s.rela(elf.endian, elf.data).map_err(malformed)? {
            if link != elf.symbols.section() {
                return Ok(None);
            }
            relas = Some(r);
            break;
        }
    }
    let Some(relas) = relas else {
        return Ok(None);
    };
    let machine = elf.header.e_machine(elf.endian);
    let is_64 = elf.header.is_type_64();
    let Some(first) = relas.first() else {
        return Ok(None);
    };
    let Some(esize) = entry_size(machine, is_64, first.r_type(elf.endian, false)) else {
        return Ok(None);
    };
    if size.checked_rem(esize) != Some(0) {
        return Err(bad(
            name,
            &format!("size {size} is not a multiple of the entry size {esize}"),
        ));
    }
    let field = esize / 3;
    let count = usize::try_from(size / esize).map_err(|_| bad(name, "too large"))?;
    // Per entry: the (section, offset) its name and namespace fields point at.
    let mut names: Vec<Option<(SectionIndex, u64)>> = vec![None; count];
    let mut namespaces: Vec<Option<(SectionIndex, u64)>> = vec![None; count];
    for r in relas {
        if entry_size(machine, is_64, r.r_type(elf.endian, false)) != Some(esize) {
            return Ok(None);
        }
        let off: u64 = r.r_offset(elf.endian).into();
        let slot = match (off % esize) / field {
            1 => &mut names,
            2 => &mut namespaces,
            _ => continue,
        };
        let Some(sym) = elf
            .symbols
            .symbol(object::SymbolIndex(r.r_sym(elf.endian, false) as usize))
            .ok()
        else {
            return Err(bad(name, "relocation against a missing symbol"));
        };
        let shndx = sym.st_shndx(elf.endian);
        let addend: i64 = r.r_addend(elf.endian).into();
        let value: u64 = sym.st_value(elf.endian).into();
        let target = (
            SectionIndex(shndx.0.into()),
            value.wrapping_add_signed(addend),
        );
        if let Some(s) = usize::try_from(off / esize)
            .ok()
            .and_then(|i| slot.get_mut(i))
        {
            *s = Some(target);
        }
    }
    let string = |t: Option<(SectionIndex, u64)>| -> Option<&[u8]> {
        let (sec, off) = t?;
        cstr_at(elf.index_data(sec)?, off)
    };
    let mut out = Vec::with_capacity(count);
    for (n, ns) in names.into_iter().zip(namespaces) {
        let Some(n) = string(n) else {
            return Err(bad(name, "an entry's name points nowhere"));
        };
        out.push(Export {
            name: lossy(n),
            kind,
            namespace: string(ns).filter(|s| !s.is_empty()).map(lossy),
        });
    }
    Ok(Some(out))
}

/// The exports from the `__ksymtab_<name>` labels (ordered by their place in the section) and
/// the `__kstrtabns_<name>` labels of their namespaces.
fn exports_from_symbol_names<E: FileHeader<Endian = Endianness>>(
    elf: &Elf<'_, E>,
) -> Result<Vec<Export>, ModinfoError> {
    let plain = elf.section("__ksymtab").map(|(i, _)| i);
    let gpl = elf.section("__ksymtab_gpl").map(|(i, _)| i);
    let mut found: Vec<(u8, u64, Export)> = Vec::new();
    let mut namespaces = std::collections::HashMap::new();
    for sym in elf.symbols.iter().skip(1) {
        let n = elf.sym_name(sym);
        let sec = Some(SectionIndex(sym.st_shndx(elf.endian).0.into()));
        let value: u64 = sym.st_value(elf.endian).into();
        if let Some(export) = n.strip_prefix(b"__ksymtab_") {
            let (order, kind) = if sec.is_some() && sec == plain {
                (0, ExportKind::Plain)
            } else if sec.is_some() && sec == gpl {
                (1, ExportKind::Gpl)
            } else {
                continue;
            };
            found.push((
                order,
                value,
                Export {
                    name: lossy(export),
                    kind,
                    namespace: None,
                },
            ));
        } else if let Some(export) = n.strip_prefix(b"__kstrtabns_") {
            let s = sec
                .and_then(|i| elf.index_data(i))
                .and_then(|d| cstr_at(d, value))
                .filter(|s| !s.is_empty());
            if let Some(s) = s {
                namespaces.insert(export, s);
            }
        }
    }
    found.sort_by_key(|(o, v, _)| (*o, *v));
    Ok(found
        .into_iter()
        .map(|(_, _, mut e)| {
            e.namespace = namespaces.get(e.name.as_bytes()).map(|s| lossy(s));
            e
        })
        .collect())
}

const SIG_MAGIC: &[u8] = b"~Module signature appended~\n";
/// `struct module_signature`: algo, hash, id_type, signer_len, key_id_len, 3 pad, be32 sig_len.
const MODSIG_LEN: usize = 12;
const PKEY_ID_PKCS7: u8 = 2;
const ID_TYPES: [&str; 3] = ["PGP", "X509", "PKCS#7"];
const HASH_ALGOS: [&str; 9] = [
    "md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3",
];

/// The signature appended to a module, read as kmod's `kmod_module_signature_info` does.
fn signature(data: &[u8]) -> Option<Signature> {
    let body = data.strip_suffix(SIG_MAGIC)?;
    let modsig_at = body.len().checked_sub(MODSIG_LEN)?;
    let modsig = body.get(modsig_at..)?;
    let (algo, hash, id_type) = (*modsig.first()?, *modsig.get(1)?, *modsig.get(2)?);
    let (signer_len, key_id_len) = (usize::from(*modsig.get(3)?), usize::from(*modsig.get(4)?));
    let sig_len = u32::from_be_bytes(modsig.get(8..12)?.try_into().ok()?) as usize;
    if algo >= 2 || usize::from(hash) >= HASH_ALGOS.len() || usize::from(id_type) >= ID_TYPES.len()
    {
        return None;
    }
    if sig_len == 0 {
        return None;
    }
    let sig_at = modsig_at.checked_sub(sig_len)?;
    let sig = body.get(sig_at..modsig_at)?;
    let id_type_name = *ID_TYPES.get(usize::from(id_type))?;
    if id_type == PKEY_ID_PKCS7 {
        let mut s = pkcs7::signer_info(sig)?;
        s.id_type = id_type_name;
        s.signed_len = sig_at;
        return Some(s);
    }
    let key_at = sig_at.checked_sub(key_id_len)?;
    let signer_at = key_at.checked_sub(signer_len)?;
    Some(Signature {
        id_type: id_type_name,
        signer: Some(lossy(body.get(signer_at..key_at)?)),
        key_id: body.get(key_at..sig_at)?.to_vec(),
        hash_algo: HASH_ALGOS.get(usize::from(hash)).copied(),
        signature: sig.to_vec(),
        signed_len: signer_at,
    })
}

/// Just enough DER to find, in a PKCS#7 `SignedData` message, the first signer's issuer, serial
/// number, digest algorithm and encrypted digest. Every read is bounded by its enclosing value;
/// the nesting is fixed, so there is no recursion on input.
mod pkcs7 {
    use super::{HASH_ALGOS, Signature, lossy};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const OID: u8 = 0x06;
    /// 1.2.840.113549.1.7.2
    const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    /// 2.5.4.3
    const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// The digest algorithms kmod names, with their OIDs.
    const DIGESTS: [(&[u8], usize); 9] = [
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x04], 0), // md4
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05], 1), // md5
        (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], 2),                   // sha1
        (&[0x2b, 0x24, 0x03, 0x02, 0x01], 3),                   // ripemd160
        (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01], 4), // sha256
        (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02], 5), // sha384
        (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03], 6), // sha512
        (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04], 7), // sha224
        (&[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11], 8), // sm3
    ];

    /// A cursor over DER values.
    struct Der<'a>(&'a [u8]);

    impl<'a> Der<'a> {
        /// The next value's tag and contents (definite lengths only, up to 4 length bytes).
        fn next(&mut self) -> Option<(u8, &'a [u8])> {
            let (&tag, rest) = self.0.split_first()?;
            let (&l0, mut rest) = rest.split_first()?;
            let len = if l0 < 0x80 {
                usize::from(l0)
            } else {
                let n = usize::from(l0 & 0x7f);
                if n == 0 || n > 4 {
                    return None;
                }
                let (lb, r) = rest.split_at_checked(n)?;
                rest = r;
                lb.iter().fold(0usize, |a, &b| a << 8 | usize::from(b))
            };
            let (value, rest) = rest.split_at_checked(len)?;
            self.0 = rest;
            Some((tag, value))
        }

        /// The next value, which must have tag `tag`.
        fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
            match self.next()? {
                (t, v) if t == tag => Some(v),
                _ => None,
            }
        }
    }

    /// The signer information of a PKCS#7 message, as kmod's `fill_pkcs7` reads it
    /// (`id_type` and `signed_len` are left for the caller).
    pub(super) fn signer_info(msg: &[u8]) -> Option<Signature> {
        let mut content_info = Der(Der(msg).expect(SEQUENCE)?);
        if content_info.expect(OID)? != OID_SIGNED_DATA {
            return None;
        }
        let explicit = content_info.expect(0xa0)?;
        let mut signed_data = Der(Der(explicit).expect(SEQUENCE)?);
        // version, digestAlgorithms, contentInfo, [0] certificates, [1] crls, signerInfos: the
        // signer infos are the last SET.
        let mut signer_infos = None;
        let mut sets = 0;
        while let Some((tag, v)) = signed_data.next() {
            if tag == SET {
                sets += 1;
                if sets == 2 {
                    signer_infos = Some(v);
                }
            }
        }
        let mut si = Der(Der(signer_infos?).expect(SEQUENCE)?);
        si.expect(INTEGER)?; // version
        let mut issuer_and_serial = Der(si.expect(SEQUENCE)?);
        let issuer = issuer_and_serial.expect(SEQUENCE)?;
        let serial = issuer_and_serial.expect(INTEGER)?;
        let mut digest_alg = Der(si.expect(SEQUENCE)?);
        let digest_oid = digest_alg.expect(OID)?;
        let mut next = si.next()?;
        if next.0 == 0xa0 {
            next = si.next()?; // authenticated attributes
        }
        if next.0 != SEQUENCE {
            return None; // digestEncryptionAlgorithm
        }
        let encrypted_digest = si.expect(OCTET_STRING)?;
        let key_id: Vec<u8> = serial.iter().copied().skip_while(|&b| b == 0).collect();
        Some(Signature {
            id_type: "",
            signer: name_to_str(issuer).map(lossy),
            key_id,
            hash_algo: DIGESTS
                .iter()
                .find(|(oid, _)| *oid == digest_oid)
                .and_then(|&(_, i)| HASH_ALGOS.get(i).copied()),
            signature: encrypted_digest.to_vec(),
            signed_len: 0,
        })
    }

    /// kmod's `x509_name_to_str`: the common name; when there is none, the value of the last
    /// attribute (its loop leaves the last entry behind).
    fn name_to_str(name: &[u8]) -> Option<&[u8]> {
        let mut rdns = Der(name);
        let mut last = None;
        while let Some(rdn) = rdns.expect(SET) {
            let mut atvs = Der(rdn);
            while let Some(atv) = atvs.expect(SEQUENCE) {
                let mut atv = Der(atv);
                let oid = atv.expect(OID)?;
                let (_, value) = atv.next()?;
                if oid == OID_COMMON_NAME {
                    return Some(value);
                }
                last = Some(value);
            }
        }
        last
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_strings_split_like_libkmod() {
        let e = modinfo_entries(b"\0\0license=GPL\0\0\0name=x\0flag\0a=b=c");
        let kv: Vec<(&str, &str)> = e.iter().map(|e| (&*e.key, &*e.value)).collect();
        assert_eq!(
            kv,
            [
                ("license", "GPL"),
                ("name", "x"),
                ("flag", ""),
                ("a", "b=c")
            ]
        );
    }

    #[test]
    fn rejects_non_elf() {
        assert!(matches!(read(b"hello"), Err(ModinfoError::NotElf(_))));
        assert!(matches!(read(b"\x7fELF"), Err(ModinfoError::NotElf(_))));
        assert!(matches!(read(b"\x7fELF\x07"), Err(ModinfoError::NotElf(_))));
        // A 64-bit header with nothing after it.
        let mut h = b"\x7fELF\x02\x01\x01".to_vec();
        h.resize(40, 0);
        assert!(read(&h).is_err());
    }

    #[test]
    fn hex_like_kmod() {
        assert_eq!(Signature::hex(&[0x66, 0xf5, 0x0e]), "66:F5:0E");
        assert_eq!(Signature::hex(&[]), "");
    }

    #[test]
    fn der_lengths_are_bounded() {
        // A length running past the end, and a 5-byte length, are both refused.
        assert!(pkcs7::signer_info(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(pkcs7::signer_info(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]).is_none());
        assert!(pkcs7::signer_info(&[]).is_none());
    }
}

/// Tests on the committed fixture modules (`tests/fixtures/ko/<kernel>/`).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod fixture_tests {
    use super::*;
    use crate::file::ModuleFile;

    const KERNELS: [&str; 4] = [
        "debian-6.1-amd64",
        "debian-6.1-arm64",
        "debian-6.12-amd64",
        "debian-6.12-arm64",
    ];

    fn info(kernel: &str, file: &str) -> ModuleInfo {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ko")
            .join(kernel)
            .join(file);
        read(ModuleFile::open(&p).unwrap().data()).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    #[test]
    fn exports_with_kind_and_namespace() {
        for k in KERNELS {
            let m = info(k, "mp_export.ko");
            assert_eq!(m.name.as_deref(), Some("mp_export"));
            let mut got: Vec<(String, ExportKind, Option<String>)> = m
                .exports
                .iter()
                .map(|e| (e.name.clone(), e.kind, e.namespace.clone()))
                .collect();
            got.sort();
            let want = [
                ("mp_export_counter", ExportKind::Plain, None),
                ("mp_export_gpl", ExportKind::Gpl, None),
                ("mp_export_ns", ExportKind::Plain, Some("MP_NS".to_owned())),
                ("mp_export_plain", ExportKind::Plain, None),
            ]
            .map(|(n, k, ns)| (n.to_owned(), k, ns));
            assert_eq!(got, want, "{k}");
            // The labels say the same, in the same order.
            let data = ModuleFile::open(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/fixtures/ko")
                    .join(k)
                    .join("mp_export.ko"),
            )
            .unwrap();
            assert_eq!(
                read_exports(data.data(), ExportSource::SymbolNames).unwrap(),
                m.exports,
                "{k}"
            );
            // With CONFIG_MODVERSIONS every export has its CRC symbol.
            let mut crcs: Vec<&str> = m.export_crcs.iter().map(|c| c.name.as_str()).collect();
            crcs.sort_unstable();
            let mut names: Vec<&str> = m.exports.iter().map(|e| e.name.as_str()).collect();
            names.sort_unstable();
            assert_eq!(crcs, names, "{k}");
            assert!(m.export_crcs.iter().all(|c| c.crc.is_some()), "{k}");
        }
    }

    #[test]
    fn undefined_symbols_weak_and_versions() {
        for k in KERNELS {
            let m = info(k, "mp_use.ko");
            let und: Vec<&str> = m.undefined.iter().map(|u| u.name.as_str()).collect();
            assert!(
                und.contains(&"mp_export_plain") && und.contains(&"mp_export_gpl"),
                "{k}: {und:?}"
            );
            assert!(m.undefined.iter().all(|u| !u.weak), "{k}");
            assert_eq!(m.depends(), ["mp_export"], "{k}");
            assert!(
                m.versions
                    .iter()
                    .any(|v| v.name == "mp_export_plain" && v.crc != 0),
                "{k}"
            );
            assert!(m.exports.is_empty());

            let m = info(k, "mp_weak.ko");
            let w: Vec<&UndefinedSymbol> = m.undefined.iter().filter(|u| u.weak).collect();
            assert_eq!(w.len(), 1, "{k}");
            assert_eq!(w[0].name, "mp_weak_missing");

            let m = info(k, "mp_use_ns.ko");
            assert_eq!(m.value("import_ns"), Some("MP_NS"), "{k}");
            assert!(
                m.value("vermagic")
                    .unwrap()
                    .contains(if k.contains("6.12") { "6.12" } else { "6.1" })
            );

            let m = info(k, "no_versions.ko");
            assert!(m.versions.is_empty(), "{k}");
            assert!(!m.undefined.is_empty(), "{k}");
            assert!(m.signature.is_none());
        }
    }

    #[test]
    fn compressed_modules_read_the_same() {
        for k in KERNELS {
            let plain = info(k, "mp_types.ko");
            for ext in ["gz", "xz", "zst"] {
                assert_eq!(info(k, &format!("mp_types.ko.{ext}")), plain, "{k} {ext}");
            }
            assert!(
                plain
                    .modinfo
                    .iter()
                    .any(|e| e.key == "parmtype" && e.value == "p_int:int")
            );
        }
    }

    #[test]
    fn broken_signatures_read_as_kmod_shows_them() {
        for k in KERNELS {
            // kmod shows no signature for these: not PKCS#7 data, or an impossible length.
            for f in ["bad_sig_garbage.ko", "bad_sig_params.ko", "bad_sig_len.ko"] {
                assert_eq!(info(k, f).signature, None, "{k} {f}");
            }
            // id_type 0 is read as a PGP signature with an empty signer and key.
            let s = info(k, "bad_sig_type.ko").signature.unwrap();
            assert_eq!(s.id_type, "PGP");
            assert_eq!(s.signer.as_deref(), Some(""));
            assert!(s.key_id.is_empty());
            assert_eq!(s.hash_algo, Some("md4"));
            assert_eq!(s.signature.len(), 64);
            let plain = std::fs::metadata(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/fixtures/ko")
                    .join(k)
                    .join("mp_lib.ko"),
            )
            .unwrap()
            .len();
            assert_eq!(s.signed_len as u64, plain, "{k}");
        }
    }

    #[test]
    fn broken_elf_files_are_errors_not_panics() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ko/debian-6.1-amd64");
        for f in ["bad_shoff.ko", "bad_truncated.ko"] {
            let data = std::fs::read(dir.join(f)).unwrap();
            assert!(read(&data).is_err(), "{f}");
        }
        // Every prefix of a real module: an error or a (partial) result, never a panic nor an
        // allocation larger than the file.
        let data = std::fs::read(dir.join("mp_export.ko")).unwrap();
        for cut in 0..data.len() {
            let _ = read(&data[..cut]);
            let _ = read_exports(&data[..cut], ExportSource::SymbolNames);
        }
        // Every single-byte corruption, likewise.
        for at in 0..data.len() {
            for x in [0xa5, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= x;
                let _ = read(&bad);
                let _ = read_exports(&bad, ExportSource::SymbolNames);
            }
        }
    }
}
