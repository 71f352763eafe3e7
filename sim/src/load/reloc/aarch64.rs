//! arm64 relocations: `apply_relocate_add()` of `arch/arm64/kernel/module.c` with its helpers
//! `do_reloc()`, `reloc_data()`, `reloc_insn_movw()`, `reloc_insn_imm()` and
//! `reloc_insn_adrp()`.
//!
//! The types, formulas, field encodings and overflow rules are the same in 6.1 and 6.12. The
//! differences:
//!
//! | | 6.1 | 6.12 |
//! |---|---|---|
//! | `CALL26`/`JUMP26` out of range | PLT fallback only with `CONFIG_ARM64_MODULE_PLTS` | PLT fallback always |
//! | message prefix (`pr_fmt`) | none | `Modules: ` |
//! | erratum 843419 place check | `IS_ENABLED(CONFIG_ARM64_ERRATUM_843419) && cpus_have_const_cap()` | `cpus_have_final_cap()` (the capability only exists with the option) |
//!
//! Every helper writes the instruction or data **before** it reports `-ERANGE`, so an
//! overflowing relocation leaves its truncated value in memory; `-ERANGE` fails the load only
//! where the type is checked (not for ABS64, PREL64, the `_NC` types, `MOVW_*_G3` and the
//! `*_LO12_NC` types). The first failing relocation ends processing.

use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::Memory;
use crate::profile::{KernelVersion, Profile};

use super::insn::{self, ImmType};
use super::plt::{self, PltState};
use super::{Rela, RelocSection, RelocSymbol};

