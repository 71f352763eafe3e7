//! Relocations as the kernel applies them to a module: `apply_relocate_add()` of
//! `arch/x86/kernel/module.c` and `arch/arm64/kernel/module.c`, and on arm64 the PLT sizing and
//! emission of `arch/arm64/kernel/module-plts.c` (`module_frob_arch_sections()`,
//! `module_emit_plt_entry()`, `module_emit_veneer_for_adrp()`), for Debian's 6.1 and 6.12
//! kernels.
//!
//! The inputs are minimal views of the module's ELF ([`RelocSection`], [`RelocSymbol`],
//! [`Rela`]); the output is the bytes written into [`Memory`] (little endian, exactly what the
//! kernel writes, including what it writes before it notices an overflow), the kernel log lines
//! and the errno of the first failing relocation.
//!
//! Order of use in the load path (`kernel/module/main.c`):
//! 1. `layout_and_allocate()` calls [`module_frob_arch_sections`] on the file image: on arm64
//!    it reorders the branch relocations of executable sections (in place), may raise the
//!    alignment of sections (erratum 843419) and gives `.plt`, `.init.plt` and the ftrace
//!    trampoline sections their type, flags, alignment and size ([`PltLayout`]).
//! 2. The sections are laid out and copied; `simplify_symbols()` computes every symbol's final
//!    value ([`RelocSymbol::value`]).
//! 3. `apply_relocations()` calls [`apply_relocate_add`] for every `SHT_RELA` section whose
//!    target is `SHF_ALLOC`, in section order, with one [`PltState`] shared by all of them
//!    (made by [`PltLayout::plt_state`]); the first error ends the load.
//!
//! *Invariants:* no input panics (relocation offsets, symbol indexes, addends and types are
//! untrusted); memory is only touched through [`Memory`]'s bounds-checked accessors; log lines
//! are the kernel's `printk` texts, including `pr_fmt` prefixes.
//!
//! Where the kernel would read or write outside mapped memory or read past the symbol table
//! (it checks neither `r_offset` nor the symbol index), the simulator fails instead: `EFAULT`
//! from [`Memory`] for an unmapped place, `ENOEXEC` for a symbol index past `symbols`, with no
//! log line in either case.

#![forbid(unsafe_code)]

pub mod aarch64;
pub mod insn;
pub mod plt;
pub mod x86_64;

#[cfg(test)]
mod oracle;

use std::collections::BTreeMap;

use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::Memory;
use crate::profile::{Arch, Profile};

pub use plt::{PltLayout, PltSec, PltState, SectionUpdate};

/// `SHT_SYMTAB`.
pub const SHT_SYMTAB: u32 = 2;
/// `SHT_RELA`.
pub const SHT_RELA: u32 = 4;
/// `SHT_NOBITS`.
pub const SHT_NOBITS: u32 = 8;
/// `SHT_REL`.
pub const SHT_REL: u32 = 9;
/// `SHF_WRITE`.
pub const SHF_WRITE: u64 = 0x1;
/// `SHF_ALLOC`.
pub const SHF_ALLOC: u64 = 0x2;
/// `SHF_EXECINSTR`.
pub const SHF_EXECINSTR: u64 = 0x4;
/// `SHN_UNDEF`.
pub const SHN_UNDEF: u16 = 0;

/// One `Elf64_Rela`, with `r_info` split into symbol index and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rela {
    /// `r_offset`: the place, relative to the target section's start.
    pub offset: u64,
    /// `ELF64_R_SYM(r_info)`: index into the symbol table.
    pub sym: u32,
    /// `ELF64_R_TYPE(r_info)`: the relocation type.
    pub r_type: u32,
    /// `r_addend`.
    pub addend: i64,
}

impl Rela {
    /// A relocation from the raw `Elf64_Rela` fields.
    pub fn from_raw(r_offset: u64, r_info: u64, r_addend: i64) -> Rela {
        Rela {
            offset: r_offset,
            sym: (r_info >> 32) as u32,
            r_type: r_info as u32,
            addend: r_addend,
        }
    }

    /// `r_info` (`ELF64_R_INFO(sym, type)`).
    pub fn info(&self) -> u64 {
        (u64::from(self.sym) << 32) | u64::from(self.r_type)
    }
}

/// One symbol table entry as relocation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelocSymbol {
    /// `st_value`. For [`apply_relocate_add`]: after `simplify_symbols()`, i.e. the absolute
    /// address (or the value of an `SHN_ABS` symbol, or 0 for an unresolved weak symbol). For
    /// [`module_frob_arch_sections`] it is not used.
    pub value: u64,
    /// `st_shndx` as in the file (arm64's PLT counting compares it with the relocated section's
    /// index).
    pub shndx: u16,
}

/// One section header as relocation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelocSection {
    /// The section's index in the section header table.
    pub index: usize,
    /// The section's name.
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`: for [`apply_relocate_add`] the section's final address in module memory.
    pub addr: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_info`: for a relocation section, the index of the section it relocates.
    pub info: u32,
    /// `sh_addralign` (arm64's erratum 843419 handling may raise it).
    pub addralign: u64,
}

