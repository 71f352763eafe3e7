//! ELF views: the file header, section headers, symbols and RELA relocations of a 64-bit
//! little-endian relocatable object, read through `object`'s low-level API.
//!
//! Both modelled architectures (x86_64, arm64) are 64-bit little-endian and the kernel reads
//! the headers as its own `Elf64_*` structures whatever `e_ident` says, so the views do too
//! ([`LE`]); `e_ident` is checked only where the kernel checks it (the magic).

use object::Endianness;
use object::elf::{FileHeader64, Rela64, SectionHeader64, Sym64};
use object::read::elf::{FileHeader, Rela as _, SectionHeader, Sym};

use super::{ImageError, bytes_at, cstr_at};

/// The byte order the kernels read module headers in.
pub const LE: Endianness = Endianness::Little;
/// `sizeof(Elf64_Ehdr)`.
pub const ELF_HEADER_SIZE: usize = 64;
/// `sizeof(Elf64_Shdr)`.
pub const SECTION_HEADER_SIZE: usize = 64;
/// `sizeof(Elf64_Sym)`.
pub const SYMBOL_SIZE: usize = 24;
/// `sizeof(Elf64_Rela)`.
pub const RELA_SIZE: usize = 24;

/// The fields of `Elf64_Ehdr` the load path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfHeader {
    /// `e_ident` (magic, class, data, ...).
    pub ident: [u8; 16],
    /// `e_type` (`ET_REL` = 1 for modules).
    pub e_type: u16,
    /// `e_machine`.
    pub e_machine: u16,
    /// `e_shoff`: file offset of the section header table.
    pub e_shoff: u64,
    /// `e_shentsize`.
    pub e_shentsize: u16,
    /// `e_shnum`.
    pub e_shnum: u16,
    /// `e_shstrndx`: index of the section name string table.
    pub e_shstrndx: u16,
}

impl ElfHeader {
    /// Reads the header from the first 64 bytes of `data`; fails with
    /// [`ImageError::OutOfBounds`] when `data` is shorter.
    pub fn parse(data: &[u8]) -> Result<ElfHeader, ImageError> {
        let bytes = bytes_at(data, 0, ELF_HEADER_SIZE as u64, "ELF header")?;
        let (h, _) = object::pod::from_bytes::<FileHeader64<Endianness>>(bytes)
            .map_err(|()| ImageError::Malformed("ELF header: misaligned or short".into()))?;
        let mut ident = [0u8; 16];
        ident.copy_from_slice(&bytes[..16]);
        Ok(ElfHeader {
            ident,
            e_type: h.e_type(LE).0,
            e_machine: h.e_machine(LE).0,
            e_shoff: h.e_shoff(LE),
            e_shentsize: h.e_shentsize(LE),
            e_shnum: h.e_shnum(LE),
            e_shstrndx: h.e_shstrndx(LE).0,
        })
    }
}

/// One section header, owned, so that later steps can change it as the kernel changes its copy
/// of the section headers (`sh_addr`, `sh_flags`, `sh_size`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its index in the section header table.
    pub index: usize,
    /// Its name (`secstrings + sh_name`, see [`Section::read_name`]).
    pub name: String,
    /// `sh_name`: offset of the name in the section name string table.
    pub sh_name: u32,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_offset`.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// `sh_addralign`.
    pub addralign: u64,
    /// `sh_entsize`.
    pub entsize: u64,
}

impl Section {
    /// Reads the `shnum` section headers at `shoff` (names left empty); fails with
    /// [`ImageError::OutOfBounds`] when the table does not fit in `data`.
    pub fn read_table(data: &[u8], shoff: u64, shnum: u16) -> Result<Vec<Section>, ImageError> {
        let count = usize::from(shnum);
        let bytes = bytes_at(
            data,
            shoff,
            (count * SECTION_HEADER_SIZE) as u64,
            "section header table",
        )?;
        let (headers, _) = object::pod::slice_from_bytes::<SectionHeader64<Endianness>>(
            bytes, count,
        )
        .map_err(|()| ImageError::Malformed("section headers: misaligned or short".into()))?;
        Ok(headers
            .iter()
            .enumerate()
            .map(|(index, s)| Section {
                index,
                name: String::new(),
                sh_name: s.sh_name(LE),
                sh_type: s.sh_type(LE).0,
                flags: s.sh_flags(LE).0,
                addr: s.sh_addr(LE),
                offset: s.sh_offset(LE),
                size: s.sh_size(LE),
                link: s.sh_link(LE),
                info: s.sh_info(LE),
                addralign: s.sh_addralign(LE),
                entsize: s.sh_entsize(LE),
            })
            .collect())
    }

    /// The name bytes at `secstrings + sh_name`, as the kernel reads them (`strcmp`, `%s`): up
    /// to the first NUL, bounded by `image` (the kernel does not check `sh_name` of sections
    /// without `SHF_ALLOC`); empty when the offset is outside `image`. Cannot fail.
    pub fn read_name(image: &[u8], secstrings_offset: u64, sh_name: u32) -> &[u8] {
        secstrings_offset
            .checked_add(u64::from(sh_name))
            .and_then(|o| cstr_at(image, o))
            .unwrap_or_default()
    }

    /// Whether `SHF_ALLOC` is set. Cannot fail.
    pub fn is_alloc(&self) -> bool {
        self.flags & object::elf::SHF_ALLOC.0 != 0
    }

    /// `sh_offset + sh_size`, `None` when it overflows. Cannot fail.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.size)
    }
}

/// One `Elf64_Sym`, with its name in the symbol string table: borrowed from the image, never
/// copied (the kernel only runs `strlen` over it; names may overlap, so copies could cost the
/// number of symbols times the image size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The name's bytes (`strtab + st_name`, up to NUL).
    pub name: &'a [u8],
    /// `st_name`.
    pub st_name: u32,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_info` (binding << 4 | type).
    pub info: u8,
    /// `st_other` (visibility).
    pub other: u8,
    /// `st_shndx`.
    pub shndx: u16,
}

