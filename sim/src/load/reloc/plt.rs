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
/// offset ends in 0xff8..0xfff (bits [11:3] all ones), and for the others the section's
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
        if nents > 0 {
            if let Some(prefix) = rels.get_mut(..nents) {
                kernel_sort(profile, prefix);
            }
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
