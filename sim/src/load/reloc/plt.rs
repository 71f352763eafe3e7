//! arm64 module PLTs: `arch/arm64/kernel/module-plts.c` and `struct plt_entry` /
//! `is_forbidden_offset_for_adrp()` of `arch/arm64/include/asm/module.h`.
//!
//! [`module_frob_arch_sections`] sizes the PLT sections before layout;
//! [`module_emit_plt_entry`] and [`module_emit_veneer_for_adrp`] fill them during relocation.
//!
//! 6.1 vs 6.12:
//!
//! | | 6.1 | 6.12 |
//! |---|---|---|
//! | compiled | only with `CONFIG_ARM64_MODULE_PLTS` (else the weak `module_frob_arch_sections()` does nothing and no PLT is emitted) | always |
//! | branch relocations partitioned, sorted, counted | only with `CONFIG_RANDOMIZE_BASE` | always |
//! | sort | `lib/sort.c` heapsort, one root extraction per round | the 6.12 heapsort (two extractions per round, `>` instead of `>=` when choosing the child): equal keys may end in another order |
//! | ftrace trampolines | `.text.ftrace_trampoline`, `NR_FTRACE_PLTS` = 2 entries | `.text.ftrace_trampoline` and `.init.text.ftrace_trampoline`, 1 entry each |
//! | init PLT chosen when the place is | in `init_layout` (`loc - base < size`) | in one of the `MOD_INIT_*` regions (`within_module_init()`) |
//!
//! `get_plt_entry()`, `plt_entries_equal()`, the veneer and the counting rules are otherwise the
//! same in both.
//!
//! The kernel's `WARN_ON(plt_num_entries > plt_max_entries)` prints a warning with a register
//! dump and stack trace; the simulator logs its first line (without the CPU/PID/offsets, which
//! belong to the machine and the build), then `---[ end trace 0000000000000000 ]---`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::Memory;
use crate::profile::{KernelVersion, Profile};

use super::aarch64::{R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADR_PREL_PG_HI21_NC};
use super::aarch64::{R_AARCH64_CALL26, R_AARCH64_JUMP26};
use super::insn;
use super::{
    Cpu, Rela, RelocSection, RelocSymbol, SHF_ALLOC, SHF_EXECINSTR, SHN_UNDEF, SHT_NOBITS,
    SHT_RELA, SHT_SYMTAB, section,
};

/// `sizeof(struct plt_entry)`: three instructions.
pub const PLT_ENTRY_SIZE: u64 = 12;
/// `L1_CACHE_BYTES` on arm64: the alignment given to `.plt` and `.init.plt`.
pub const L1_CACHE_BYTES: u64 = 64;
/// `__alignof__(struct plt_entry)`: the alignment given to the ftrace trampoline sections.
pub const PLT_ENTRY_ALIGN: u64 = 4;
/// `sizeof(Elf64_Rela)`, the element size the kernel's `sort()` works with.
const RELA_SIZE: usize = 24;

/// `struct plt_entry`: `adrp x16, dst; add x16, x16, #:lo12:dst; br x16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PltEntry {
    /// `adrp x16, ...` (or, for a veneer, `adrp xN, ...`).
    pub adrp: u32,
    /// `add x16, x16, #...`.
    pub add: u32,
    /// `br x16` (or, for a veneer, `b <place + 4>`).
    pub br: u32,
}

impl PltEntry {
    /// The entry as it lies in memory (three little-endian words).
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.adrp.to_le_bytes());
        b[4..8].copy_from_slice(&self.add.to_le_bytes());
        b[8..].copy_from_slice(&self.br.to_le_bytes());
        b
    }

    /// Read an entry from memory.
    pub fn read(mem: &Memory, addr: u64) -> Result<PltEntry, Errno> {
        Ok(PltEntry {
            adrp: mem.read_u32(addr)?,
            add: mem.read_u32(addr.wrapping_add(4))?,
            br: mem.read_u32(addr.wrapping_add(8))?,
        })
    }
}

/// `__get_adrp_add_pair()`: `adrp Xreg, dst` (relative to `pc`) and `add Xreg, Xreg,
/// #(dst % 4096)`. The ADRP is [`insn::AARCH64_BREAK_FAULT`] when `dst` is out of its
/// +-4 GiB range.
fn get_adrp_add_pair(dst: u64, pc: u64, reg: u32, log: &mut KernelLog) -> (u32, u32) {
    let adrp = insn::gen_adr(pc, dst, reg, true, log);
    let add = insn::gen_add_imm64(reg, reg, (dst % 4096) as i32, log);
    (adrp, add)
}

/// `get_plt_entry()` (identical in 6.1 and 6.12): the PLT entry at `pc` that branches to
/// `dst` through x16. Also what `module_finalize()` puts in the ftrace trampolines.
pub fn get_plt_entry(dst: u64, pc: u64, log: &mut KernelLog) -> PltEntry {
    let br = insn::gen_branch_reg(16, log);
    let (adrp, add) = get_adrp_add_pair(dst, pc, 16, log);
    PltEntry { adrp, add, br }
}

/// The kernel's `BUG_ON()` in `aarch64_insn_adrp_get_offset()` was hit.
struct Bug;

/// `plt_entries_equal()`: whether entry `a` at `a_addr` and `b` at `b_addr` reach the same
/// target.
fn plt_entries_equal(a: PltEntry, a_addr: u64, b: PltEntry, b_addr: u64) -> Result<bool, Bug> {
    if a.add != b.add || a.br != b.br {
        return Ok(false);
    }
    let p = a_addr & !0xfff;
    let q = b_addr & !0xfff;
    if a.adrp == b.adrp && p == q {
        return Ok(true);
    }
    let oa = insn::adrp_get_offset(a.adrp).ok_or(Bug)?;
    let ob = insn::adrp_get_offset(b.adrp).ok_or(Bug)?;
    Ok(p.wrapping_add(i64::from(oa) as u64) == q.wrapping_add(i64::from(ob) as u64))
}

/// `struct mod_plt_sec`: one PLT section of a module and how much of it is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PltSec {
    /// `plt_shndx`: index of the `.plt` (or `.init.plt`) section; 0 when there is none.
    pub shndx: usize,
    /// `plt_num_entries`: entries used (veneer slots and skipped slots included).
    pub num_entries: i32,
    /// `plt_max_entries`: entries counted by [`module_frob_arch_sections`].
    pub max_entries: i32,
}

