//! x86_64 relocations: `apply_relocate_add()` of `arch/x86/kernel/module.c`.
//!
//! 6.1 (`__apply_relocate_add()` with `write` = `memcpy` during a load) and 6.12
//! (`write_relocate_add(apply = true)` -> `__write_relocate_add()`) support the same types with
//! the same arithmetic; they differ in the order of their checks and in one message:
//!
//! | | 6.1 | 6.12 |
//! |---|---|---|
//! | order | place-is-zero check, write, then (32/32S) the overflow check against the bytes written | overflow check on the value, then the place-is-zero check, then the write |
//! | nonzero place | `x86/modules: Skipping invalid relocation target, existing value is nonzero for type %d, loc %p, val %Lx` | `x86/modules: Invalid relocation target, existing value is nonzero for type %d, loc %p, val %Lx` |
//! | `val` in that message for PC32/PLT32/PC64 | S + A (checked before subtracting P) | S + A - P |
//! | `R_X86_64_NONE` | `break` | `continue` (same effect) |
//!
//! So a 32/32S overflow leaves the truncated value in memory on 6.1 and nothing on 6.12, and
//! an overflowing value at a nonzero place is "invalid target" on 6.1 and "overflow" on 6.12.
//! PC32/PLT32 are never range-checked (the check is `#if 0` in 6.1 and absent in 6.12); no PLT
//! exists on x86_64.
//!
//! Every line gets the file's `pr_fmt`, `KBUILD_MODNAME ": "`, i.e. `module: `. `%p` is printed
//! as [`super::hashed_pointer`] (the kernel's hash is keyed per boot).

use crate::errno::Errno;
use crate::log::KernelLog;
use crate::memory::Memory;
use crate::profile::{KernelVersion, Profile};

use super::{Rela, RelocSymbol, hashed_pointer};

/// `R_X86_64_NONE`.
pub const R_X86_64_NONE: u32 = 0;
/// `R_X86_64_64`: S + A, 64 bits.
pub const R_X86_64_64: u32 = 1;
/// `R_X86_64_PC32`: S + A - P, 32 bits, not range-checked.
pub const R_X86_64_PC32: u32 = 2;
/// `R_X86_64_PLT32`: as PC32 (the kernel makes no PLT).
pub const R_X86_64_PLT32: u32 = 4;
/// `R_X86_64_32`: S + A, zero-extended 32 bits.
pub const R_X86_64_32: u32 = 10;
/// `R_X86_64_32S`: S + A, sign-extended 32 bits.
pub const R_X86_64_32S: u32 = 11;
/// `R_X86_64_PC64`: S + A - P, 64 bits.
pub const R_X86_64_PC64: u32 = 24;

/// The `pr_fmt` of `arch/x86/kernel/module.c`.
const PR_FMT: &str = "module: ";

/// `apply_relocate_add()` on x86_64 (`arch/x86/kernel/module.c`; see the
/// [module documentation](self) for 6.1 vs 6.12): apply `relas` to the section at `base`.
///
/// Errors, each after printing the kernel's lines: `ENOEXEC` for a nonzero place, an
/// overflowing `R_X86_64_32`/`32S` (`overflow in relocation type %d val %Lx` and
/// `` `%s' likely not compiled with -mcmodel=kernel ``) or another type
/// (`%s: Unknown rela relocation: %llu`). Without a log line: `ENOEXEC` for a symbol index past
/// `symbols`, `EFAULT` for a place outside mapped memory (unchecked in the kernel).
pub fn apply_relocate_add(
    profile: &Profile,
    modname: &str,
    base: u64,
    symbols: &[RelocSymbol],
    relas: &[Rela],
    memory: &mut Memory,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let v6_1 = profile.version() == KernelVersion::V6_1;
    for r in relas {
        let loc = base.wrapping_add(r.offset);
        let sym = symbols.get(r.sym as usize).ok_or(Errno::ENOEXEC)?;
        let mut val = sym.value.wrapping_add(r.addend as u64);
        let size: usize = match r.r_type {
            R_X86_64_NONE => continue,
            R_X86_64_64 | R_X86_64_PC64 => 8,
            R_X86_64_32 | R_X86_64_32S | R_X86_64_PC32 | R_X86_64_PLT32 => 4,
            t => {
                log.err(format!(
                    "{PR_FMT}{modname}: Unknown rela relocation: {}",
                    u64::from(t)
                ));
                return Err(Errno::ENOEXEC);
            }
        };
        let pc_relative = matches!(r.r_type, R_X86_64_PC32 | R_X86_64_PLT32 | R_X86_64_PC64);
        if v6_1 {
            // zero check (on the value before P is subtracted), write, overflow check
            if !is_zero(memory.read(loc, size)?) {
                return invalid(log, "Skipping invalid", r.r_type, loc, val);
            }
            if pc_relative {
                val = val.wrapping_sub(loc);
            }
            write(memory, loc, val, size)?;
            let written = memory.read_u32(loc);
            let fits = match r.r_type {
                R_X86_64_32 => val == u64::from(written?),
                R_X86_64_32S => val as i64 == i64::from(written? as i32),
                _ => true,
            };
            if !fits {
                return overflow(log, modname, r.r_type, val);
            }
        } else {
            // overflow check, subtract P, zero check, write
            let fits = match r.r_type {
                R_X86_64_32 => val == u64::from(val as u32),
                R_X86_64_32S => val as i64 == i64::from(val as i32),
                _ => true,
            };
            if !fits {
                return overflow(log, modname, r.r_type, val);
            }
            if pc_relative {
                val = val.wrapping_sub(loc);
            }
            if !is_zero(memory.read(loc, size)?) {
                return invalid(log, "Invalid", r.r_type, loc, val);
            }
            write(memory, loc, val, size)?;
        }
    }
    Ok(())
}