impl<'a> Symbol<'a> {
    /// The name as text ([`crate::image::decode_text`]: borrowed when it is UTF-8). Cannot
    /// fail.
    pub fn name_str(&self) -> std::borrow::Cow<'a, str> {
        super::decode_text(self.name)
    }

    /// `ELF64_ST_BIND(st_info)` (`STB_LOCAL` 0, `STB_GLOBAL` 1, `STB_WEAK` 2). Cannot fail.
    pub fn bind(&self) -> u8 {
        self.info >> 4
    }

    /// `ELF64_ST_TYPE(st_info)` (`STT_NOTYPE` 0, `STT_OBJECT` 1, `STT_FUNC` 2, ...). Cannot
    /// fail.
    pub fn typ(&self) -> u8 {
        self.info & 0xf
    }

    /// Reads every symbol of the symbol table `symtab` (`sh_size / 24` entries), names from
    /// the string table at file offset `strtab_offset`, both bounded by `image`. Fails with
    /// [`ImageError::OutOfBounds`] when the table or a name lies outside `image`.
    pub fn read_table(
        image: &'a [u8],
        symtab: &Section,
        strtab_offset: u64,
    ) -> Result<Vec<Symbol<'a>>, ImageError> {
        let count = usize::try_from(symtab.size / SYMBOL_SIZE as u64).unwrap_or(usize::MAX);
        let bytes = bytes_at(
            image,
            symtab.offset,
            (count as u64).saturating_mul(SYMBOL_SIZE as u64),
            "symbol table",
        )?;
        let (syms, _) = object::pod::slice_from_bytes::<Sym64<Endianness>>(bytes, count)
            .map_err(|()| ImageError::Malformed("symbol table: misaligned or short".into()))?;
        // Many symbols over a long string table: where each name ends, found in one pass (names
        // may overlap, and scanning each to its NUL would cost symbols x table).
        let tail = usize::try_from(strtab_offset)
            .ok()
            .and_then(|o| image.get(o..))
            .unwrap_or_default();
        let ends = (syms.len() > 64 && tail.len() > 4096).then(|| nul_ends(tail));
        syms.iter()
            .map(|s| {
                let st_name = s.st_name(LE);
                let name = match &ends {
                    Some(ends) => usize::try_from(st_name).ok().and_then(|o| {
                        let end = ends.get(o).map_or(tail.len(), |&e| e as usize);
                        tail.get(o..end)
                    }),
                    None => strtab_offset
                        .checked_add(u64::from(st_name))
                        .and_then(|o| cstr_at(image, o)),
                };
                let name = name.ok_or(ImageError::OutOfBounds {
                    what: "symbol name",
                    offset: strtab_offset.saturating_add(u64::from(st_name)),
                    size: 1,
                    len: image.len(),
                })?;
                Ok(Symbol {
                    name,
                    st_name,
                    value: s.st_value(LE),
                    size: s.st_size(LE),
                    info: s.st_info().0,
                    other: s.st_other().0,
                    shndx: s.st_shndx(LE).0,
                })
            })
            .collect()
    }
}

/// For each byte of `data`, the index of the first NUL at or after it (`data.len()`: none).
/// Only built for data shorter than 4 GiB (module images are at most 2 GiB).
fn nul_ends(data: &[u8]) -> Vec<u32> {
    let mut ends = vec![0u32; data.len()];
    let mut next = u32::try_from(data.len()).unwrap_or(u32::MAX);
    for (i, &b) in data.iter().enumerate().rev() {
        if b == 0 {
            next = u32::try_from(i).unwrap_or(u32::MAX);
        }
        ends[i] = next;
    }
    ends
}

/// One `Elf64_Rela`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rela {
    /// `r_offset`: where to apply it, relative to the target section.
    pub offset: u64,
    /// `ELF64_R_SYM(r_info)`: the symbol index.
    pub sym: u32,
    /// `ELF64_R_TYPE(r_info)`: the relocation type.
    pub r_type: u32,
    /// `r_addend`.
    pub addend: i64,
}

impl Rela {
    /// Reads the `sh_size / 24` entries of a RELA section, bounded by `image`; fails with
    /// [`ImageError::OutOfBounds`] when they lie outside it.
    pub fn read_table(image: &[u8], section: &Section) -> Result<Vec<Rela>, ImageError> {
        let count = usize::try_from(section.size / RELA_SIZE as u64).unwrap_or(usize::MAX);
        let bytes = bytes_at(
            image,
            section.offset,
            (count as u64).saturating_mul(RELA_SIZE as u64),
            "relocation section",
        )?;
        let (relas, _) = object::pod::slice_from_bytes::<Rela64<Endianness>>(bytes, count)
            .map_err(|()| ImageError::Malformed("relocations: misaligned or short".into()))?;
        Ok(relas
            .iter()
            .map(|r| Rela {
                offset: r.r_offset(LE),
                sym: r.r_sym(LE, false),
                r_type: r.r_type(LE, false).0,
                addend: r.r_addend(LE),
            })
            .collect())
    }
}