/// `R_ARM_NONE` (accepted by the arm64 loader too).
pub const R_ARM_NONE: u32 = 0;
/// `R_AARCH64_NONE`.
pub const R_AARCH64_NONE: u32 = 256;
/// `R_AARCH64_ABS64`.
pub const R_AARCH64_ABS64: u32 = 257;
/// `R_AARCH64_ABS32`.
pub const R_AARCH64_ABS32: u32 = 258;
/// `R_AARCH64_ABS16`.
pub const R_AARCH64_ABS16: u32 = 259;
/// `R_AARCH64_PREL64`.
pub const R_AARCH64_PREL64: u32 = 260;
/// `R_AARCH64_PREL32`.
pub const R_AARCH64_PREL32: u32 = 261;
/// `R_AARCH64_PREL16`.
pub const R_AARCH64_PREL16: u32 = 262;
/// `R_AARCH64_MOVW_UABS_G0`.
pub const R_AARCH64_MOVW_UABS_G0: u32 = 263;
/// `R_AARCH64_MOVW_UABS_G0_NC`.
pub const R_AARCH64_MOVW_UABS_G0_NC: u32 = 264;
/// `R_AARCH64_MOVW_UABS_G1`.
pub const R_AARCH64_MOVW_UABS_G1: u32 = 265;
/// `R_AARCH64_MOVW_UABS_G1_NC`.
pub const R_AARCH64_MOVW_UABS_G1_NC: u32 = 266;
/// `R_AARCH64_MOVW_UABS_G2`.
pub const R_AARCH64_MOVW_UABS_G2: u32 = 267;
/// `R_AARCH64_MOVW_UABS_G2_NC`.
pub const R_AARCH64_MOVW_UABS_G2_NC: u32 = 268;
/// `R_AARCH64_MOVW_UABS_G3`.
pub const R_AARCH64_MOVW_UABS_G3: u32 = 269;
/// `R_AARCH64_MOVW_SABS_G0`.
pub const R_AARCH64_MOVW_SABS_G0: u32 = 270;
/// `R_AARCH64_MOVW_SABS_G1`.
pub const R_AARCH64_MOVW_SABS_G1: u32 = 271;
/// `R_AARCH64_MOVW_SABS_G2`.
pub const R_AARCH64_MOVW_SABS_G2: u32 = 272;
/// `R_AARCH64_LD_PREL_LO19`.
pub const R_AARCH64_LD_PREL_LO19: u32 = 273;
/// `R_AARCH64_ADR_PREL_LO21`.
pub const R_AARCH64_ADR_PREL_LO21: u32 = 274;
/// `R_AARCH64_ADR_PREL_PG_HI21`.
pub const R_AARCH64_ADR_PREL_PG_HI21: u32 = 275;
/// `R_AARCH64_ADR_PREL_PG_HI21_NC`.
pub const R_AARCH64_ADR_PREL_PG_HI21_NC: u32 = 276;
/// `R_AARCH64_ADD_ABS_LO12_NC`.
pub const R_AARCH64_ADD_ABS_LO12_NC: u32 = 277;
/// `R_AARCH64_LDST8_ABS_LO12_NC`.
pub const R_AARCH64_LDST8_ABS_LO12_NC: u32 = 278;
/// `R_AARCH64_TSTBR14`.
pub const R_AARCH64_TSTBR14: u32 = 279;
/// `R_AARCH64_CONDBR19`.
pub const R_AARCH64_CONDBR19: u32 = 280;
/// `R_AARCH64_JUMP26`.
pub const R_AARCH64_JUMP26: u32 = 282;
/// `R_AARCH64_CALL26`.
pub const R_AARCH64_CALL26: u32 = 283;
/// `R_AARCH64_LDST16_ABS_LO12_NC`.
pub const R_AARCH64_LDST16_ABS_LO12_NC: u32 = 284;
/// `R_AARCH64_LDST32_ABS_LO12_NC`.
pub const R_AARCH64_LDST32_ABS_LO12_NC: u32 = 285;
/// `R_AARCH64_LDST64_ABS_LO12_NC`.
pub const R_AARCH64_LDST64_ABS_LO12_NC: u32 = 286;
/// `R_AARCH64_MOVW_PREL_G0`.
pub const R_AARCH64_MOVW_PREL_G0: u32 = 287;
/// `R_AARCH64_MOVW_PREL_G0_NC`.
pub const R_AARCH64_MOVW_PREL_G0_NC: u32 = 288;
/// `R_AARCH64_MOVW_PREL_G1`.
pub const R_AARCH64_MOVW_PREL_G1: u32 = 289;
/// `R_AARCH64_MOVW_PREL_G1_NC`.
pub const R_AARCH64_MOVW_PREL_G1_NC: u32 = 290;
/// `R_AARCH64_MOVW_PREL_G2`.
pub const R_AARCH64_MOVW_PREL_G2: u32 = 291;
/// `R_AARCH64_MOVW_PREL_G2_NC`.
pub const R_AARCH64_MOVW_PREL_G2_NC: u32 = 292;
/// `R_AARCH64_MOVW_PREL_G3`.
pub const R_AARCH64_MOVW_PREL_G3: u32 = 293;
/// `R_AARCH64_LDST128_ABS_LO12_NC`.
pub const R_AARCH64_LDST128_ABS_LO12_NC: u32 = 299;

/// `-ERANGE` from a helper: the value did not fit (the bytes are written anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range;

/// `enum aarch64_reloc_op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `RELOC_OP_ABS`: S + A.
    Abs,
    /// `RELOC_OP_PREL`: S + A - P.
    Prel,
    /// `RELOC_OP_PAGE`: Page(S + A) - Page(P).
    Page,
}

/// `enum aarch64_insn_movw_imm_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Movw {
    /// `AARCH64_INSN_IMM_MOVNZ`: the opcode becomes MOVZ (value >= 0) or MOVN (< 0).
    MovNz,
    /// `AARCH64_INSN_IMM_MOVKZ`: the opcode is kept.
    MovKz,
}

/// `do_reloc()`.
pub(crate) fn do_reloc(op: Op, place: u64, val: u64) -> u64 {
    match op {
        Op::Abs => val,
        Op::Prel => val.wrapping_sub(place),
        Op::Page => (val & !0xfff).wrapping_sub(place & !0xfff),
    }
}