/// `mod->arch` during relocation: the module's two PLT sections, where its init memory is (to
/// choose between them), and whether the erratum 843419 workaround is active. One value per
/// module, shared by every [`super::apply_relocate_add`] call. [`PltState::default`] has no
/// PLT (x86_64, or 6.1 without `CONFIG_ARM64_MODULE_PLTS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PltState {
    /// `mod->arch.core`.
    pub core: PltSec,
    /// `mod->arch.init`.
    pub init: PltSec,
    /// The module's init memory as (base, size) pairs: on 6.1 the single `init_layout`, on
    /// 6.12 the `MOD_INIT_TEXT`, `MOD_INIT_DATA` and `MOD_INIT_RODATA` regions. A place `loc` is
    /// init when `loc - base < size` (wrapping) for one of them.
    pub init_ranges: Vec<(u64, u64)>,
    /// The ARM64_WORKAROUND_843419 capability is in effect (see [`Cpu`]).
    pub erratum_843419: bool,
}

impl PltState {
    fn in_init(&self, loc: u64) -> bool {
        self.init_ranges
            .iter()
            .any(|&(base, size)| loc.wrapping_sub(base) < size)
    }
}

/// What `module_frob_arch_sections()` sets in one section header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionUpdate {
    /// The section's index.
    pub index: usize,
    /// New `sh_type` (`SHT_NOBITS`).
    pub sh_type: u32,
    /// New `sh_flags` (`SHF_EXECINSTR | SHF_ALLOC`).
    pub flags: u64,
    /// New `sh_addralign`.
    pub addralign: u64,
    /// New `sh_size`.
    pub size: u64,
}

/// The result of `module_frob_arch_sections()`: every section header change, and the PLT
/// capacity for relocation. All `None`/empty on x86_64 and on 6.1 arm64 without
/// `CONFIG_ARM64_MODULE_PLTS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PltLayout {
    /// `.plt`: NOBITS, AX, align 64, size (core entries + 1) * 12.
    pub core_plt: Option<SectionUpdate>,
    /// `.init.plt`: NOBITS, AX, align 64, size (init entries + 1) * 12.
    pub init_plt: Option<SectionUpdate>,
    /// `.text.ftrace_trampoline`, if the module has one: NOBITS, AX, align 4, size
    /// `NR_FTRACE_PLTS` * 12 (2 entries on 6.1, 1 on 6.12).
    pub ftrace_trampoline: Option<SectionUpdate>,
    /// `.init.text.ftrace_trampoline` (6.12 only), same as `ftrace_trampoline`.
    pub init_ftrace_trampoline: Option<SectionUpdate>,
    /// Sections whose `sh_addralign` the erratum 843419 handling raised: (index, new
    /// alignment), in the order they were last raised.
    pub raised_alignments: Vec<(usize, u64)>,
    /// `mod->arch.core.plt_max_entries`.
    pub core_max_entries: i32,
    /// `mod->arch.init.plt_max_entries`.
    pub init_max_entries: i32,
    /// The ARM64_WORKAROUND_843419 capability is in effect.
    pub erratum_843419: bool,
}

impl PltLayout {
    /// The PLT state relocation starts from (no entry used), with the module's init memory
    /// (see [`PltState::init_ranges`]).
    pub fn plt_state(&self, init_ranges: Vec<(u64, u64)>) -> PltState {
        PltState {
            core: PltSec {
                shndx: self.core_plt.map_or(0, |u| u.index),
                num_entries: 0,
                max_entries: self.core_max_entries,
            },
            init: PltSec {
                shndx: self.init_plt.map_or(0, |u| u.index),
                num_entries: 0,
                max_entries: self.init_max_entries,
            },
            init_ranges,
            erratum_843419: self.erratum_843419,
        }
    }

    /// Every section header update, in the order the kernel makes them.
    pub fn updates(&self) -> impl Iterator<Item = SectionUpdate> + '_ {
        [
            self.core_plt,
            self.init_plt,
            self.ftrace_trampoline,
            self.init_ftrace_trampoline,
        ]
        .into_iter()
        .flatten()
    }

    /// Make the changes in `sections` (matched by [`RelocSection::index`]).
    pub fn apply(&self, sections: &mut [RelocSection]) {
        for &(index, align) in &self.raised_alignments {
            if let Some(s) = sections.iter_mut().find(|s| s.index == index) {
                s.addralign = align;
            }
        }
        for u in self.updates() {
            if let Some(s) = sections.iter_mut().find(|s| s.index == u.index) {
                s.sh_type = u.sh_type;
                s.flags = u.flags;
                s.addralign = u.addralign;
                s.size = u.size;
            }
        }
    }
}

/// The file and line of the `WARN_ON` in `module_emit_plt_entry()` / the veneer.
fn warn_site(profile: &Profile, veneer: bool) -> u32 {
    match (profile.version(), veneer) {
        (KernelVersion::V6_1, false) => 99,
        (KernelVersion::V6_1, true) => 116,
        (KernelVersion::V6_12, false) => 94,
        (KernelVersion::V6_12, true) => 111,
    }
}

fn warn_on(profile: &Profile, veneer: bool, log: &mut KernelLog) {
    let func = if veneer {
        "module_emit_veneer_for_adrp"
    } else {
        "module_emit_plt_entry"
    };
    log.warn("------------[ cut here ]------------");
    log.warn(format!(
        "WARNING: at arch/arm64/kernel/module-plts.c:{} {func}",
        warn_site(profile, veneer)
    ));
    log.warn("---[ end trace 0000000000000000 ]---");
}

/// The PLT section for `loc` (init or core) and its address; `None` when the module has none.
fn plt_sec<'a>(
    sections: &[RelocSection],
    plt: &'a mut PltState,
    loc: u64,
) -> Option<(&'a mut PltSec, u64, bool)> {
    let init = plt.in_init(loc);
    let erratum = plt.erratum_843419;
    let sec = if init { &mut plt.init } else { &mut plt.core };
    if sec.shndx == 0 {
        return None;
    }
    let base = section(sections, sec.shndx)?.addr;
    Some((sec, base, erratum))
}

fn slot(base: u64, i: i32) -> u64 {
    base.wrapping_add((i64::from(i) as u64).wrapping_mul(PLT_ENTRY_SIZE))
}

