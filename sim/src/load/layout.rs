//! Section layout: where each `SHF_ALLOC` section goes in module memory, and how big each
//! region is — which is what `/proc/modules` reports as the module's size.
//!
//! 6.1 lays sections out into `core_layout` and `init_layout` (`layout_sections()`,
//! `layout_symtab()` in kernel/module/main.c and kallsyms.c, `strict_align()` to pages with
//! `CONFIG_STRICT_MODULE_RWX`); 6.12 into seven `mod_mem` regions (`__layout_sections()`,
//! `module_get_offset_and_type()`, each region `PAGE_ALIGN`ed by `module_memory_alloc()`).

use crate::profile::{Arch, KernelVersion, Profile};

/// `SHF_WRITE`.
pub const SHF_WRITE: u64 = 0x1;
/// `SHF_ALLOC`.
pub const SHF_ALLOC: u64 = 0x2;
/// `SHF_EXECINSTR`.
pub const SHF_EXECINSTR: u64 = 0x4;
/// `SHF_RO_AFTER_INIT` (kernel-internal section flag).
pub const SHF_RO_AFTER_INIT: u64 = 0x0020_0000;
/// `SHT_NOBITS`.
pub const SHT_NOBITS: u32 = 8;
/// `PAGE_SIZE` (4 KiB on all four kernels).
pub const PAGE_SIZE: u64 = 4096;
/// `sizeof(Elf64_Sym)`.
pub const ELF_SYM_SIZE: u64 = 24;
/// `sizeof(struct mod_kallsyms)` on 64-bit (and its alignment, 8).
pub const MOD_KALLSYMS_SIZE: u64 = 32;

/// The module area of the architecture: `[MODULES_VADDR, MODULES_END)` without KASLR's random
/// offset (the simulator places modules deterministically).
pub fn module_area(profile: &Profile) -> (u64, u64) {
    match profile.arch() {
        // arch/x86/include/asm/pgtable_64_types.h: __START_KERNEL_map + KERNEL_IMAGE_SIZE.
        Arch::X86_64 => (0xffff_ffff_c000_0000, 0xffff_ffff_ff00_0000),
        Arch::Aarch64 => match profile.version() {
            // arch/arm64/include/asm/memory.h: MODULES_VADDR = _PAGE_END(VA_BITS_MIN = 48),
            // MODULES_VSIZE 128 MiB; with CONFIG_ARM64_MODULE_PLTS, module_alloc() falls back
            // to a 2 GiB window from module_alloc_base when that is full
            // (arch/arm64/kernel/module.c), so modules can use 2 GiB.
            KernelVersion::V6_1 => (0xffff_8000_0000_0000, 0xffff_8000_8000_0000),
            // arch/arm64/mm/init.c module_init_limits(): the fallback window is
            // [kernel_end - 2 GiB, kernel_end), so every module reaches every kernel symbol
            // with a 32-bit PC-relative reference. The simulated image ends 64 MiB after its base.
            KernelVersion::V6_12 => {
                let kernel_end = kernel_image_base(profile) + KERNEL_IMAGE_SPAN;
                (kernel_end - (2 << 30), kernel_image_base(profile))
            }
        },
    }
}

/// How much address space the simulated kernel image takes (its symbols and per-cpu area).
const KERNEL_IMAGE_SPAN: u64 = 0x0400_0000;

/// Where the simulator puts vmlinux's symbols: the kernel image's text base.
pub fn kernel_image_base(profile: &Profile) -> u64 {
    match profile.arch() {
        Arch::X86_64 => 0xffff_ffff_8100_0000,
        // KIMAGE_VADDR = MODULES_END = MODULES_VADDR + MODULES_VSIZE on arm64.
        Arch::Aarch64 => match profile.version() {
            KernelVersion::V6_1 => 0xffff_8000_0800_0000 + 0x1_0000,
            KernelVersion::V6_12 => 0xffff_8000_8000_0000 + 0x1_0000,
        },
    }
}

/// The `__percpu` address the simulator's per-cpu module reserve starts at. Per-cpu pointers
/// are offsets from `__per_cpu_start` (`__addr_to_pcpu_ptr()`): 0-based on x86_64, inside the
/// kernel image on arm64 — so a module's `adrp` to its per-cpu data reaches it.
pub fn percpu_base(profile: &Profile) -> u64 {
    match profile.arch() {
        Arch::X86_64 => 0x0003_0000,
        Arch::Aarch64 => kernel_image_base(profile) + 0x0200_0000,
    }
}

/// `PAGE_ALIGN`.
pub fn page_align(x: u64) -> u64 {
    x.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

fn align(x: u64, a: u64) -> u64 {
    let a = if a == 0 { 1 } else { a };
    if a.is_power_of_two() {
        x.saturating_add(a - 1) & !(a - 1)
    } else {
        x.div_ceil(a).saturating_mul(a)
    }
}

/// The regions of 6.12's `enum mod_mem_type` (`MOD_TEXT`, `MOD_DATA`, ...), in its order; 6.1's
/// `core_layout` and `init_layout` map onto `Text` and `InitText`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemType {
    Text = 0,
    Data = 1,
    Rodata = 2,
    RoAfterInit = 3,
    InitText = 4,
    InitData = 5,
    InitRodata = 6,
}

