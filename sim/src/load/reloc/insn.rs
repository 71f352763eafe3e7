//! The AArch64 instruction encoders the module loader uses (`arch/arm64/lib/insn.c`, identical
//! in 6.1 and 6.12 for every function here), bit for bit, including their quirks: an
//! instruction word equal to [`AARCH64_BREAK_FAULT`] passes through the immediate encoder
//! unchanged, and the generators return [`AARCH64_BREAK_FAULT`] instead of failing.
//!
//! *Invariant:* every function is total (no panic for any input).

use crate::log::KernelLog;

/// `AARCH64_BREAK_FAULT` (`asm/insn-def.h`): `BRK #0x100` (`AARCH64_BREAK_MON | FAULT_BRK_IMM << 5`),
/// what the generators return for an impossible encoding.
pub const AARCH64_BREAK_FAULT: u32 = 0xd420_2000;

/// `aarch64_insn_get_adr_value()`: ADR with every field zero.
pub const INSN_ADR: u32 = 0x1000_0000;
/// `aarch64_insn_get_adrp_value()`: ADRP with every field zero.
pub const INSN_ADRP: u32 = 0x9000_0000;
/// `aarch64_insn_get_add_imm_value()`: ADD (immediate), 32-bit, every field zero.
pub const INSN_ADD_IMM: u32 = 0x1100_0000;
/// `aarch64_insn_get_b_value()`: B with a zero offset.
pub const INSN_B: u32 = 0x1400_0000;
/// `aarch64_insn_get_bl_value()`: BL with a zero offset.
pub const INSN_BL: u32 = 0x9400_0000;
/// `aarch64_insn_get_br_value()`: BR with register 0.
pub const INSN_BR: u32 = 0xd61f_0000;

/// `AARCH64_INSN_SF_BIT`: the 64-bit variant bit.
const SF_BIT: u32 = 1 << 31;
/// `AARCH64_INSN_LSL_12`: ADD/SUB immediate shifted by 12.
const LSL_12: u32 = 1 << 22;

const ADR_IMM_HILOSPLIT: u32 = 2;
const ADR_IMM_SIZE: u64 = 2 << 20; // SZ_2M
const ADR_IMM_LOMASK: u32 = (1 << ADR_IMM_HILOSPLIT) - 1;
const ADR_IMM_HIMASK: u32 = ((ADR_IMM_SIZE >> ADR_IMM_HILOSPLIT) - 1) as u32;
const ADR_IMM_LOSHIFT: u32 = 29;
const ADR_IMM_HISHIFT: u32 = 5;

/// `SZ_128M`.
const SZ_128M: i64 = 128 << 20;
/// `SZ_1M`.
const SZ_1M: i32 = 1 << 20;

/// `enum aarch64_insn_imm_type`, the immediate fields the module loader encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImmType {
    /// `AARCH64_INSN_IMM_ADR`: immlo in bits `[30:29]`, immhi in bits `[23:5]`.
    Adr,
    /// `AARCH64_INSN_IMM_26`: bits `[25:0]` (B, BL).
    Imm26,
    /// `AARCH64_INSN_IMM_19`: bits `[23:5]` (B.cond, CBZ, LDR literal).
    Imm19,
    /// `AARCH64_INSN_IMM_16`: bits `[20:5]` (MOVZ/MOVN/MOVK).
    Imm16,
    /// `AARCH64_INSN_IMM_14`: bits `[18:5]` (TBZ/TBNZ).
    Imm14,
    /// `AARCH64_INSN_IMM_12`: bits `[21:10]` (ADD immediate, LDR/STR unsigned offset).
    Imm12,
}

/// `aarch64_get_imm_shift_mask()` for the non-ADR types: (mask, shift).
fn shift_mask(t: ImmType) -> (u32, u32) {
    match t {
        ImmType::Imm26 => ((1 << 26) - 1, 0),
        ImmType::Imm19 => ((1 << 19) - 1, 5),
        ImmType::Imm16 => ((1 << 16) - 1, 5),
        ImmType::Imm14 => ((1 << 14) - 1, 5),
        ImmType::Imm12 => ((1 << 12) - 1, 10),
        // not used for ADR (handled by the callers); the value is never read
        ImmType::Adr => (0, 0),
    }
}