/// `module_emit_plt_entry()`: a PLT entry for the branch at `loc` to `sym + rela.addend` in
/// the init or core PLT (by where `loc` is), unless the previous entry already reaches the same
/// target; returns its address, or 0 when the section is full (after the kernel's `WARN_ON`; the
/// caller fails with `ENOEXEC`). An entry whose `adrp` would sit at a forbidden offset
/// (erratum 843419) skips a slot. The entry is written before the capacity check, as in the
/// kernel (into the spare slot frob reserves).
///
/// Returns 0 too when `plt` names no PLT section (not possible in the kernel, where
/// `module_frob_arch_sections()` fails first). `EFAULT` for a PLT outside mapped memory. Where
/// the kernel hits the `BUG_ON` of `aarch64_insn_adrp_get_offset()` (comparing with an entry
/// whose target was out of ADRP range), an oops that kills the loading process, the simulator
/// logs the BUG line and fails with `ENOEXEC`.
#[allow(clippy::too_many_arguments)] // the kernel's inputs, one by one
pub fn module_emit_plt_entry(
    profile: &Profile,
    sections: &[RelocSection],
    plt: &mut PltState,
    loc: u64,
    rela: &Rela,
    sym: &RelocSymbol,
    mem: &mut Memory,
    log: &mut KernelLog,
) -> Result<u64, Errno> {
    let Some((sec, base, erratum)) = plt_sec(sections, plt, loc) else {
        return Ok(0);
    };
    let val = sym.value.wrapping_add(rela.addend as u64);
    let mut i = sec.num_entries;
    let j = i.wrapping_sub(1);
    if erratum && slot(base, i) & 0xfff >= 0xff8 {
        i = i.wrapping_add(1);
    }
    let entry = get_plt_entry(val, slot(base, i), log);
    mem.write(slot(base, i), &entry.to_bytes())?;
    if j >= 0 {
        let prev = PltEntry::read(mem, slot(base, j))?;
        match plt_entries_equal(entry, slot(base, i), prev, slot(base, j)) {
            Ok(true) => return Ok(slot(base, j)),
            Ok(false) => {}
            Err(Bug) => {
                let line = match profile.version() {
                    KernelVersion::V6_1 => 1423,
                    KernelVersion::V6_12 => 1262,
                };
                log.print(
                    crate::log::Level::Emerg,
                    format!("kernel BUG at arch/arm64/lib/insn.c:{line}!"),
                );
                return Err(Errno::ENOEXEC);
            }
        }
    }
    sec.num_entries = sec.num_entries.wrapping_add(i.wrapping_sub(j));
    if sec.num_entries > sec.max_entries {
        warn_on(profile, false, log);
        return Ok(0);
    }
    Ok(slot(base, i))
}

/// `module_emit_veneer_for_adrp()` (only reached with the erratum 843419 workaround): a veneer
/// `adrp Xd, val; add Xd, Xd, #0; b loc+4` for the ADRP at `loc` (Xd its destination
/// register) in the init or core PLT; returns its address, or 0 when the section is full (after
/// the kernel's `WARN_ON`). Never deduplicated. A slot whose `adrp` would sit at a forbidden
/// offset is skipped (that second increment is not checked against the capacity, as in the
/// kernel). `val` is page aligned, so the `add` immediate is 0.
pub fn module_emit_veneer_for_adrp(
    profile: &Profile,
    sections: &[RelocSection],
    plt: &mut PltState,
    loc: u64,
    val: u64,
    mem: &mut Memory,
    log: &mut KernelLog,
) -> Result<u64, Errno> {
    let Some((sec, base, erratum)) = plt_sec(sections, plt, loc) else {
        return Ok(0);
    };
    let mut i = sec.num_entries;
    sec.num_entries = sec.num_entries.wrapping_add(1);
    if sec.num_entries > sec.max_entries {
        warn_on(profile, true, log);
        return Ok(0);
    }
    if erratum && slot(base, i) & 0xfff >= 0xff8 {
        i = sec.num_entries;
        sec.num_entries = sec.num_entries.wrapping_add(1);
    }
    let rd = insn::decode_register_rd(mem.read_u32(loc)?);
    let br = insn::gen_branch_imm(
        slot(base, i).wrapping_add(8),
        loc.wrapping_add(4),
        false,
        log,
    );
    let (adrp, add) = get_adrp_add_pair(val, slot(base, i), rd, log);
    mem.write(slot(base, i), &PltEntry { adrp, add, br }.to_bytes())?;
    Ok(slot(base, i))
}

/// `cmp_rela()`: by type, symbol index, then addend (signed).
fn cmp_rela(x: &Rela, y: &Rela) -> Ordering {
    (x.r_type, x.sym, x.addend).cmp(&(y.r_type, y.sym, y.addend))
}

/// `duplicate_rel()`: entry `num` equals entry `num - 1` by [`cmp_rela`].
fn duplicate_rel(rela: &[Rela], num: usize) -> bool {
    num > 0
        && matches!((rela.get(num), rela.get(num - 1)), (Some(a), Some(b)) if cmp_rela(a, b) == Ordering::Equal)
}

/// The file-image `st_shndx` of a symbol; `SHN_UNDEF` for an index past the table (where the
/// kernel would read past its symbol table).
fn sym_shndx(syms: &[RelocSymbol], index: u32) -> u16 {
    syms.get(index as usize).map_or(SHN_UNDEF, |s| s.shndx)
}

/// `branch_rela_needs_plt()`: a JUMP26/CALL26 against a symbol of another section.
fn branch_rela_needs_plt(syms: &[RelocSymbol], rela: &Rela, dstidx: u32) -> bool {
    if u32::from(sym_shndx(syms, rela.sym)) == dstidx {
        return false;
    }
    rela.r_type == R_AARCH64_JUMP26 || rela.r_type == R_AARCH64_CALL26
}

/// `partition_branch_plt_relas()`: move the branches that may need a PLT to the front; returns
/// how many (the kernel's loop never looks at the element where `i` meets `j`, so it can miss
/// one). Nothing to do without `CONFIG_RANDOMIZE_BASE` on 6.1.
fn partition_branch_plt_relas(
    profile: &Profile,
    syms: &[RelocSymbol],
    rela: &mut [Rela],
    dstidx: u32,
) -> usize {
    if profile.version() == KernelVersion::V6_1 && !profile.is_enabled("RANDOMIZE_BASE") {
        return 0;
    }
    if rela.is_empty() {
        return 0;
    }
    let (mut i, mut j) = (0usize, rela.len() - 1);
    while i < j {
        let needs = |k: usize| {
            rela.get(k)
                .is_some_and(|r| branch_rela_needs_plt(syms, r, dstidx))
        };
        if needs(i) {
            i += 1;
        } else if needs(j) {
            rela.swap(i, j);
        } else {
            j -= 1;
        }
    }
    i
}

fn cmp_at(v: &[Rela], x: usize, y: usize) -> i32 {
    match (v.get(x / RELA_SIZE), v.get(y / RELA_SIZE)) {
        (Some(a), Some(b)) => cmp_rela(a, b) as i32,
        _ => 0,
    }
}

fn swap_at(v: &mut [Rela], x: usize, y: usize) {
    let (x, y) = (x / RELA_SIZE, y / RELA_SIZE);
    if x < v.len() && y < v.len() {
        v.swap(x, y);
    }
}

/// `parent()` of `lib/sort.c`, on byte offsets.
fn parent(i: usize, lsbit: usize, size: usize) -> usize {
    let mut i = i.wrapping_sub(size);
    if i & lsbit != 0 {
        i = i.wrapping_sub(size);
    }
    i / 2
}