/// `write(loc, &val, size)`: the low `size` bytes of `val`, little endian.
fn write(memory: &mut Memory, loc: u64, val: u64, size: usize) -> Result<(), Errno> {
    if size == 8 {
        memory.write_u64(loc, val)
    } else {
        memory.write_u32(loc, val as u32)
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// The `invalid_relocation` exit (6.1) / the nonzero branch (6.12).
fn invalid(log: &mut KernelLog, what: &str, r_type: u32, loc: u64, val: u64) -> Result<(), Errno> {
    log.err(format!(
        "{PR_FMT}x86/modules: {what} relocation target, existing value is nonzero for type {}, loc {}, val {val:x}",
        r_type as i32,
        hashed_pointer(loc)
    ));
    Err(Errno::ENOEXEC)
}

/// The `overflow` exit.
fn overflow(log: &mut KernelLog, modname: &str, r_type: u32, val: u64) -> Result<(), Errno> {
    log.err(format!(
        "{PR_FMT}overflow in relocation type {} val {val:x}",
        r_type as i32
    ));
    log.err(format!(
        "{PR_FMT}`{modname}' likely not compiled with -mcmodel=kernel"
    ));
    Err(Errno::ENOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::RegionKind;

    const BASE: u64 = 0xffff_ffff_c000_1000;

    fn profile(v: &str) -> &'static Profile {
        Profile::builtin(&format!("debian-{v}-amd64")).unwrap()
    }

    fn mem() -> Memory {
        let mut m = Memory::new(1 << 20);
        m.alloc(BASE, 0x100, RegionKind::Module, "text").unwrap();
        m
    }

    fn syms(value: u64) -> Vec<RelocSymbol> {
        vec![
            RelocSymbol { value: 0, shndx: 0 },
            RelocSymbol { value, shndx: 0 },
        ]
    }

    fn rela(offset: u64, r_type: u32, addend: i64) -> Rela {
        Rela {
            offset,
            sym: 1,
            r_type,
            addend,
        }
    }

    fn run(v: &str, m: &mut Memory, value: u64, r: Rela) -> (Result<(), Errno>, Vec<String>) {
        let mut log = KernelLog::new();
        let res = apply_relocate_add(profile(v), "mp", BASE, &syms(value), &[r], m, &mut log);
        (res, log.texts())
    }

    #[test]
    fn formulas_and_widths() {
        for v in ["6.1", "6.12"] {
            let mut m = mem();
            let s = 0xffff_ffff_8100_0000u64;
            let rs = [
                rela(0x00, R_X86_64_64, 8),
                rela(0x08, R_X86_64_PC32, -4),
                rela(0x0c, R_X86_64_PLT32, -4),
                rela(0x10, R_X86_64_32S, 0x10),
                rela(0x18, R_X86_64_PC64, 0),
                rela(0x20, R_X86_64_NONE, 0),
            ];
            let mut log = KernelLog::new();
            apply_relocate_add(profile(v), "mp", BASE, &syms(s), &rs, &mut m, &mut log).unwrap();
            assert!(log.is_empty());
            assert_eq!(m.read_u64(BASE), Ok(s + 8));
            let pc = s.wrapping_sub(4).wrapping_sub(BASE + 8) as u32;
            assert_eq!(m.read_u32(BASE + 8), Ok(pc));
            assert_eq!(m.read_u32(BASE + 12), Ok(pc.wrapping_sub(4)));
            assert_eq!(m.read_u32(BASE + 0x10), Ok((s + 0x10) as u32));
            assert_eq!(m.read_u64(BASE + 0x18), Ok(s.wrapping_sub(BASE + 0x18)));
            assert_eq!(m.read_u64(BASE + 0x20), Ok(0));
        }
        // worked example: P = 0xffffffffc0001000, S = 0xffffffff81000000, A = -4
        let mut m = mem();
        let (r, _) = run(
            "6.1",
            &mut m,
            0xffff_ffff_8100_0000,
            rela(0, R_X86_64_PC32, -4),
        );
        assert_eq!(r, Ok(()));
        assert_eq!(m.read(BASE, 4).unwrap(), &[0xfc, 0xef, 0xff, 0xc0]);
    }

    #[test]
    fn r32_and_r32s_overflow_boundaries() {
        for v in ["6.1", "6.12"] {
            // R_X86_64_32: [0, 2^32)
            for (val, ok) in [
                (0u64, true),
                (0xffff_ffff, true),
                (0x1_0000_0000, false),
                (u64::MAX, false),
            ] {
                let mut m = mem();
                let (r, _) = run(v, &mut m, val, rela(0, R_X86_64_32, 0));
                assert_eq!(r.is_ok(), ok, "{v} 32 {val:x}");
            }
            // R_X86_64_32S: [-2^31, 2^31)
            for (val, ok) in [
                (0x7fff_ffffu64, true),
                (0x8000_0000, false),
                (0xffff_ffff_8000_0000, true),
                (0xffff_ffff_7fff_ffff, false),
            ] {
                let mut m = mem();
                let (r, _) = run(v, &mut m, val, rela(0, R_X86_64_32S, 0));
                assert_eq!(r.is_ok(), ok, "{v} 32S {val:x}");
            }
        }
    }

    #[test]
    fn overflow_messages_and_what_stays_in_memory() {
        let val = 0xffff_ffff_c000_2008u64;
        let expect = vec![
            "module: overflow in relocation type 10 val ffffffffc0002008".to_string(),
            "module: `mp' likely not compiled with -mcmodel=kernel".to_string(),
        ];
        // 6.1 writes the truncated value first
        let mut m = mem();
        let (r, l) = run("6.1", &mut m, val, rela(4, R_X86_64_32, 0));
        assert_eq!((r, l), (Err(Errno::ENOEXEC), expect.clone()));
        assert_eq!(m.read_u32(BASE + 4), Ok(0xc000_2008));
        // 6.12 writes nothing
        let mut m = mem();
        let (r, l) = run("6.12", &mut m, val, rela(4, R_X86_64_32, 0));
        assert_eq!((r, l), (Err(Errno::ENOEXEC), expect));
        assert_eq!(m.read_u32(BASE + 4), Ok(0));
    }

    #[test]
    fn nonzero_place_messages_differ_between_versions() {
        let s = 0xffff_ffff_8100_0000u64;
        for (v, text) in [
            (
                "6.1",
                format!(
                    "module: x86/modules: Skipping invalid relocation target, existing value is nonzero for type 2, loc {}, val ffffffff80fffffc",
                    hashed_pointer(BASE + 8)
                ),
            ),
            (
                "6.12",
                format!(
                    "module: x86/modules: Invalid relocation target, existing value is nonzero for type 2, loc {}, val {:x}",
                    hashed_pointer(BASE + 8),
                    (s - 4).wrapping_sub(BASE + 8)
                ),
            ),
        ] {
            let mut m = mem();
            m.write(BASE + 11, &[1]).unwrap();
            let (r, l) = run(v, &mut m, s, rela(8, R_X86_64_PC32, -4));
            assert_eq!((r, l), (Err(Errno::ENOEXEC), vec![text]));
            assert_eq!(m.read_u32(BASE + 8), Ok(0x0100_0000));
        }
        // 64-bit types look at all 8 bytes, 32-bit ones at 4
        let mut m = mem();
        m.write(BASE + 7, &[1]).unwrap();
        assert!(run("6.12", &mut m, s, rela(0, R_X86_64_64, 0)).0.is_err());
        let mut m = mem();
        m.write(BASE + 4, &[1]).unwrap();
        assert!(run("6.12", &mut m, s, rela(0, R_X86_64_32S, 0)).0.is_ok());
    }

    #[test]
    fn overflow_at_a_nonzero_place_is_reported_differently() {
        let mut m = mem();
        m.write(BASE, &[1]).unwrap();
        let (_, l) = run("6.1", &mut m, 1 << 40, rela(0, R_X86_64_32, 0));
        assert!(l[0].contains("Skipping invalid relocation target"), "{l:?}");
        let (_, l) = run("6.12", &mut m, 1 << 40, rela(0, R_X86_64_32, 0));
        assert_eq!(
            l[0],
            "module: overflow in relocation type 10 val 10000000000"
        );
    }

    #[test]
    fn unknown_types_and_unchecked_inputs() {
        for v in ["6.1", "6.12"] {
            for t in [3u32, 9, 12, 41, 42, 0xffff_ffff] {
                let mut m = mem();
                let (r, l) = run(v, &mut m, 0, rela(0, t, 0));
                assert_eq!(r, Err(Errno::ENOEXEC));
                assert_eq!(l, vec![format!("module: mp: Unknown rela relocation: {t}")]);
            }
            let mut m = mem();
            assert_eq!(
                run(v, &mut m, 0, rela(0x100, R_X86_64_64, 0)).0,
                Err(Errno::EFAULT)
            );
            let mut log = KernelLog::new();
            let bad = Rela {
                sym: 7,
                ..rela(0, R_X86_64_64, 0)
            };
            assert_eq!(
                apply_relocate_add(profile(v), "mp", BASE, &syms(0), &[bad], &mut m, &mut log),
                Err(Errno::ENOEXEC)
            );
            assert!(log.is_empty());
        }
    }
}
