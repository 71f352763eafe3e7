//! `LoadInfo`: what the kernel's `struct load_info` holds once the ELF checks have passed.

use super::{
    ElfHeader, ImageError, ModInfo, Rela, Section, Symbol, VersionEntry, bytes_at, cstr_at,
    decode_bytes,
};

/// The section indices the kernel caches in `info->index` (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Indices {
    /// `index.sym`: the symbol table.
    pub sym: usize,
    /// `index.str`: its string table (`sh_link` of the symbol table).
    pub str: usize,
    /// `index.info`: `.modinfo`.
    pub info: usize,
    /// `index.vers`: `__versions` (0 with `MODULE_INIT_IGNORE_MODVERSIONS`).
    pub vers: usize,
    /// `index.mod`: `.gnu.linkonce.this_module`.
    pub this_module: usize,
    /// `index.pcpu`: `.data..percpu`.
    pub pcpu: usize,
}

/// The validated module image: the kernel's `struct load_info` after `elf_validity_check()` +
/// `setup_load_info()` (6.1) or `elf_validity_cache_copy()` (6.12).
///
/// Every accessor is bounds-checked against the image (`len` bytes) and fails with an
/// [`ImageError`] instead of panicking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadInfo {
    /// The image bytes the kernel works on: the (decompressed) file without the signature
    /// trailer that `module_sig_check()` stripped; `image.len() == len`. Shared, so that what
    /// borrows from it (symbol names) can live beside a load that changes other state.
    pub image: std::sync::Arc<[u8]>,
    /// `info->len`.
    pub len: usize,
    /// The ELF header.
    pub header: ElfHeader,
    /// `e_machine`.
    pub e_machine: u16,
    /// The kernel's copy of the section headers (`info->sechdrs`), with names.
    pub sections: Vec<Section>,
    /// File offset of the section name string table (`info->secstrings`).
    pub secstrings_offset: u64,
    /// `info->index`.
    pub index: Indices,
    /// `info->name`: the `.modinfo` `name=` value, else the `name` of the on-disk
    /// `struct module`.
    pub name: String,
    /// The `.modinfo` strings (empty without a `.modinfo` section).
    pub modinfo: ModInfo,
    /// The `__versions` entries (empty without the section, with
    /// `MODULE_INIT_IGNORE_MODVERSIONS`, or when a `SHT_NOBITS` `__versions` points outside
    /// the image).
    pub versions: Vec<VersionEntry>,
    /// `info->sig_ok`: the signature was verified (see `load::signing`).
    pub sig_ok: bool,
}

impl LoadInfo {
    /// The section with index `index`; [`ImageError::NoSection`] when there is none.
    pub fn section(&self, index: usize) -> Result<&Section, ImageError> {
        self.sections.get(index).ok_or(ImageError::NoSection(index))
    }

    /// The file bytes of a section (`sh_offset`, `sh_size`); empty for `SHT_NOBITS`. Fails
    /// with [`ImageError::NoSection`] or [`ImageError::OutOfBounds`].
    pub fn section_data(&self, index: usize) -> Result<&[u8], ImageError> {
        let s = self.section(index)?;
        if s.sh_type == object::elf::SHT_NOBITS.0 {
            return Ok(&[]);
        }
        bytes_at(&self.image, s.offset, s.size, "section data")
    }

    /// Every symbol of `.symtab` (index 0 included), names from its string table. Fails with
    /// [`ImageError`] when the table or a name lies outside the image.
    pub fn symbols(&self) -> Result<Vec<Symbol<'_>>, ImageError> {
        let symtab = self.section(self.index.sym)?;
        let strtab = self.section(self.index.str)?;
        Symbol::read_table(&self.image, symtab, strtab.offset)
    }

    /// The relocations of a `SHT_RELA` section. Fails with [`ImageError::Malformed`] for
    /// another section type, or like [`LoadInfo::section_data`].
    pub fn relas(&self, index: usize) -> Result<Vec<Rela>, ImageError> {
        let s = self.section(index)?;
        if s.sh_type != object::elf::SHT_RELA.0 {
            return Err(ImageError::Malformed(format!(
                "section {index} is not SHT_RELA (type {})",
                s.sh_type
            )));
        }
        Rela::read_table(&self.image, s)
    }

    /// The kernel's `find_sec()`: the first section with `SHF_ALLOC` named `name`; `None`
    /// when there is none (the kernel's 0). Cannot fail.
    pub fn find_sec(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .skip(1)
            .find(|s| s.is_alloc() && s.name == name)
            .map(|s| s.index)
    }

    /// The kernel's `find_any_sec()` (6.12): like [`LoadInfo::find_sec`] whatever the
    /// `SHF_ALLOC` flag. Cannot fail.
    pub fn find_any_sec(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .skip(1)
            .find(|s| s.name == name)
            .map(|s| s.index)
    }

    /// The bytes of `.gnu.linkonce.this_module` (the on-disk `struct module`). Fails like
    /// [`LoadInfo::section_data`].
    pub fn this_module_data(&self) -> Result<&[u8], ImageError> {
        self.section_data(self.index.this_module)
    }

    /// The C string at `offset` of the image, as text (the kernel reading a `char *` into its
    /// copy); `None` when `offset` is outside the image. Cannot fail.
    pub fn string_at(&self, offset: u64) -> Option<String> {
        cstr_at(&self.image, offset).map(decode_bytes)
    }
}