/// `sort(rels, n, sizeof(Elf64_Rela), cmp_rela, NULL)`: the kernel's heapsort (`lib/sort.c`)
/// of the profile's version, step for step (on byte offsets, as the C code), so that entries
/// with equal keys end in the kernel's order.
fn kernel_sort(profile: &Profile, v: &mut [Rela]) {
    let size = RELA_SIZE;
    let lsbit = size & size.wrapping_neg();
    let num = v.len();
    let mut n = num * size;
    let mut a = (num / 2) * size;
    if a == 0 {
        return;
    }
    let v6_12 = profile.version() == KernelVersion::V6_12;
    let mut shift = 0u32;
    loop {
        if a != 0 {
            a -= size << shift;
        } else if !v6_12 {
            n -= size;
            if n == 0 {
                break;
            }
            swap_at(v, 0, n);
        } else if n > 3 * size {
            n -= size;
            swap_at(v, 0, n);
            shift = u32::from(cmp_at(v, size, 2 * size) <= 0);
            a = size << shift;
            n -= size;
            swap_at(v, a, n);
        } else {
            break;
        }
        // sift "a" down: find the path to the leaves, then back up
        let mut b = a;
        let (mut c, mut d);
        loop {
            c = 2 * b + size;
            d = c + size;
            if d >= n {
                break;
            }
            let cmp = cmp_at(v, c, d);
            b = if (v6_12 && cmp > 0) || (!v6_12 && cmp >= 0) {
                c
            } else {
                d
            };
        }
        if d == n {
            b = c;
        }
        while b != a && cmp_at(v, a, b) >= 0 {
            b = parent(b, lsbit, size);
        }
        let c = b;
        while b != a {
            b = parent(b, lsbit, size);
            swap_at(v, b, c);
        }
    }
    if v6_12 {
        n -= size;
        swap_at(v, 0, n);
        if n == size * 2 && cmp_at(v, 0, size) > 0 {
            swap_at(v, 0, size);
        }
    }
}

/// `count_plts()`: PLT slots for the relocations `rela` of section `dstidx`: one per branch to
/// another section's symbol unless it repeats the previous relocation with addend 0 (6.1: only
/// with `CONFIG_RANDOMIZE_BASE`); with the erratum workaround, one veneer slot per ADRP whose
/// offset ends in 0xff8..0xfff (bits `[11:3]` all ones), and for the others the section's
/// alignment is raised so that they cannot land there; plus one slot in 341 as slack.
fn count_plts(
    profile: &Profile,
    erratum: bool,
    syms: &[RelocSymbol],
    rela: &[Rela],
    dstidx: u32,
    align: &mut u64,
) -> u32 {
    let v6_1 = profile.version() == KernelVersion::V6_1;
    let mut ret: u32 = 0;
    for (i, r) in rela.iter().enumerate() {
        match r.r_type {
            R_AARCH64_JUMP26 | R_AARCH64_CALL26 => {
                if v6_1 && !profile.is_enabled("RANDOMIZE_BASE") {
                    continue;
                }
                if u32::from(sym_shndx(syms, r.sym)) == dstidx {
                    continue;
                }
                if r.addend != 0 || !duplicate_rel(rela, i) {
                    ret = ret.wrapping_add(1);
                }
            }
            R_AARCH64_ADR_PREL_PG_HI21_NC | R_AARCH64_ADR_PREL_PG_HI21 => {
                if !erratum {
                    continue;
                }
                // 2 << ffz(r_offset | 7); for an all-ones offset arm64's LSL by 64 is by 0
                let min_align = 2u64.wrapping_shl((r.offset | 7).trailing_ones());
                if min_align > 4096 {
                    ret = ret.wrapping_add(1);
                } else {
                    *align = (*align).max(min_align);
                }
            }
            _ => {}
        }
    }
    if erratum {
        ret = ret.wrapping_add(ret.div_ceil(4096 / PLT_ENTRY_SIZE as u32));
    }
    ret
}

/// `module_init_layout_section()` (`kernel/module/main.c`, the same in Debian's 6.1 and in
/// 6.12): `.init*`, and `.exit*` when the module cannot be unloaded.
fn module_init_layout_section(profile: &Profile, name: &str) -> bool {
    (!profile.is_enabled("MODULE_UNLOAD") && name.starts_with(".exit")) || name.starts_with(".init")
}