/// What the CPU the module is loaded on has that relocation depends on (not a kernel
/// configuration: a property of the machine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cpu {
    /// The arm64 capability `ARM64_WORKAROUND_843419` is set: a Cortex-A53 r0p0..r0p4 (r0p4
    /// with REVIDR bit 8 is fixed) or a Brahma-B53 r0p0 (`arch/arm64/kernel/cpu_errata.c`).
    /// It only takes effect with `CONFIG_ARM64_ERRATUM_843419` (the capability does not exist
    /// otherwise). The recorder's qemu `cortex-a57` does not have it.
    pub arm64_workaround_843419: bool,
}

impl Cpu {
    /// `cpus_have_const_cap(ARM64_WORKAROUND_843419)` (6.1, with the `IS_ENABLED` check) or
    /// `cpus_have_final_cap()` (6.12): the workaround is active.
    pub(crate) fn erratum_843419(self, profile: &Profile) -> bool {
        self.arm64_workaround_843419 && profile.is_enabled("ARM64_ERRATUM_843419")
    }
}

/// The section with this index, if any.
pub(crate) fn section(sections: &[RelocSection], index: usize) -> Option<&RelocSection> {
    match sections.get(index) {
        Some(s) if s.index == index => Some(s),
        _ => sections.iter().find(|s| s.index == index),
    }
}

/// What the kernel prints for `%p` of `addr`. The kernel prints a hash of the pointer keyed
/// with a random per-boot siphash key (`ptr_to_id()` in `lib/vsprintf.c`): 16 hex digits whose
/// upper 8 are zero on 64-bit. That value cannot be reproduced; the simulator prints the same
/// shape with a fixed 32-bit mix of the address instead (deterministic, never the address).
pub fn hashed_pointer(addr: u64) -> String {
    // splitmix64's finalizer, truncated to 32 bits
    let mut z = addr.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{:016x}", z & 0xffff_ffff)
}

/// `apply_relocate_add()` (`arch/x86/kernel/module.c`, `arch/arm64/kernel/module.c`): apply
/// the relocations `relas` of section `relsec_index` (whose `sh_info` names the section they
/// relocate) to module memory, for the profile's architecture and version. See
/// [`x86_64::apply_relocate_add`] and [`aarch64::apply_relocate_add`] for the differences
/// between 6.1 and 6.12.
///
/// `relas` are the section's entries in their current order (after
/// [`module_frob_arch_sections`] reordered them on arm64); `symbols` is the whole symbol table
/// (index 0 is the null symbol) after `simplify_symbols()`; `plt` is the module's PLT state,
/// shared by every call for one module (unused on x86_64; [`PltState::default`] there).
///
/// Fails with `ENOEXEC` and the kernel's message for an unknown type, an overflow or (x86_64) a
/// nonzero place, like the kernel; with `ENOEXEC` for a relocation section `sections` lacks or
/// a symbol index past `symbols`, and `EFAULT` for a place outside mapped memory (the kernel
/// does not check these).
#[allow(clippy::too_many_arguments)] // the kernel's inputs, one by one
pub fn apply_relocate_add(
    profile: &Profile,
    modname: &str,
    sections: &[RelocSection],
    symbols: &[RelocSymbol],
    relsec_index: usize,
    relas: &[Rela],
    memory: &mut Memory,
    plt: &mut PltState,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let relsec = section(sections, relsec_index).ok_or(Errno::ENOEXEC)?;
    let target = section(sections, relsec.info as usize).ok_or(Errno::ENOEXEC)?;
    let base = target.addr;
    match profile.arch() {
        Arch::X86_64 => {
            x86_64::apply_relocate_add(profile, modname, base, symbols, relas, memory, log)
        }
        Arch::Aarch64 => aarch64::apply_relocate_add(
            profile, modname, sections, base, symbols, relas, memory, plt, log,
        ),
    }
}