/// `aarch64_insn_encode_immediate()`: replace the `t` field of `insn` with the low bits of
/// `imm`. An `insn` equal to [`AARCH64_BREAK_FAULT`] is returned unchanged.
pub fn encode_immediate(t: ImmType, insn: u32, imm: u64) -> u32 {
    if insn == AARCH64_BREAK_FAULT {
        return AARCH64_BREAK_FAULT;
    }
    let (imm, mask, shift) = match t {
        ImmType::Adr => {
            let immlo = ((imm & u64::from(ADR_IMM_LOMASK)) as u32) << ADR_IMM_LOSHIFT;
            let hi = imm >> ADR_IMM_HILOSPLIT;
            let immhi = ((hi & u64::from(ADR_IMM_HIMASK)) as u32) << ADR_IMM_HISHIFT;
            let mask = (ADR_IMM_LOMASK << ADR_IMM_LOSHIFT) | (ADR_IMM_HIMASK << ADR_IMM_HISHIFT);
            (u64::from(immlo | immhi), mask, 0)
        }
        _ => {
            let (mask, shift) = shift_mask(t);
            (imm, mask, shift)
        }
    };
    (insn & !(mask << shift)) | (((imm & u64::from(mask)) << shift) as u32)
}

/// `aarch64_insn_decode_immediate()`: the raw (unsigned, not sign-extended) `t` field.
pub fn decode_immediate(t: ImmType, insn: u32) -> u64 {
    let (v, mask, shift) = match t {
        ImmType::Adr => {
            let immlo = (insn >> ADR_IMM_LOSHIFT) & ADR_IMM_LOMASK;
            let immhi = (insn >> ADR_IMM_HISHIFT) & ADR_IMM_HIMASK;
            (
                (immhi << ADR_IMM_HILOSPLIT) | immlo,
                (ADR_IMM_SIZE - 1) as u32,
                0,
            )
        }
        _ => {
            let (mask, shift) = shift_mask(t);
            (insn, mask, shift)
        }
    };
    u64::from((v >> shift) & mask)
}

/// `aarch64_insn_decode_register(AARCH64_INSN_REGTYPE_RD, insn)`: bits `[4:0]`.
pub fn decode_register_rd(insn: u32) -> u32 {
    insn & 0x1f
}

/// `aarch64_insn_encode_register()` for a register number 0..=31 at `shift`;
/// [`AARCH64_BREAK_FAULT`] stays as it is. Returns `None` for a register out of range (the
/// kernel prints `aarch64_insn_encode_register: unknown register encoding %d` and returns
/// [`AARCH64_BREAK_FAULT`]).
fn encode_register(insn: u32, reg: u32, shift: u32, log: &mut KernelLog) -> u32 {
    if insn == AARCH64_BREAK_FAULT {
        return AARCH64_BREAK_FAULT;
    }
    if reg > 31 {
        log.err(format!(
            "aarch64_insn_encode_register: unknown register encoding {}",
            reg as i32
        ));
        return AARCH64_BREAK_FAULT;
    }
    (insn & !(0x1f << shift)) | (reg << shift)
}

/// `aarch64_insn_is_adrp()`.
pub fn is_adrp(insn: u32) -> bool {
    insn & 0x9f00_0000 == INSN_ADRP
}

/// `aarch64_insn_adrp_get_offset()`: the ADRP's byte offset (`imm21 << 12`, truncated to
/// `s32` as in the kernel, so bit 20 of the immediate is lost). `None` where the kernel hits its
/// `BUG_ON(!aarch64_insn_is_adrp(insn))`.
pub fn adrp_get_offset(insn: u32) -> Option<i32> {
    if !is_adrp(insn) {
        return None;
    }
    Some((decode_immediate(ImmType::Adr, insn) << 12) as u32 as i32)
}