/// `module_frob_arch_sections()` of `arch/arm64/kernel/module-plts.c` (6.1: only with
/// `CONFIG_ARM64_MODULE_PLTS`; without it the kernel's weak default changes nothing and this
/// returns an empty [`PltLayout`]).
///
/// `sections` in index order. For every `SHT_RELA` section relocating an `SHF_EXECINSTR`
/// section, its entries in `relas_by_section` (by the relocation section's index) are
/// partitioned and the branch prefix sorted in place, then counted into the core or init PLT
/// (by the relocated section's name). Returns the section header changes and the capacities.
///
/// Fails with `ENOEXEC` after `%s: module PLT section(s) missing` when `.plt` or `.init.plt`
/// is absent, or `%s: module symtab section missing` without an `SHT_SYMTAB` section.
pub fn module_frob_arch_sections(
    profile: &Profile,
    cpu: Cpu,
    modname: &str,
    sections: &[RelocSection],
    relas_by_section: &mut BTreeMap<usize, Vec<Rela>>,
    symbols: &[RelocSymbol],
    log: &mut KernelLog,
) -> Result<PltLayout, Errno> {
    let v6_12 = profile.version() == KernelVersion::V6_12;
    let erratum = cpu.erratum_843419(profile);
    if !v6_12 && !profile.is_enabled("ARM64_MODULE_PLTS") {
        return Ok(PltLayout {
            erratum_843419: erratum,
            ..PltLayout::default()
        });
    }
    let (mut core_shndx, mut init_shndx) = (0usize, 0usize);
    let (mut tramp, mut init_tramp, mut have_syms) = (None, None, false);
    for s in sections {
        match s.name.as_str() {
            ".plt" => core_shndx = s.index,
            ".init.plt" => init_shndx = s.index,
            ".text.ftrace_trampoline" => tramp = Some(s.index),
            ".init.text.ftrace_trampoline" if v6_12 => init_tramp = Some(s.index),
            _ if s.sh_type == SHT_SYMTAB => have_syms = true,
            _ => {}
        }
    }
    if core_shndx == 0 || init_shndx == 0 {
        log.err(format!("{modname}: module PLT section(s) missing"));
        return Err(Errno::ENOEXEC);
    }
    if !have_syms {
        log.err(format!("{modname}: module symtab section missing"));
        return Err(Errno::ENOEXEC);
    }

    let mut align: BTreeMap<usize, u64> = BTreeMap::new();
    let mut raised: Vec<(usize, u64)> = Vec::new();
    let (mut core_plts, mut init_plts) = (0u64, 0u64);
    for s in sections.iter().filter(|s| s.sh_type == SHT_RELA) {
        let dstidx = s.info;
        let Some(dst) = section(sections, dstidx as usize) else {
            continue; // sh_info out of range: the kernel reads past the headers
        };
        if dst.flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let mut empty = Vec::new();
        let rels = relas_by_section.get_mut(&s.index).unwrap_or(&mut empty);
        let nents = partition_branch_plt_relas(profile, symbols, rels, dstidx);
        if nents > 0
            && let Some(prefix) = rels.get_mut(..nents)
        {
            kernel_sort(profile, prefix);
        }
        let cur = align.entry(dst.index).or_insert(dst.addralign);
        let before = *cur;
        let n = count_plts(profile, erratum, symbols, rels, dstidx, cur);
        if *cur != before {
            raised.retain(|&(i, _)| i != dst.index);
            raised.push((dst.index, *cur));
        }
        if module_init_layout_section(profile, &dst.name) {
            init_plts = init_plts.wrapping_add(u64::from(n));
        } else {
            core_plts = core_plts.wrapping_add(u64::from(n));
        }
    }

    let plt_update = |index: usize, n: u64| SectionUpdate {
        index,
        sh_type: SHT_NOBITS,
        flags: SHF_EXECINSTR | SHF_ALLOC,
        addralign: L1_CACHE_BYTES,
        size: n.wrapping_add(1).wrapping_mul(PLT_ENTRY_SIZE),
    };
    let nr_ftrace_plts: u64 = if v6_12 { 1 } else { 2 };
    let tramp_update = |index: usize| SectionUpdate {
        index,
        sh_type: SHT_NOBITS,
        flags: SHF_EXECINSTR | SHF_ALLOC,
        addralign: PLT_ENTRY_ALIGN,
        size: nr_ftrace_plts * PLT_ENTRY_SIZE,
    };
    Ok(PltLayout {
        core_plt: Some(plt_update(core_shndx, core_plts)),
        init_plt: Some(plt_update(init_shndx, init_plts)),
        ftrace_trampoline: tramp.map(tramp_update),
        init_ftrace_trampoline: init_tramp.map(tramp_update),
        raised_alignments: raised,
        core_max_entries: core_plts as i32,
        init_max_entries: init_plts as i32,
        erratum_843419: erratum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::reloc::aarch64::tests::profile;
    use crate::load::reloc::aarch64::{
        R_AARCH64_ABS64, R_AARCH64_ADR_PREL_PG_HI21, apply_relocate_add,
    };
    use crate::memory::RegionKind;
    use std::io::{Read, Write};

    /// An embedded arm64 profile with some `.config` options changed (`None`: unset).
    fn profile_with(v: &str, changes: &[(&str, Option<&str>)]) -> Profile {
        let path = format!(
            "{}/profiles/debian-{v}-arm64.json.gz",
            env!("CARGO_MANIFEST_DIR")
        );
        let gz = std::fs::read(path).unwrap();
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut json)
            .unwrap();
        let mut val: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let config = val["config"].as_object_mut().unwrap();
        for (k, v) in changes {
            match v {
                Some(v) => config.insert((*k).into(), (*v).into()),
                None => config.remove(*k),
            };
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&serde_json::to_vec(&val).unwrap()).unwrap();
        Profile::from_json_gz(&enc.finish().unwrap()).unwrap()
    }

    fn sec(index: usize, name: &str, sh_type: u32, flags: u64, info: u32) -> RelocSection {
        RelocSection {
            index,
            name: name.into(),
            sh_type,
            flags,
            addr: 0,
            size: 0x4000,
            info,
            addralign: 4,
        }
    }

    const AX: u64 = SHF_ALLOC | SHF_EXECINSTR;

    fn sections() -> Vec<RelocSection> {
        vec![
            sec(0, "", 0, 0, 0),
            sec(1, ".text", 1, AX, 0),
            sec(2, ".rela.text", SHT_RELA, 0x40, 1),
            sec(3, ".init.text", 1, AX, 0),
            sec(4, ".rela.init.text", SHT_RELA, 0x40, 3),
            sec(5, ".exit.text", 1, AX, 0),
            sec(6, ".rela.exit.text", SHT_RELA, 0x40, 5),
            sec(7, ".data", 1, SHF_ALLOC | 1, 0),
            sec(8, ".rela.data", SHT_RELA, 0x40, 7),
            sec(9, ".plt", 1, AX, 0),
            sec(10, ".init.plt", 1, SHF_ALLOC, 0),
            sec(11, ".text.ftrace_trampoline", 1, AX, 0),
            sec(12, ".init.text.ftrace_trampoline", 1, AX, 0),
            sec(13, ".symtab", SHT_SYMTAB, 0, 0),
        ]
    }

    fn symbols() -> Vec<RelocSymbol> {
        let s = |shndx| RelocSymbol { value: 0, shndx };
        // "", "a", "b", "local" (defined), "c"
        vec![s(0), s(0), s(0), s(1), s(0)]
    }

    fn r(offset: u64, r_type: u32, sym: u32, addend: i64) -> Rela {
        Rela {
            offset,
            sym,
            r_type,
            addend,
        }
    }

    fn relas(adrps: bool) -> BTreeMap<usize, Vec<Rela>> {
        let mut text = vec![
            r(0x00, R_AARCH64_CALL26, 1, 0),
            r(0x04, R_AARCH64_ABS64, 1, 0),
            r(0x08, R_AARCH64_CALL26, 2, 0),
            r(0x0c, R_AARCH64_CALL26, 1, 0),
            r(0x10, R_AARCH64_JUMP26, 1, 0),
            r(0x14, R_AARCH64_CALL26, 3, 0),
            r(0x18, R_AARCH64_CALL26, 1, 4),
        ];
        if adrps {
            for off in [0x0, 0x7f8, 0xff8, 0x1ffc] {
                text.push(r(off, R_AARCH64_ADR_PREL_PG_HI21, 1, 0));
            }
        }
        BTreeMap::from([
            (2, text),
            (
                4,
                vec![r(0, R_AARCH64_CALL26, 4, 0), r(4, R_AARCH64_CALL26, 4, 0)],
            ),
            (6, vec![r(0, R_AARCH64_CALL26, 4, 0)]),
            (8, vec![r(0, R_AARCH64_CALL26, 1, 0)]),
        ])
    }

    fn frob(p: &Profile, cpu: Cpu, rels: &mut BTreeMap<usize, Vec<Rela>>) -> PltLayout {
        let mut log = KernelLog::new();
        let l = module_frob_arch_sections(p, cpu, "mp", &sections(), rels, &symbols(), &mut log)
            .unwrap();
        assert!(log.is_empty());
        l
    }

    fn upd(index: usize, addralign: u64, size: u64) -> Option<SectionUpdate> {
        Some(SectionUpdate {
            index,
            sh_type: SHT_NOBITS,
            flags: AX,
            addralign,
            size,
        })
    }

    #[test]
    fn frob_counts_branches_to_other_sections_once_per_target() {
        for v in ["6.1", "6.12"] {
            let mut rels = relas(false);
            let l = frob(profile(v), Cpu::default(), &mut rels);
            // .text: JUMP26 a, CALL26 a (+ its duplicate), CALL26 a+4, CALL26 b = 4;
            // .exit.text: 1 (core, MODULE_UNLOAD=y); .init.text: c twice = 1
            assert_eq!(l.core_max_entries, 5, "{v}");
            assert_eq!(l.init_max_entries, 1);
            assert_eq!(l.core_plt, upd(9, 64, 6 * 12));
            assert_eq!(l.init_plt, upd(10, 64, 2 * 12));
            let (tramp, init_tramp) = if v == "6.1" {
                (upd(11, 4, 24), None)
            } else {
                (upd(11, 4, 12), upd(12, 4, 12))
            };
            assert_eq!(l.ftrace_trampoline, tramp);
            assert_eq!(l.init_ftrace_trampoline, init_tramp);
            assert!(l.raised_alignments.is_empty());
            // the branches that need a PLT come first, sorted by (type, sym, addend)
            let text = &rels[&2];
            let keys: Vec<_> = text.iter().map(|r| (r.r_type, r.sym, r.addend)).collect();
            assert_eq!(
                keys[..5],
                [
                    (282, 1, 0),
                    (283, 1, 0),
                    (283, 1, 0),
                    (283, 1, 4),
                    (283, 2, 0)
                ]
            );
            assert_eq!(text.len(), 7);
            // non-exec targets are left alone
            assert_eq!(rels[&8], relas(false)[&8]);
        }
    }

    #[test]
    fn frob_with_the_erratum_reserves_veneers_and_raises_alignment() {
        let cpu = Cpu {
            arm64_workaround_843419: true,
        };
        for v in ["6.1", "6.12"] {
            let mut rels = relas(true);
            let l = frob(profile(v), cpu, &mut rels);
            // .text: 4 branches + 2 veneers (0xff8, 0x1ffc) + 1 slack; .exit: 1 + 1 slack
            assert_eq!(l.core_max_entries, 9, "{v}");
            assert_eq!(l.init_max_entries, 2);
            // 0x0 asks for 16, 0x7f8 for 4096
            assert_eq!(l.raised_alignments, vec![(1, 4096)]);
            assert!(l.erratum_843419);
            let mut s = sections();
            l.apply(&mut s);
            assert_eq!(s[1].addralign, 4096);
            assert_eq!(
                (s[9].sh_type, s[9].size, s[10].flags),
                (SHT_NOBITS, 120, AX)
            );
        }
        // without the option the capability does not exist
        let p = profile_with("6.12", &[("ARM64_ERRATUM_843419", None)]);
        let l = frob(&p, cpu, &mut relas(true));
        assert_eq!((l.core_max_entries, l.erratum_843419), (5, false));
    }

    #[test]
    fn frob_config_differences() {
        // 6.1 without RANDOMIZE_BASE: no branch is counted or sorted
        let p = profile_with("6.1", &[("RANDOMIZE_BASE", None)]);
        let mut rels = relas(false);
        let l = frob(&p, Cpu::default(), &mut rels);
        assert_eq!((l.core_max_entries, l.init_max_entries), (0, 0));
        assert_eq!(l.core_plt, upd(9, 64, 12));
        assert_eq!(rels, relas(false));
        // 6.12 ignores RANDOMIZE_BASE here
        let p = profile_with("6.12", &[("RANDOMIZE_BASE", None)]);
        assert_eq!(
            frob(&p, Cpu::default(), &mut relas(false)).core_max_entries,
            5
        );
        // 6.1 without ARM64_MODULE_PLTS: the weak default
        let p = profile_with("6.1", &[("ARM64_MODULE_PLTS", None)]);
        let mut rels = relas(false);
        assert_eq!(frob(&p, Cpu::default(), &mut rels), PltLayout::default());
        assert_eq!(rels, relas(false));
        // without MODULE_UNLOAD, .exit.text counts as init
        for v in ["6.1", "6.12"] {
            let p = profile_with(v, &[("MODULE_UNLOAD", None)]);
            let l = frob(&p, Cpu::default(), &mut relas(false));
            assert_eq!((l.core_max_entries, l.init_max_entries), (4, 2));
        }
    }

    #[test]
    fn frob_errors() {
        for v in ["6.1", "6.12"] {
            for (drop, msg) in [
                (".plt", "mp: module PLT section(s) missing"),
                (".init.plt", "mp: module PLT section(s) missing"),
                (".symtab", "mp: module symtab section missing"),
            ] {
                let s: Vec<_> = sections().into_iter().filter(|s| s.name != drop).collect();
                let mut log = KernelLog::new();
                let res = module_frob_arch_sections(
                    profile(v),
                    Cpu::default(),
                    "mp",
                    &s,
                    &mut relas(false),
                    &symbols(),
                    &mut log,
                );
                assert_eq!(res, Err(Errno::ENOEXEC));
                assert_eq!(log.texts(), vec![msg]);
            }
        }
    }

    #[test]
    fn the_sort_is_the_kernels_heapsort_of_each_version() {
        #[allow(clippy::type_complexity)]
        let vectors: &[(&[(u32, u32, i64)], &[u64], &[u64])] = include!("testdata/sort_vectors.rs");
        for (input, want61, want612) in vectors {
            for (v, want) in [("6.1", want61), ("6.12", want612)] {
                let mut rels: Vec<Rela> = input
                    .iter()
                    .enumerate()
                    .map(|(i, &(t, s, a))| r(i as u64, t, s, a))
                    .collect();
                kernel_sort(profile(v), &mut rels);
                let got: Vec<u64> = rels.iter().map(|r| r.offset).collect();
                assert_eq!(&got[..], *want, "{v} {input:?}");
            }
        }
    }

    #[test]
    fn partition_leaves_the_meeting_element_alone() {
        let syms = symbols();
        let p = profile("6.12");
        // a single relocation that needs a PLT is never "partitioned" (nents = 0)
        let mut one = vec![r(0, R_AARCH64_CALL26, 1, 0)];
        assert_eq!(partition_branch_plt_relas(p, &syms, &mut one, 1), 0);
        let mut v = vec![
            r(0, R_AARCH64_ABS64, 1, 0),
            r(4, R_AARCH64_CALL26, 1, 0),
            r(8, R_AARCH64_CALL26, 3, 0),
            r(12, R_AARCH64_JUMP26, 2, 0),
        ];
        assert_eq!(partition_branch_plt_relas(p, &syms, &mut v, 1), 2);
        let offs: Vec<u64> = v.iter().map(|r| r.offset).collect();
        assert_eq!(offs, [12, 4, 8, 0]);
    }

    // ---- emission ----

    const CORE_PLT: u64 = 0xffff_8000_0200_0000;
    const INIT_PLT: u64 = 0xffff_8000_0300_0000;
    const TEXT: u64 = 0xffff_8000_0100_0000;
    const INIT_TEXT: u64 = 0xffff_8000_0300_1000;

    fn emit_setup(
        core_max: i32,
        init_max: i32,
        erratum: bool,
    ) -> (Vec<RelocSection>, PltState, Memory) {
        let mut s = sections();
        s[1].addr = TEXT;
        s[3].addr = INIT_TEXT;
        s[9].addr = CORE_PLT;
        s[10].addr = INIT_PLT;
        let mut m = Memory::new(1 << 24);
        m.alloc(TEXT, 0x10_0000, RegionKind::Module, "text")
            .unwrap();
        m.alloc(CORE_PLT, 0x2000, RegionKind::Module, "plt")
            .unwrap();
        m.alloc(INIT_PLT, 0x1000, RegionKind::Module, "init plt")
            .unwrap();
        m.alloc(INIT_TEXT, 0x1000, RegionKind::Module, "init text")
            .unwrap();
        let plt = PltState {
            core: PltSec {
                shndx: 9,
                num_entries: 0,
                max_entries: core_max,
            },
            init: PltSec {
                shndx: 10,
                num_entries: 0,
                max_entries: init_max,
            },
            init_ranges: vec![(INIT_PLT, 0x2000)],
            erratum_843419: erratum,
        };
        (s, plt, m)
    }

    fn sym(value: u64) -> RelocSymbol {
        RelocSymbol { value, shndx: 0 }
    }

    /// Where a PLT entry (or veneer) at `addr` branches to: ADRP page + ADD immediate.
    fn plt_target(m: &Memory, addr: u64) -> u64 {
        let e = PltEntry::read(m, addr).unwrap();
        assert!(insn::is_adrp(e.adrp));
        // sign-extend the 21-bit page count (the kernel's s32 helper loses bit 20)
        let pages = ((insn::decode_immediate(insn::ImmType::Adr, e.adrp) << 43) as i64) >> 43;
        let off = pages << 12;
        let imm = insn::decode_immediate(insn::ImmType::Imm12, e.add);
        (addr & !0xfff).wrapping_add(off as u64).wrapping_add(imm)
    }

    #[test]
    fn entries_are_shared_with_the_previous_one_only() {
        let p = profile("6.12");
        let (s, mut plt, mut m) = emit_setup(3, 1, false);
        let mut log = KernelLog::new();
        let far = 0xffff_8000_9000_0120u64;
        let rel = r(0, R_AARCH64_CALL26, 1, 0);
        let mut emit = |plt: &mut PltState, m: &mut Memory, loc, v| {
            module_emit_plt_entry(p, &s, plt, loc, &rel, &sym(v), m, &mut log).unwrap()
        };
        assert_eq!(emit(&mut plt, &mut m, TEXT, far), CORE_PLT);
        assert_eq!(emit(&mut plt, &mut m, TEXT + 4, far), CORE_PLT);
        assert_eq!(plt.core.num_entries, 1);
        assert_eq!(emit(&mut plt, &mut m, TEXT + 8, far + 8), CORE_PLT + 12);
        // back to the first target: not deduplicated (only the previous entry is compared)
        assert_eq!(emit(&mut plt, &mut m, TEXT + 12, far), CORE_PLT + 24);
        assert_eq!(plt_target(&m, CORE_PLT), far);
        assert_eq!(plt_target(&m, CORE_PLT + 12), far + 8);
        let e = PltEntry::read(&m, CORE_PLT).unwrap();
        assert_eq!(e.br, 0xd61f_0200);
        // init places use the init PLT
        assert_eq!(emit(&mut plt, &mut m, INIT_TEXT, far), INIT_PLT);
        // full: the entry is still written into the spare slot, then WARN and 0
        assert_eq!(emit(&mut plt, &mut m, TEXT + 16, far + 16), 0);
        assert_eq!(plt_target(&m, CORE_PLT + 36), far + 16);
        assert_eq!(
            log.texts(),
            vec![
                "------------[ cut here ]------------",
                "WARNING: at arch/arm64/kernel/module-plts.c:94 module_emit_plt_entry",
                "---[ end trace 0000000000000000 ]---",
            ]
        );
    }

    #[test]
    fn entries_skip_forbidden_adrp_slots_with_the_erratum() {
        let p = profile("6.1");
        // slot 1 of a PLT at page offset 0xfec lands at 0xff8
        let (mut s, mut plt, mut m) = emit_setup(5, 0, true);
        s[9].addr = CORE_PLT + 0xfec;
        let mut log = KernelLog::new();
        let rel = r(0, R_AARCH64_CALL26, 1, 0);
        let a = module_emit_plt_entry(p, &s, &mut plt, TEXT, &rel, &sym(0x1000), &mut m, &mut log);
        assert_eq!(a, Ok(CORE_PLT + 0xfec));
        let b = module_emit_plt_entry(p, &s, &mut plt, TEXT, &rel, &sym(0x2000), &mut m, &mut log);
        assert_eq!(b, Ok(CORE_PLT + 0xfec + 24));
        assert_eq!(plt.core.num_entries, 3);
        // without the erratum the slot is used
        let (mut s, mut plt, mut m) = emit_setup(5, 0, false);
        s[9].addr = CORE_PLT + 0xfec;
        let _ = module_emit_plt_entry(p, &s, &mut plt, TEXT, &rel, &sym(0x1000), &mut m, &mut log);
        let b = module_emit_plt_entry(p, &s, &mut plt, TEXT, &rel, &sym(0x2000), &mut m, &mut log);
        assert_eq!(b, Ok(CORE_PLT + 0xfec + 12));
        assert!(log.is_empty());
    }

    #[test]
    fn comparing_with_an_out_of_range_entry_across_a_page_is_the_kernels_bug() {
        // two entries for a target 8 GiB away, the second one in the next page: their ADRP
        // words are both AARCH64_BREAK_FAULT, and aarch64_insn_adrp_get_offset() BUG()s on them
        let far = CORE_PLT.wrapping_add(8 << 30);
        for (v, line) in [("6.1", 1423), ("6.12", 1262)] {
            let (mut s, mut plt, mut m) = emit_setup(4, 0, false);
            s[9].addr = CORE_PLT + 0xff4;
            let mut log = KernelLog::new();
            let rel = r(0, R_AARCH64_CALL26, 1, 0);
            let p = profile(v);
            let a = module_emit_plt_entry(p, &s, &mut plt, TEXT, &rel, &sym(far), &mut m, &mut log);
            assert_eq!(a, Ok(CORE_PLT + 0xff4));
            let e = PltEntry::read(&m, CORE_PLT + 0xff4).unwrap();
            assert_eq!(e.adrp, insn::AARCH64_BREAK_FAULT);
            let b = module_emit_plt_entry(p, &s, &mut plt, TEXT, &rel, &sym(far), &mut m, &mut log);
            assert_eq!(b, Err(Errno::ENOEXEC));
            assert_eq!(
                log.texts(),
                vec![format!("kernel BUG at arch/arm64/lib/insn.c:{line}!")]
            );
        }
        // an address 0 (unresolved weak) is not out of range for the kernel's ADRP generator:
        // the page count is truncated to s32 first, which gives a wrong but encodable page
        let mut log = KernelLog::new();
        let e = get_plt_entry(0, CORE_PLT, &mut log);
        assert_eq!(
            e.adrp,
            0x9000_0010 | insn::encode_immediate(insn::ImmType::Adr, 0, (-0x2000i64) as u64)
        );
    }

    /// Apply `rels` to .text (index 1) with the setup of [`emit_setup`].
    fn apply(
        v: &str,
        s: &[RelocSection],
        plt: &mut PltState,
        m: &mut Memory,
        syms: &[RelocSymbol],
        rels: &[Rela],
    ) -> (Result<(), Errno>, Vec<String>) {
        let mut log = KernelLog::new();
        let res = apply_relocate_add(profile(v), "mp", s, TEXT, syms, rels, m, plt, &mut log);
        (res, log.texts())
    }

    #[test]
    fn out_of_range_calls_go_through_the_plt() {
        for v in ["6.1", "6.12"] {
            let (s, mut plt, mut m) = emit_setup(2, 0, false);
            let far = TEXT.wrapping_sub(1 << 30);
            let syms = vec![sym(0), sym(far), sym(TEXT + 0x100)];
            m.write_u32(TEXT, 0x9400_0000).unwrap();
            m.write_u32(TEXT + 4, 0x1400_0000).unwrap();
            m.write_u32(TEXT + 8, 0x9400_0000).unwrap();
            let rels = [
                r(0, R_AARCH64_CALL26, 1, 0),
                r(4, R_AARCH64_JUMP26, 1, 0),
                r(8, R_AARCH64_CALL26, 2, 0),
            ];
            assert_eq!(
                apply(v, &s, &mut plt, &mut m, &syms, &rels),
                (Ok(()), vec![])
            );
            let off = (CORE_PLT - TEXT) >> 2;
            assert_eq!(m.read_u32(TEXT), Ok(0x9400_0000 | off as u32));
            assert_eq!(m.read_u32(TEXT + 4), Ok(0x1400_0000 | (off - 1) as u32));
            assert_eq!(m.read_u32(TEXT + 8), Ok(0x9400_0000 | 0x3e));
            assert_eq!(plt_target(&m, CORE_PLT), far);
            assert_eq!(plt.core.num_entries, 1);
        }
        // the PLT itself out of branch range: overflow, reported with the PLT's address
        let (mut s, mut plt, mut m) = emit_setup(2, 0, false);
        s[9].addr = CORE_PLT + (200 << 20);
        m.alloc(s[9].addr, 0x100, RegionKind::Module, "far plt")
            .unwrap();
        let syms = vec![sym(0), sym(TEXT.wrapping_sub(1 << 30))];
        let (res, log) = apply(
            "6.12",
            &s,
            &mut plt,
            &mut m,
            &syms,
            &[r(0, R_AARCH64_CALL26, 1, 0)],
        );
        assert_eq!(res, Err(Errno::ENOEXEC));
        assert_eq!(
            log,
            vec![format!(
                "Modules: module mp: overflow in relocation type 283 val {:x}",
                s[9].addr
            )]
        );
        // 6.1 without ARM64_MODULE_PLTS: plain overflow with S + A
        let p = profile_with("6.1", &[("ARM64_MODULE_PLTS", None)]);
        let (s, mut plt, mut m) = emit_setup(2, 0, false);
        let mut log = KernelLog::new();
        let far = TEXT.wrapping_sub(1 << 30);
        let res = apply_relocate_add(
            &p,
            "mp",
            &s,
            TEXT,
            &[sym(0), sym(far)],
            &[r(0, R_AARCH64_CALL26, 1, 0)],
            &mut m,
            &mut plt,
            &mut log,
        );
        assert_eq!(res, Err(Errno::ENOEXEC));
        assert_eq!(
            log.texts(),
            vec![format!(
                "module mp: overflow in relocation type 283 val {far:x}"
            )]
        );
    }

    #[test]
    fn adrp_at_forbidden_offsets_becomes_adr_or_a_veneer() {
        for v in ["6.1", "6.12"] {
            let (s, mut plt, mut m) = emit_setup(2, 0, true);
            let place = TEXT + 0xff8;
            // adrp x5, ...
            m.write_u32(place, 0x9000_0005).unwrap();
            m.write_u32(place + 4, 0x9000_0007).unwrap();
            m.write_u32(TEXT + 0x1ff8, 0x9000_0003).unwrap();
            let near = TEXT + 0x8_0abc;
            let far = TEXT.wrapping_sub(1 << 31) + 0x123;
            let syms = vec![sym(0), sym(near), sym(far)];
            let rels = [
                r(0xff8, R_AARCH64_ADR_PREL_PG_HI21, 1, 0),
                r(0xffc, R_AARCH64_ADR_PREL_PG_HI21_NC, 2, 0),
                r(0x1ff8, R_AARCH64_ADR_PREL_PG_HI21, 2, 0),
            ];
            assert_eq!(
                apply(v, &s, &mut plt, &mut m, &syms, &rels),
                (Ok(()), vec![])
            );
            // ADR x5, page(near): offset 0x80000 - 0xff8
            let adr = insn::encode_immediate(
                insn::ImmType::Adr,
                0x1000_0005,
                ((near & !0xfff) - place) & 0x1f_ffff,
            );
            assert_eq!(m.read_u32(place), Ok(adr));
            // B to a veneer at the first PLT slot, which does adrp x7, page(far); add; b back
            assert_eq!(
                m.read_u32(place + 4),
                Ok(0x1400_0000 | (((CORE_PLT - (place + 4)) >> 2) as u32 & 0x3ff_ffff))
            );
            let e = PltEntry::read(&m, CORE_PLT).unwrap();
            assert_eq!(e.adrp & 0x9f00_001f, 0x9000_0007);
            assert_eq!(e.add, 0x9100_00e7);
            let back = (place + 8).wrapping_sub(CORE_PLT + 8) as i64 >> 2;
            assert_eq!(e.br, 0x1400_0000 | (back as u32 & 0x3ff_ffff));
            assert_eq!(plt_target(&m, CORE_PLT), far & !0xfff);
            // the second veneer: adrp x3
            assert_eq!(PltEntry::read(&m, CORE_PLT + 12).unwrap().adrp & 0x1f, 3);
            assert_eq!(plt.core.num_entries, 2);
            // a third has no room: WARN, ENOEXEC
            let (res, log) = apply(v, &s, &mut plt, &mut m, &syms, &rels[1..2]);
            assert_eq!(res, Err(Errno::ENOEXEC));
            let line = if v == "6.1" { 116 } else { 111 };
            assert_eq!(
                log[1],
                format!(
                    "WARNING: at arch/arm64/kernel/module-plts.c:{line} module_emit_veneer_for_adrp"
                )
            );
        }
    }
}