/// `module_frob_arch_sections()`: the architecture's look at the sections before layout.
///
/// - x86_64 has none: the kernel's `__weak` default returns 0 and changes nothing, so this
///   returns an empty [`PltLayout`].
/// - arm64: [`plt::module_frob_arch_sections`] (6.1: only with `CONFIG_ARM64_MODULE_PLTS`,
///   otherwise the weak default too).
///
/// `relas_by_section` maps the index of each `SHT_RELA` section to its entries; on arm64 the
/// entries of sections relocating executable code are reordered in place (the kernel sorts the
/// file image, and that order is the one later applied). Fails with `ENOEXEC` and the kernel's
/// message when `.plt`/`.init.plt` or the symbol table is missing (arm64).
pub fn module_frob_arch_sections(
    profile: &Profile,
    cpu: Cpu,
    modname: &str,
    sections: &[RelocSection],
    relas_by_section: &mut BTreeMap<usize, Vec<Rela>>,
    symbols: &[RelocSymbol],
    log: &mut KernelLog,
) -> Result<PltLayout, Errno> {
    match profile.arch() {
        Arch::X86_64 => Ok(PltLayout::default()),
        Arch::Aarch64 => plt::module_frob_arch_sections(
            profile,
            cpu,
            modname,
            sections,
            relas_by_section,
            symbols,
            log,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::RegionKind;
    use proptest::prelude::*;

    const BASE: u64 = 0xffff_8000_0000_0000;

    fn arb_rela() -> impl Strategy<Value = Rela> {
        (
            prop_oneof![0u64..0x3000, any::<u64>()],
            0u32..6,
            prop_oneof![0u32..300, any::<u32>()],
            prop_oneof![-64i64..64, any::<i64>()],
        )
            .prop_map(|(offset, sym, r_type, addend)| Rela {
                offset,
                sym,
                r_type,
                addend,
            })
    }

    fn arb_value() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            (0u64..0x4000).prop_map(|o| BASE + o),
            (0u64..0x4000).prop_map(|o| BASE.wrapping_sub(o << 20)),
            any::<u64>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// No input makes frob or relocation panic; failures are errnos.
        #[test]
        fn no_input_panics(
            profile_idx in 0usize..4,
            erratum in any::<bool>(),
            relas in proptest::collection::vec(arb_rela(), 0..40),
            values in proptest::collection::vec(arb_value(), 5),
            shndx in proptest::collection::vec(0u16..6, 5),
            text_addr in prop_oneof![Just(BASE), Just(BASE + 0xff0), Just(BASE + 0x2ff8)],
            plt_addr in prop_oneof![Just(BASE + 0x5000), Just(BASE + 0x5ff8), Just(BASE + 0x1_0000_0000)],
            info in prop_oneof![Just(1u32), 0u32..10, any::<u32>()],
            names in proptest::collection::vec(prop_oneof![Just(".plt"), Just(".init.plt"), Just(".text"), Just(".init.text"), Just(".exit.text")], 2),
        ) {
            let profile = Profile::builtin(Profile::names()[profile_idx]).unwrap();
            let s = |index: usize, name: &str, sh_type: u32, flags: u64, addr: u64, info: u32| RelocSection {
                index,
                name: name.into(),
                sh_type,
                flags,
                addr,
                size: 0x3000,
                info,
                addralign: 8,
            };
            let sections = vec![
                s(0, "", 0, 0, 0, 0),
                s(1, names[0], 1, SHF_ALLOC | SHF_EXECINSTR, text_addr, 0),
                s(2, ".rela.text", SHT_RELA, 0, 0, info),
                s(3, names[1], 1, SHF_ALLOC | SHF_EXECINSTR, plt_addr, 0),
                s(4, ".init.plt", 1, SHF_ALLOC, plt_addr + 0x100, 0),
                s(5, ".symtab", SHT_SYMTAB, 0, 0, 0),
            ];
            let symbols: Vec<RelocSymbol> = values
                .iter()
                .zip(&shndx)
                .map(|(&value, &shndx)| RelocSymbol { value, shndx })
                .collect();
            let mut log = KernelLog::new();
            let mut by = BTreeMap::from([(2usize, relas)]);
            let cpu = Cpu { arm64_workaround_843419: erratum };
            let layout = module_frob_arch_sections(profile, cpu, "m", &sections, &mut by, &symbols, &mut log);
            let mut plt = layout
                .map(|l| l.plt_state(vec![(plt_addr + 0x100, 0x100)]))
                .unwrap_or_default();
            let mut mem = Memory::new(1 << 20);
            let _ = mem.alloc(text_addr, 0x3000, RegionKind::Module, "text");
            let _ = mem.alloc(plt_addr, 0x200, RegionKind::Module, "plt");
            let relas = by.remove(&2).unwrap_or_default();
            let _ = apply_relocate_add(profile, "m", &sections, &symbols, 2, &relas, &mut mem, &mut plt, &mut log);
        }
    }

    #[test]
    fn rela_info_round_trips_and_sections_are_found_by_index() {
        let r = Rela::from_raw(0x10, (7 << 32) | 283, -4);
        assert_eq!((r.sym, r.r_type, r.info()), (7, 283, (7 << 32) | 283));
        let s = |index| RelocSection {
            index,
            name: String::new(),
            sh_type: 0,
            flags: 0,
            addr: index as u64,
            size: 0,
            info: 0,
            addralign: 0,
        };
        let v = vec![s(0), s(3), s(1)];
        assert_eq!(section(&v, 1).map(|s| s.addr), Some(1));
        assert_eq!(section(&v, 0).map(|s| s.addr), Some(0));
        assert!(section(&v, 2).is_none());
        assert_eq!(hashed_pointer(0x1234).len(), 16);
        assert!(hashed_pointer(0x1234).starts_with("00000000"));
    }
}