impl MemType {
    /// Every type, in `for_each_mod_mem_type` order.
    pub const ALL: [MemType; 7] = [
        MemType::Text,
        MemType::Data,
        MemType::Rodata,
        MemType::RoAfterInit,
        MemType::InitText,
        MemType::InitData,
        MemType::InitRodata,
    ];

    /// True for the init regions, freed after a successful init.
    pub fn is_init(self) -> bool {
        matches!(
            self,
            MemType::InitText | MemType::InitData | MemType::InitRodata
        )
    }
}

/// What layout needs to know of a section (a view of the kernel's copy of its header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutSection {
    /// Section name.
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags` (as changed by the load path so far).
    pub flags: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_addralign`.
    pub addralign: u64,
}

/// Where one section was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The region.
    pub mem: MemType,
    /// Offset inside the region.
    pub offset: u64,
}

/// The result of layout: region sizes and a placement for every section that gets one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Region sizes (6.1: only `Text` = core and `InitText` = init are used).
    pub sizes: [u64; 7],
    /// Placement per section index (`None`: not placed).
    pub placements: Vec<Option<Placement>>,
    /// Offset of the core symbol table in the data region (`info->symoffs`).
    pub symoffs: u64,
}

impl Layout {
    /// The size of region `t`.
    pub fn size(&self, t: MemType) -> u64 {
        self.sizes[t as usize]
    }

    fn add(&mut self, t: MemType, s: &LayoutSection) -> u64 {
        let off = align(self.sizes[t as usize], s.addralign);
        self.sizes[t as usize] = off.saturating_add(s.size);
        off
    }
}

/// `module_init_layout_section()` with `CONFIG_MODULE_UNLOAD=y` (all four kernels): sections
/// whose name starts with `.init` (`module_init_section()`).
pub fn module_init_layout_section(name: &str) -> bool {
    name.starts_with(".init")
}

/// The `masks[][2]` table of `layout_sections()` (`ARCH_SHF_SMALL` is 0 on x86_64 and arm64).
const MASKS: [(u64, u64); 5] = [
    (SHF_EXECINSTR | SHF_ALLOC, 0),
    (SHF_ALLOC, SHF_WRITE),
    (SHF_RO_AFTER_INIT | SHF_ALLOC, 0),
    (SHF_WRITE | SHF_ALLOC, 0),
    (SHF_ALLOC, 0),
];

fn matches(s: &LayoutSection, m: usize) -> bool {
    let (want, not) = MASKS[m];
    s.flags & want == want && s.flags & not == 0
}

/// Models `layout_sections()` for the profile's version. `strict_rwx` is
/// `CONFIG_STRICT_MODULE_RWX` (6.1 page-aligns the parts of each layout with it).
pub fn layout_sections(
    version: KernelVersion,
    sections: &[LayoutSection],
    strict_rwx: bool,
) -> Layout {
    let mut l = Layout {
        placements: vec![None; sections.len()],
        ..Layout::default()
    };
    let strict = |x: u64| if strict_rwx { page_align(x) } else { x };
    match version {
        KernelVersion::V6_1 => {
            for is_init in [false, true] {
                let t = if is_init {
                    MemType::InitText
                } else {
                    MemType::Text
                };
                for m in 0..MASKS.len() {
                    for (i, s) in sections.iter().enumerate() {
                        if !matches(s, m)
                            || l.placements[i].is_some()
                            || module_init_layout_section(&s.name) != is_init
                        {
                            continue;
                        }
                        let offset = l.add(t, s);
                        l.placements[i] = Some(Placement { mem: t, offset });
                    }
                    // strict_align() after text (0), ro (1), ro_after_init (2, core only) and the whole (4).
                    if m != 3 && !(is_init && m == 2) {
                        l.sizes[t as usize] = strict(l.sizes[t as usize]);
                    }
                }
            }
        }
        KernelVersion::V6_12 => {
            const CORE: [Option<MemType>; 5] = [
                Some(MemType::Text),
                Some(MemType::Rodata),
                Some(MemType::RoAfterInit),
                Some(MemType::Data),
                Some(MemType::Data),
            ];
            const INIT: [Option<MemType>; 5] = [
                Some(MemType::InitText),
                Some(MemType::InitRodata),
                None,
                Some(MemType::InitData),
                Some(MemType::InitData),
            ];
            for is_init in [false, true] {
                for m in 0..MASKS.len() {
                    let Some(t) = (if is_init { INIT[m] } else { CORE[m] }) else {
                        continue;
                    };
                    for (i, s) in sections.iter().enumerate() {
                        if !matches(s, m)
                            || l.placements[i].is_some()
                            || module_init_layout_section(&s.name) != is_init
                        {
                            continue;
                        }
                        let offset = l.add(t, s);
                        l.placements[i] = Some(Placement { mem: t, offset });
                    }
                }
            }
        }
    }
    l
}