/// `reloc_data()`: store the low `len` bits of X at `place`, then check the range: ABS16/32 as
/// unsigned `[0, 2^len)`, PREL16/32 as signed, 64 bits never.
fn reloc_data(
    op: Op,
    place: u64,
    val: u64,
    len: u32,
    mem: &mut Memory,
) -> Result<Result<(), Range>, Errno> {
    let sval = do_reloc(op, place, val) as i64;
    let bytes = sval.to_le_bytes();
    let (n, lo, hi) = match (len, op) {
        (16, Op::Abs) => (2, 0, i64::from(u16::MAX)),
        (16, _) => (2, i64::from(i16::MIN), i64::from(i16::MAX)),
        (32, Op::Abs) => (4, 0, i64::from(u32::MAX)),
        (32, _) => (4, i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (8, i64::MIN, i64::MAX),
    };
    mem.write(place, bytes.get(..n).unwrap_or(&bytes))?;
    Ok(if (lo..=hi).contains(&sval) {
        Ok(())
    } else {
        Err(Range)
    })
}

fn read_insn(mem: &Memory, place: u64) -> Result<u32, Errno> {
    mem.read_u32(place)
}

/// `reloc_insn_movw()`: put bits `[lsb+15:lsb]` of X (inverted for a negative MOVNZ value, whose
/// opcode becomes MOVN) into the 16-bit field; `-ERANGE` when `imm > 0xffff` as a u64.
fn reloc_insn_movw(
    op: Op,
    place: u64,
    val: u64,
    lsb: u32,
    kind: Movw,
    mem: &mut Memory,
) -> Result<Result<(), Range>, Errno> {
    let mut insn = read_insn(mem, place)?;
    let sval = do_reloc(op, place, val) as i64;
    let mut imm = (sval >> lsb) as u64;
    if kind == Movw::MovNz {
        insn &= !(3 << 29);
        if sval >= 0 {
            insn |= 2 << 29;
        } else {
            imm = !imm;
        }
    }
    let insn = insn::encode_immediate(ImmType::Imm16, insn, imm);
    mem.write_u32(place, insn)?;
    Ok(if imm > u64::from(u16::MAX) {
        Err(Range)
    } else {
        Ok(())
    })
}

/// `reloc_insn_imm()`: put bits `[lsb+len-1:lsb]` of X into the `t` field; `-ERANGE` unless the
/// bits above (with the field's sign bit) are all zeros or all ones.
pub(crate) fn reloc_insn_imm(
    op: Op,
    place: u64,
    val: u64,
    lsb: u32,
    len: u32,
    t: ImmType,
    mem: &mut Memory,
) -> Result<Result<(), Range>, Errno> {
    let insn = read_insn(mem, place)?;
    let sval = (do_reloc(op, place, val) as i64) >> lsb;
    let imm_mask: u64 = ((1u64 << (lsb + len)) - 1) >> lsb;
    let imm = (sval as u64) & imm_mask;
    mem.write_u32(place, insn::encode_immediate(t, insn, imm))?;
    let upper = ((sval as u64) & !(imm_mask >> 1)) as i64 >> (len - 1);
    Ok(if (upper.wrapping_add(1) as u64) >= 2 {
        Err(Range)
    } else {
        Ok(())
    })
}

/// `is_forbidden_offset_for_adrp()` (`asm/module.h`): with the 843419 workaround active, an
/// ADRP must not sit at offset 0xff8 or 0xffc of a 4 KiB page.
pub(crate) fn is_forbidden_offset_for_adrp(plt: &PltState, place: u64) -> bool {
    plt.erratum_843419 && place & 0xfff >= 0xff8
}

/// `reloc_insn_adrp()`: an ordinary ADRP unless the place is forbidden (erratum 843419); then
/// an ADR to the page if it is within 1 MiB, else a `B` to a veneer
/// ([`plt::module_emit_veneer_for_adrp`]). Forbidden places never overflow.
#[allow(clippy::too_many_arguments)]
fn reloc_insn_adrp(
    profile: &Profile,
    sections: &[RelocSection],
    place: u64,
    val: u64,
    mem: &mut Memory,
    plt: &mut PltState,
    log: &mut KernelLog,
) -> Result<Result<(), Range>, Errno> {
    if !is_forbidden_offset_for_adrp(plt, place) {
        return reloc_insn_imm(Op::Page, place, val, 12, 21, ImmType::Adr, mem);
    }
    let insn = if reloc_insn_imm(Op::Prel, place, val & !0xfff, 0, 21, ImmType::Adr, mem)?.is_ok() {
        // patch ADRP to ADR
        read_insn(mem, place)? & !(1 << 31)
    } else {
        let v = plt::module_emit_veneer_for_adrp(
            profile,
            sections,
            plt,
            place,
            val & !0xfff,
            mem,
            log,
        )?;
        if v == 0 {
            return Err(Errno::ENOEXEC);
        }
        insn::gen_branch_imm(place, v, false, log)
    };
    mem.write_u32(place, insn)?;
    Ok(Ok(()))
}

/// `apply_relocate_add()` on arm64 (`arch/arm64/kernel/module.c`; see the
/// [module documentation](self) for 6.1 vs 6.12): apply `relas` to the section at `base`.
///
/// `sections` are needed for the PLT sections' addresses (`plt` names them). Errors, each after
/// printing the kernel's line: `ENOEXEC` with `module %s: overflow in relocation type %d val
/// %Lx` (for a branch through a PLT, `val` is the PLT entry's address) or `module %s:
/// unsupported RELA relocation: %llu` (both with `Modules: ` in front on 6.12); `ENOEXEC` when
/// a PLT or veneer slot cannot be had (the kernel's `WARN_ON`, see [`plt`]). Without a log
/// line: `ENOEXEC` for a symbol index past `symbols`, `EFAULT` for a place outside mapped
/// memory.
#[allow(clippy::too_many_arguments)] // the kernel's inputs, one by one
pub fn apply_relocate_add(
    profile: &Profile,
    modname: &str,
    sections: &[RelocSection],
    base: u64,
    symbols: &[RelocSymbol],
    relas: &[Rela],
    memory: &mut Memory,
    plt: &mut PltState,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let v6_1 = profile.version() == KernelVersion::V6_1;
    let prefix = if v6_1 { "" } else { "Modules: " };
    let plts = !v6_1 || profile.is_enabled("ARM64_MODULE_PLTS");
    let m = memory;
    for r in relas {
        let loc = base.wrapping_add(r.offset);
        let sym = symbols.get(r.sym as usize).ok_or(Errno::ENOEXEC)?;
        let mut val = sym.value.wrapping_add(r.addend as u64);
        let mut check = true;
        use ImmType::*;
        use Movw::*;
        use Op::*;
        let ovf = match r.r_type {
            R_ARM_NONE | R_AARCH64_NONE => Ok(()),
            R_AARCH64_ABS64 => {
                check = false;
                reloc_data(Abs, loc, val, 64, m)?
            }
            R_AARCH64_ABS32 => reloc_data(Abs, loc, val, 32, m)?,
            R_AARCH64_ABS16 => reloc_data(Abs, loc, val, 16, m)?,
            R_AARCH64_PREL64 => {
                check = false;
                reloc_data(Prel, loc, val, 64, m)?
            }
            R_AARCH64_PREL32 => reloc_data(Prel, loc, val, 32, m)?,
            R_AARCH64_PREL16 => reloc_data(Prel, loc, val, 16, m)?,
            R_AARCH64_MOVW_UABS_G0_NC
            | R_AARCH64_MOVW_UABS_G0
            | R_AARCH64_MOVW_UABS_G1_NC
            | R_AARCH64_MOVW_UABS_G1
            | R_AARCH64_MOVW_UABS_G2_NC
            | R_AARCH64_MOVW_UABS_G2
            | R_AARCH64_MOVW_UABS_G3 => {
                let lsb = match r.r_type {
                    R_AARCH64_MOVW_UABS_G0_NC | R_AARCH64_MOVW_UABS_G0 => 0,
                    R_AARCH64_MOVW_UABS_G1_NC | R_AARCH64_MOVW_UABS_G1 => 16,
                    R_AARCH64_MOVW_UABS_G2_NC | R_AARCH64_MOVW_UABS_G2 => 32,
                    _ => 48,
                };
                check = !matches!(
                    r.r_type,
                    R_AARCH64_MOVW_UABS_G0_NC
                        | R_AARCH64_MOVW_UABS_G1_NC
                        | R_AARCH64_MOVW_UABS_G2_NC
                        | R_AARCH64_MOVW_UABS_G3
                );
                reloc_insn_movw(Abs, loc, val, lsb, MovKz, m)?
            }
            R_AARCH64_MOVW_SABS_G0 => reloc_insn_movw(Abs, loc, val, 0, MovNz, m)?,
            R_AARCH64_MOVW_SABS_G1 => reloc_insn_movw(Abs, loc, val, 16, MovNz, m)?,
            R_AARCH64_MOVW_SABS_G2 => reloc_insn_movw(Abs, loc, val, 32, MovNz, m)?,
            R_AARCH64_MOVW_PREL_G0_NC => {
                check = false;
                reloc_insn_movw(Prel, loc, val, 0, MovKz, m)?
            }
            R_AARCH64_MOVW_PREL_G0 => reloc_insn_movw(Prel, loc, val, 0, MovNz, m)?,
            R_AARCH64_MOVW_PREL_G1_NC => {
                check = false;
                reloc_insn_movw(Prel, loc, val, 16, MovKz, m)?
            }
            R_AARCH64_MOVW_PREL_G1 => reloc_insn_movw(Prel, loc, val, 16, MovNz, m)?,
            R_AARCH64_MOVW_PREL_G2_NC => {
                check = false;
                reloc_insn_movw(Prel, loc, val, 32, MovKz, m)?
            }
            R_AARCH64_MOVW_PREL_G2 => reloc_insn_movw(Prel, loc, val, 32, MovNz, m)?,
            R_AARCH64_MOVW_PREL_G3 => {
                check = false;
                reloc_insn_movw(Prel, loc, val, 48, MovNz, m)?
            }
            R_AARCH64_LD_PREL_LO19 => reloc_insn_imm(Prel, loc, val, 2, 19, Imm19, m)?,
            R_AARCH64_ADR_PREL_LO21 => reloc_insn_imm(Prel, loc, val, 0, 21, Adr, m)?,
            R_AARCH64_ADR_PREL_PG_HI21_NC | R_AARCH64_ADR_PREL_PG_HI21 => {
                check = r.r_type == R_AARCH64_ADR_PREL_PG_HI21;
                // any error other than -ERANGE is returned at once (the `?`)
                reloc_insn_adrp(profile, sections, loc, val, m, plt, log)?
            }
            R_AARCH64_ADD_ABS_LO12_NC | R_AARCH64_LDST8_ABS_LO12_NC => {
                check = false;
                reloc_insn_imm(Abs, loc, val, 0, 12, Imm12, m)?
            }
            R_AARCH64_LDST16_ABS_LO12_NC => {
                check = false;
                reloc_insn_imm(Abs, loc, val, 1, 11, Imm12, m)?
            }
            R_AARCH64_LDST32_ABS_LO12_NC => {
                check = false;
                reloc_insn_imm(Abs, loc, val, 2, 10, Imm12, m)?
            }
            R_AARCH64_LDST64_ABS_LO12_NC => {
                check = false;
                reloc_insn_imm(Abs, loc, val, 3, 9, Imm12, m)?
            }
            R_AARCH64_LDST128_ABS_LO12_NC => {
                check = false;
                reloc_insn_imm(Abs, loc, val, 4, 8, Imm12, m)?
            }
            R_AARCH64_TSTBR14 => reloc_insn_imm(Prel, loc, val, 2, 14, Imm14, m)?,
            R_AARCH64_CONDBR19 => reloc_insn_imm(Prel, loc, val, 2, 19, Imm19, m)?,
            R_AARCH64_JUMP26 | R_AARCH64_CALL26 => {
                let mut ovf = reloc_insn_imm(Prel, loc, val, 2, 26, Imm26, m)?;
                if plts && ovf.is_err() {
                    val = plt::module_emit_plt_entry(profile, sections, plt, loc, r, sym, m, log)?;
                    if val == 0 {
                        return Err(Errno::ENOEXEC);
                    }
                    ovf = reloc_insn_imm(Prel, loc, val, 2, 26, Imm26, m)?;
                }
                ovf
            }
            t => {
                log.err(format!(
                    "{prefix}module {modname}: unsupported RELA relocation: {}",
                    u64::from(t)
                ));
                return Err(Errno::ENOEXEC);
            }
        };
        if check && ovf.is_err() {
            log.err(format!(
                "{prefix}module {modname}: overflow in relocation type {} val {val:x}",
                r.r_type as i32
            ));
            return Err(Errno::ENOEXEC);
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::RegionKind;
    use crate::profile::Profile;

    /// The place every single-relocation test patches (a page offset of 0x800).
    pub(crate) const TEXT: u64 = 0xffff_8000_0100_0000;
    pub(crate) const P: u64 = TEXT + 0x800;

    pub(crate) fn profile(v: &str) -> &'static Profile {
        Profile::builtin(&format!("debian-{v}-arm64")).unwrap()
    }

    pub(crate) fn text_section() -> RelocSection {
        RelocSection {
            index: 1,
            name: ".text".into(),
            sh_type: 1,
            flags: super::super::SHF_ALLOC | super::super::SHF_EXECINSTR,
            addr: TEXT,
            size: 0x2000,
            info: 0,
            addralign: 4,
        }
    }

    pub(crate) fn syms(value: u64) -> Vec<RelocSymbol> {
        vec![
            RelocSymbol { value: 0, shndx: 0 },
            RelocSymbol { value, shndx: 0 },
        ]
    }

    /// Apply one relocation of type `t` at `P` (holding `insn`) against a symbol of value
    /// `s` with addend `a`: result, log, the word at `P` afterwards.
    fn one(v: &str, t: u32, insn: u32, s: u64, a: i64) -> (Result<(), Errno>, Vec<String>, u32) {
        let mut m = Memory::new(1 << 20);
        m.alloc(TEXT, 0x2000, RegionKind::Module, "text").unwrap();
        m.write_u32(P, insn).unwrap();
        let mut log = KernelLog::new();
        let r = Rela {
            offset: P - TEXT,
            sym: 1,
            r_type: t,
            addend: a,
        };
        let res = apply_relocate_add(
            profile(v),
            "mp",
            &[text_section()],
            TEXT,
            &syms(s),
            &[r],
            &mut m,
            &mut PltState::default(),
            &mut log,
        );
        (res, log.texts(), m.read_u32(P).unwrap())
    }

    #[test]
    fn worked_examples() {
        // CALL26 forwards and backwards
        let (r, _, w) = one("6.1", R_AARCH64_CALL26, 0x9400_0000, P + 0x1000, 0);
        assert_eq!((r, w), (Ok(()), 0x9400_0400));
        let (r, _, w) = one("6.12", R_AARCH64_CALL26, 0x9400_0000, P - 0x1000, 0);
        assert_eq!((r, w), (Ok(()), 0x97ff_fc00));
        // ADRP: P = ...0800, S+A = P page + 0x12335 pages + 0x678
        let s = (P & !0xfff) + 0x1233_5678;
        let (r, _, w) = one("6.1", R_AARCH64_ADR_PREL_PG_HI21, 0x9000_0000, s, 0);
        assert_eq!((r, w), (Ok(()), 0xb009_19a0));
        let (_, _, w) = one("6.1", R_AARCH64_ADD_ABS_LO12_NC, 0x9100_0000, s, 0);
        assert_eq!(w, 0x9119_e000);
        let (_, _, w) = one("6.1", R_AARCH64_LDST64_ABS_LO12_NC, 0xf940_0001, s, 0);
        assert_eq!(w, 0xf943_3c01);
        // MOVW_SABS_G0 with -5 turns movz x0, #0 into movn x0, #4
        let (r, _, w) = one("6.1", R_AARCH64_MOVW_SABS_G0, 0xd280_0000, 0, -5);
        assert_eq!((r, w), (Ok(()), 0x9280_0080));
        // and a positive value turns movn into movz
        let (_, _, w) = one("6.1", R_AARCH64_MOVW_SABS_G0, 0x9280_0000, 5, 0);
        assert_eq!(w, 0xd280_00a0);
        // data: ABS64, PREL32
        let (_, _, w) = one("6.1", R_AARCH64_ABS64, 0, 0x1122_3344_5566_7788, 0);
        assert_eq!(w, 0x5566_7788);
        let (_, _, w) = one("6.1", R_AARCH64_PREL32, 0, P - 8, 4);
        assert_eq!(w, (-4i32) as u32);
    }

    /// How X (the value the helper checks) is made from S for each operation.
    #[derive(Clone, Copy)]
    enum K {
        Abs,
        Prel,
        Page,
    }

    fn s_for(k: K, x: i64) -> u64 {
        match k {
            K::Abs => x as u64,
            K::Prel => P.wrapping_add(x as u64),
            K::Page => (P & !0xfff).wrapping_add(x as u64),
        }
    }

    #[test]
    fn every_checked_type_fails_exactly_outside_its_range() {
        const G: i64 = 1 << 32;
        // (type, instruction, how X is made, lowest X, highest X, step beyond)
        let cases: &[(u32, u32, K, i64, i64, i64)] = &[
            (R_AARCH64_ABS32, 0, K::Abs, 0, u32::MAX as i64, 1),
            (R_AARCH64_ABS16, 0, K::Abs, 0, 0xffff, 1),
            (
                R_AARCH64_PREL32,
                0,
                K::Prel,
                i32::MIN as i64,
                i32::MAX as i64,
                1,
            ),
            (R_AARCH64_PREL16, 0, K::Prel, -0x8000, 0x7fff, 1),
            (R_AARCH64_MOVW_UABS_G0, 0xf280_0000, K::Abs, 0, 0xffff, 1),
            (R_AARCH64_MOVW_UABS_G1, 0xf2a0_0000, K::Abs, 0, G - 1, 1),
            (
                R_AARCH64_MOVW_UABS_G2,
                0xf2c0_0000,
                K::Abs,
                0,
                (1 << 48) - 1,
                1,
            ),
            (
                R_AARCH64_MOVW_SABS_G0,
                0xd280_0000,
                K::Abs,
                -0x10000,
                0xffff,
                1,
            ),
            (R_AARCH64_MOVW_SABS_G1, 0xd2a0_0000, K::Abs, -G, G - 1, 1),
            (
                R_AARCH64_MOVW_SABS_G2,
                0xd2c0_0000,
                K::Abs,
                -(1 << 48),
                (1 << 48) - 1,
                1,
            ),
            (
                R_AARCH64_MOVW_PREL_G0,
                0xd280_0000,
                K::Prel,
                -0x10000,
                0xffff,
                1,
            ),
            (R_AARCH64_MOVW_PREL_G1, 0xd2a0_0000, K::Prel, -G, G - 1, 1),
            (
                R_AARCH64_MOVW_PREL_G2,
                0xd2c0_0000,
                K::Prel,
                -(1 << 48),
                (1 << 48) - 1,
                1,
            ),
            (
                R_AARCH64_LD_PREL_LO19,
                0x5800_0000,
                K::Prel,
                -(1 << 20),
                (1 << 20) - 1,
                1,
            ),
            (
                R_AARCH64_ADR_PREL_LO21,
                0x1000_0000,
                K::Prel,
                -(1 << 20),
                (1 << 20) - 1,
                1,
            ),
            (
                R_AARCH64_ADR_PREL_PG_HI21,
                0x9000_0000,
                K::Page,
                -G,
                G - 4096,
                4096,
            ),
            (
                R_AARCH64_TSTBR14,
                0x3600_0000,
                K::Prel,
                -(1 << 15),
                (1 << 15) - 1,
                1,
            ),
            (
                R_AARCH64_CONDBR19,
                0x5400_0000,
                K::Prel,
                -(1 << 20),
                (1 << 20) - 1,
                1,
            ),
        ];
        for v in ["6.1", "6.12"] {
            for &(t, insn, k, lo, hi, step) in cases {
                for (x, ok) in [
                    (lo, true),
                    (hi, true),
                    (lo - step, false),
                    (hi + step, false),
                ] {
                    let s = s_for(k, x);
                    let (r, log, _) = one(v, t, insn, s, 0);
                    assert_eq!(r.is_ok(), ok, "{v} type {t} X {x:#x}");
                    if !ok {
                        let prefix = if v == "6.1" { "" } else { "Modules: " };
                        assert_eq!(
                            log,
                            vec![format!(
                                "{prefix}module mp: overflow in relocation type {t} val {s:x}"
                            )]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn unchecked_types_never_fail_and_keep_the_truncated_value() {
        let types = [
            R_AARCH64_ABS64,
            R_AARCH64_PREL64,
            R_AARCH64_MOVW_UABS_G0_NC,
            R_AARCH64_MOVW_UABS_G1_NC,
            R_AARCH64_MOVW_UABS_G2_NC,
            R_AARCH64_MOVW_UABS_G3,
            R_AARCH64_MOVW_PREL_G0_NC,
            R_AARCH64_MOVW_PREL_G1_NC,
            R_AARCH64_MOVW_PREL_G2_NC,
            R_AARCH64_MOVW_PREL_G3,
            R_AARCH64_ADR_PREL_PG_HI21_NC,
            R_AARCH64_ADD_ABS_LO12_NC,
            R_AARCH64_LDST8_ABS_LO12_NC,
            R_AARCH64_LDST16_ABS_LO12_NC,
            R_AARCH64_LDST32_ABS_LO12_NC,
            R_AARCH64_LDST64_ABS_LO12_NC,
            R_AARCH64_LDST128_ABS_LO12_NC,
            R_AARCH64_NONE,
            R_ARM_NONE,
        ];
        for v in ["6.1", "6.12"] {
            for t in types {
                for s in [0u64, u64::MAX, 1 << 63, P.wrapping_add(1 << 40)] {
                    let (r, log, _) = one(v, t, 0xd280_0000, s, 0);
                    assert_eq!((r, log), (Ok(()), Vec::<String>::new()), "{v} {t} {s:x}");
                }
            }
        }
        // the checked ones write before failing: ABS16 of 0x12345 leaves 0x2345
        let (r, _, w) = one("6.1", R_AARCH64_ABS16, 0xaaaa_aaaa, 0x12345, 0);
        assert_eq!((r, w), (Err(Errno::ENOEXEC), 0xaaaa_2345));
        // MOVW_UABS_G0 of 0x12345 leaves imm16 = 0x2345
        let (r, _, w) = one("6.12", R_AARCH64_MOVW_UABS_G0, 0xf280_0000, 0x12345, 0);
        assert_eq!((r, w), (Err(Errno::ENOEXEC), 0xf284_68a0));
        // the G3 forms take bits [63:48]
        let (_, _, w) = one("6.1", R_AARCH64_MOVW_UABS_G3, 0xf2e0_0000, 0xabcd << 48, 0);
        assert_eq!(w, 0xf2f5_79a0);
    }

    #[test]
    fn branches_without_plts_and_unsupported_types() {
        // 6.12 with no PLT section: out of range -> the PLT attempt fails -> ENOEXEC, no line
        let (r, log, _) = one("6.12", R_AARCH64_CALL26, 0x9400_0000, P + (128 << 20), 0);
        assert_eq!((r, log), (Err(Errno::ENOEXEC), vec![]));
        // in range at both ends
        for v in ["6.1", "6.12"] {
            for x in [(128i64 << 20) - 4, -(128 << 20)] {
                let (r, _, _) = one(
                    v,
                    R_AARCH64_JUMP26,
                    0x1400_0000,
                    P.wrapping_add(x as u64),
                    0,
                );
                assert_eq!(r, Ok(()));
            }
        }
        for v in ["6.1", "6.12"] {
            let prefix = if v == "6.1" { "" } else { "Modules: " };
            for t in [1u32, 255, 281, 294, 300, 1027, 0xffff_ffff] {
                let (r, log, _) = one(v, t, 0, 0, 0);
                assert_eq!(r, Err(Errno::ENOEXEC));
                assert_eq!(
                    log,
                    vec![format!(
                        "{prefix}module mp: unsupported RELA relocation: {t}"
                    )]
                );
            }
        }
    }

    #[test]
    fn the_break_fault_word_is_left_alone() {
        let (r, _, w) = one("6.1", R_AARCH64_CALL26, insn::AARCH64_BREAK_FAULT, P + 8, 0);
        assert_eq!((r, w), (Ok(()), insn::AARCH64_BREAK_FAULT));
    }
}