/// `aarch64_insn_gen_adr()`: `ADR Xreg, addr` (or `ADRP Xreg, addr`, then relative to
/// `pc`'s 4 KiB page) at `pc`; [`AARCH64_BREAK_FAULT`] when the offset is outside
/// `[-1 MiB, 1 MiB)` (in pages for ADRP). The kernel computes the offset in 64 bits and truncates
/// it to `s32` before the range check; so does this.
pub fn gen_adr(pc: u64, addr: u64, reg: u32, adrp: bool, log: &mut KernelLog) -> u32 {
    let (insn, offset) = if adrp {
        (
            INSN_ADRP,
            (addr.wrapping_sub(pc & !0xfff) >> 12) as u32 as i32,
        )
    } else {
        (INSN_ADR, addr.wrapping_sub(pc) as u32 as i32)
    };
    if !(-SZ_1M..SZ_1M).contains(&offset) {
        return AARCH64_BREAK_FAULT;
    }
    let insn = encode_register(insn, reg, 0, log);
    encode_immediate(ImmType::Adr, insn, i64::from(offset) as u64)
}

/// `aarch64_insn_gen_add_sub_imm(dst, src, imm, AARCH64_INSN_VARIANT_64BIT,
/// AARCH64_INSN_ADSB_ADD)`: `ADD Xdst, Xsrc, #imm` (with `LSL #12` when only the upper 12 of
/// 24 bits are set); an immediate that cannot be encoded prints
/// `aarch64_insn_gen_add_sub_imm: invalid immediate encoding %d` and gives
/// [`AARCH64_BREAK_FAULT`].
pub fn gen_add_imm64(dst: u32, src: u32, imm: i32, log: &mut KernelLog) -> u32 {
    let mut insn = INSN_ADD_IMM | SF_BIT;
    let mut imm = imm;
    if imm & !((1 << 24) - 1) != 0 || (imm & !0xfff != 0 && imm & 0xfff != 0) {
        log.err(format!(
            "aarch64_insn_gen_add_sub_imm: invalid immediate encoding {imm}"
        ));
        return AARCH64_BREAK_FAULT;
    }
    if imm & !0xfff != 0 {
        imm >>= 12;
        insn |= LSL_12;
    }
    let insn = encode_register(insn, dst, 0, log);
    let insn = encode_register(insn, src, 5, log);
    encode_immediate(ImmType::Imm12, insn, i64::from(imm) as u64)
}

/// `aarch64_insn_gen_branch_reg(reg, AARCH64_INSN_BRANCH_NOLINK)`: `BR Xreg`.
pub fn gen_branch_reg(reg: u32, log: &mut KernelLog) -> u32 {
    encode_register(INSN_BR, reg, 5, log)
}