/// What `layout_symtab()` needs of the symbol table: the number of symbols, and the number and
/// total name length (with NULs) of those `is_core_symbol()` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymtabCounts {
    /// `nsrc`: all symbols.
    pub nsrc: u64,
    /// `ndst`: kept symbols (index 0 always).
    pub ndst: u64,
    /// `strtab_size`: their names' bytes, each with its NUL.
    pub strtab_size: u64,
}

/// Models `layout_symtab()` (kernel/module/kallsyms.c): the full symtab and strtab go to the end
/// of the init data (with a temporary `mod_kallsyms` and a type table), the kept core symbols,
/// their names and types to the end of the core data. `symtab`/`strtab` are the indices of
/// `.symtab`/`.strtab` in `sections`, which this places.
pub fn layout_symtab(
    version: KernelVersion,
    l: &mut Layout,
    sections: &[LayoutSection],
    symtab: usize,
    strtab: usize,
    counts: SymtabCounts,
    strict_rwx: bool,
) {
    let strict = |x: u64| if strict_rwx { page_align(x) } else { x };
    let (data, init_data) = match version {
        KernelVersion::V6_1 => (MemType::Text, MemType::InitText),
        KernelVersion::V6_12 => (MemType::Data, MemType::InitData),
    };
    let (Some(sym), Some(str_)) = (sections.get(symtab), sections.get(strtab)) else {
        return;
    };
    let off = l.add(init_data, sym);
    if let Some(p) = l.placements.get_mut(symtab) {
        *p = Some(Placement {
            mem: init_data,
            offset: off,
        });
    }
    let symoffs = align(l.sizes[data as usize], sym.addralign);
    l.symoffs = symoffs;
    let mut size = symoffs.saturating_add(counts.ndst.saturating_mul(ELF_SYM_SIZE));
    size = size.saturating_add(counts.strtab_size);
    size = size.saturating_add(counts.ndst);
    l.sizes[data as usize] = match version {
        KernelVersion::V6_1 => strict(size),
        KernelVersion::V6_12 => size,
    };
    let off = l.add(init_data, str_);
    if let Some(p) = l.placements.get_mut(strtab) {
        *p = Some(Placement {
            mem: init_data,
            offset: off,
        });
    }
    let mut init = align(l.sizes[init_data as usize], 8);
    init = init
        .saturating_add(MOD_KALLSYMS_SIZE)
        .saturating_add(counts.nsrc);
    l.sizes[init_data as usize] = match version {
        KernelVersion::V6_1 => strict(init),
        KernelVersion::V6_12 => init,
    };
}

/// The allocated size of each region: 6.12's `module_memory_alloc()` page-aligns every
/// non-empty one; 6.1's layouts are already page-aligned by `strict_align()`.
pub fn allocated_sizes(version: KernelVersion, l: &Layout) -> [u64; 7] {
    let mut s = l.sizes;
    if version == KernelVersion::V6_12 {
        for x in &mut s {
            *x = page_align(*x);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(name: &str, flags: u64, size: u64, align: u64) -> LayoutSection {
        LayoutSection {
            name: name.into(),
            sh_type: 1,
            flags,
            size,
            addralign: align,
        }
    }

    #[test]
    fn sections_are_grouped_text_ro_ro_after_init_data_and_init_goes_apart() {
        let s = vec![
            sec("", 0, 0, 0),
            sec(".text", SHF_ALLOC | SHF_EXECINSTR, 0x10, 16),
            sec(".init.text", SHF_ALLOC | SHF_EXECINSTR, 0x20, 16),
            sec(".rodata", SHF_ALLOC, 0x8, 8),
            sec(".data", SHF_ALLOC | SHF_WRITE, 0x4, 4),
            sec(
                ".data..ro_after_init",
                SHF_ALLOC | SHF_WRITE | SHF_RO_AFTER_INIT,
                0x4,
                4,
            ),
        ];
        let l = layout_sections(KernelVersion::V6_12, &s, true);
        assert_eq!(
            l.placements[1],
            Some(Placement {
                mem: MemType::Text,
                offset: 0
            })
        );
        assert_eq!(
            l.placements[2],
            Some(Placement {
                mem: MemType::InitText,
                offset: 0
            })
        );
        assert_eq!(
            l.placements[3],
            Some(Placement {
                mem: MemType::Rodata,
                offset: 0
            })
        );
        assert_eq!(
            l.placements[5],
            Some(Placement {
                mem: MemType::RoAfterInit,
                offset: 0
            })
        );
        assert_eq!(
            l.placements[4],
            Some(Placement {
                mem: MemType::Data,
                offset: 0
            })
        );
        let l = layout_sections(KernelVersion::V6_1, &s, true);
        assert_eq!(
            l.placements[3],
            Some(Placement {
                mem: MemType::Text,
                offset: 4096
            })
        );
        assert_eq!(
            l.placements[5],
            Some(Placement {
                mem: MemType::Text,
                offset: 8192
            })
        );
        assert_eq!(
            l.placements[4],
            Some(Placement {
                mem: MemType::Text,
                offset: 12288
            })
        );
        assert_eq!(l.size(MemType::Text), 16384);
        assert_eq!(l.size(MemType::InitText), 4096);
    }
}