/// `aarch64_insn_gen_branch_imm(pc, addr, link ? BRANCH_LINK : BRANCH_NOLINK)`: `B`/`BL addr`
/// at `pc`. Through `label_imm_common()`: a misaligned `pc` or `addr` prints
/// `label_imm_common: A64 instructions must be word aligned`, an offset outside
/// `[-128 MiB, 128 MiB)` prints `label_imm_common: offset out of range`; both give
/// [`AARCH64_BREAK_FAULT`].
pub fn gen_branch_imm(pc: u64, addr: u64, link: bool, log: &mut KernelLog) -> u32 {
    let offset = if pc & 3 != 0 || addr & 3 != 0 {
        log.err("label_imm_common: A64 instructions must be word aligned");
        SZ_128M
    } else {
        let offset = (addr as i64).wrapping_sub(pc as i64);
        if !(-SZ_128M..SZ_128M).contains(&offset) {
            log.err("label_imm_common: offset out of range");
            SZ_128M
        } else {
            offset
        }
    };
    if offset >= SZ_128M {
        return AARCH64_BREAK_FAULT;
    }
    let insn = if link { INSN_BL } else { INSN_B };
    encode_immediate(ImmType::Imm26, insn, (offset >> 2) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_fields_match_the_architecture() {
        // bl #0x1000 -> imm26 = 0x400
        assert_eq!(
            encode_immediate(ImmType::Imm26, INSN_BL, 0x400),
            0x9400_0400
        );
        // backwards: -0x1000 / 4
        assert_eq!(
            encode_immediate(ImmType::Imm26, INSN_BL, (-0x400i64) as u64),
            0x97ff_fc00
        );
        // add x0, x0, #0x678
        assert_eq!(
            encode_immediate(ImmType::Imm12, 0x9100_0000, 0x678),
            0x9119_e000
        );
        // ldr x1, [x0, #0x678] (scaled by 8: 0xcf)
        assert_eq!(
            encode_immediate(ImmType::Imm12, 0xf940_0001, 0xcf),
            0xf943_3c01
        );
        // adrp x0 with page delta 0x12335
        assert_eq!(
            encode_immediate(ImmType::Adr, INSN_ADRP, 0x12335),
            0xb009_19a0
        );
        assert_eq!(decode_immediate(ImmType::Adr, 0xb009_19a0), 0x12335);
        // the break-fault word is never changed
        assert_eq!(
            encode_immediate(ImmType::Imm16, AARCH64_BREAK_FAULT, 0xffff),
            AARCH64_BREAK_FAULT
        );
        // fields only take their bits
        assert_eq!(encode_immediate(ImmType::Imm14, 0, u64::MAX), 0x3fff << 5);
        assert_eq!(encode_immediate(ImmType::Imm19, 0, u64::MAX), 0x7ffff << 5);
        assert_eq!(encode_immediate(ImmType::Imm16, 0, u64::MAX), 0xffff << 5);
        assert_eq!(encode_immediate(ImmType::Adr, 0, u64::MAX), 0x60ff_ffe0);
    }

    #[test]
    fn generators_build_the_plt_words() {
        let mut log = KernelLog::new();
        // the reference example: entry at 0xffff800000010000, dst 0xffff800081234568
        let pc = 0xffff_8000_0001_0000;
        let dst = 0xffff_8000_8123_4568;
        assert_eq!(gen_adr(pc, dst, 16, true, &mut log), 0x9040_9130);
        assert_eq!(gen_add_imm64(16, 16, 0x568, &mut log), 0x9115_a210);
        assert_eq!(gen_branch_reg(16, &mut log), 0xd61f_0200);
        assert!(log.is_empty());
        // +-4 GiB limit of ADRP: the last page in range and the first one out
        let page = pc & !0xfff;
        assert_ne!(
            gen_adr(pc, page + ((1 << 20) - 1) * 4096, 16, true, &mut log),
            AARCH64_BREAK_FAULT
        );
        assert_eq!(
            gen_adr(pc, page + (1 << 20) * 4096, 16, true, &mut log),
            AARCH64_BREAK_FAULT
        );
        assert_ne!(
            gen_adr(pc, page - (1 << 20) * 4096, 16, true, &mut log),
            AARCH64_BREAK_FAULT
        );
        assert_eq!(
            gen_adr(pc, page - (1 << 20) * 4096 - 1, 16, true, &mut log),
            AARCH64_BREAK_FAULT
        );
        assert_eq!(adrp_get_offset(0x9040_9130), Some(0x8122_4000u32 as i32));
        assert_eq!(adrp_get_offset(AARCH64_BREAK_FAULT), None);
        // add with LSL #12 and the invalid immediate
        assert_eq!(gen_add_imm64(1, 2, 0x5000, &mut log), 0x9140_1441);
        assert!(log.is_empty());
        assert_eq!(gen_add_imm64(1, 2, 0x5001, &mut log), AARCH64_BREAK_FAULT);
        assert_eq!(
            log.texts(),
            vec!["aarch64_insn_gen_add_sub_imm: invalid immediate encoding 20481"]
        );
    }

    #[test]
    fn branch_generator_limits_and_messages() {
        let mut log = KernelLog::new();
        let pc = 0xffff_8000_1000_0000u64;
        assert_eq!(gen_branch_imm(pc, pc + 8, false, &mut log), 0x1400_0002);
        assert_eq!(gen_branch_imm(pc, pc - 4, true, &mut log), 0x97ff_ffff);
        assert_eq!(
            gen_branch_imm(pc, pc + (128 << 20) - 4, false, &mut log),
            0x15ff_ffff
        );
        assert_eq!(
            gen_branch_imm(pc, pc - (128 << 20), false, &mut log),
            0x1600_0000
        );
        assert!(log.is_empty());
        assert_eq!(
            gen_branch_imm(pc, pc + (128 << 20), false, &mut log),
            AARCH64_BREAK_FAULT
        );
        assert_eq!(
            gen_branch_imm(pc, pc + 2, false, &mut log),
            AARCH64_BREAK_FAULT
        );
        assert_eq!(
            log.texts(),
            vec![
                "label_imm_common: offset out of range",
                "label_imm_common: A64 instructions must be word aligned"
            ]
        );
    }
}
