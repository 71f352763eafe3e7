//! The byte-exact oracle: real modules relocated by the simulator and statically linked by GNU
//! ld at the same addresses must have the same section bytes.
//!
//! For each module: its `SHF_ALLOC` sections get addresses (core and init apart, with gaps for
//! ld's branch stubs), each undefined symbol a kernel address (on arm64 some of them far enough
//! to need PLTs, in the "far" placement); the simulator does what the kernel does
//! (`module_frob_arch_sections`, layout, `simplify_symbols`, `apply_relocate_add` for every
//! `SHT_RELA` section with an `SHF_ALLOC` target except the ones the kernel un-ALLOCs:
//! `.modinfo`, `__versions`, `.data..percpu`); ld links the same file with a generated script
//! that puts every section at the same address and defines the same symbols. Every relocated
//! section is compared byte for byte. Where the kernel deliberately differs from a static link
//! the difference must be exactly that, and is checked semantically:
//! - arm64 `CALL26`/`JUMP26` through a kernel PLT entry where ld has a direct branch or its own
//!   stub: both must reach S + A (the PLT entry decoded, ld's stub decoded);
//! - arm64 with the erratum 843419 workaround, an ADRP at a page offset >= 0xff8 turned into an
//!   ADR of the page or a `B` to a veneer (`adrp; add #0; b back`): both must give the page.
//!
//! Needs GNU ld (`ld`, `aarch64-linux-gnu-ld`), `xz` and the modules (the fixtures and
//! `target/lab/root` of the main checkout); a missing piece skips the test with a note.
//! `MODSIM_RELOC_ORACLE=all` checks every Debian module instead of a sample;
//! `MODSIM_RELOC_ORACLE=<n>` every n-th one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::aarch64::{R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADR_PREL_PG_HI21_NC};
use super::aarch64::{R_AARCH64_CALL26, R_AARCH64_JUMP26};
use super::insn::{self, ImmType};
use super::*;
use crate::memory::RegionKind;
use crate::profile::Arch;

// ---------------------------------------------------------------- minimal ELF reading

#[derive(Clone, Debug)]
struct Shdr {
    name: String,
    sh_type: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    addralign: u64,
    /// Where the header is in the file.
    hdr_off: usize,
}

struct Elf {
    data: Vec<u8>,
    sh: Vec<Shdr>,
}

fn u16le(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().unwrap())
}
fn u32le(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}
fn u64le(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}

fn cstr(d: &[u8], o: usize) -> String {
    let end = d[o..].iter().position(|&b| b == 0).unwrap() + o;
    String::from_utf8_lossy(&d[o..end]).into_owned()
}

impl Elf {
    fn parse(data: Vec<u8>) -> Elf {
        assert_eq!(&data[..4], b"\x7fELF");
        let shoff = u64le(&data, 0x28) as usize;
        let shentsize = u16le(&data, 0x3a) as usize;
        let shnum = u16le(&data, 0x3c) as usize;
        let shstrndx = u16le(&data, 0x3e) as usize;
        let raw: Vec<_> = (0..shnum)
            .map(|i| {
                let o = shoff + i * shentsize;
                (
                    u32le(&data, o),
                    Shdr {
                        name: String::new(),
                        sh_type: u32le(&data, o + 4),
                        flags: u64le(&data, o + 8),
                        offset: u64le(&data, o + 0x18),
                        size: u64le(&data, o + 0x20),
                        link: u32le(&data, o + 0x28),
                        info: u32le(&data, o + 0x2c),
                        addralign: u64le(&data, o + 0x30),
                        hdr_off: o,
                    },
                )
            })
            .collect();
        let stroff = raw[shstrndx].1.offset as usize;
        let sh = raw
            .into_iter()
            .map(|(n, mut s)| {
                s.name = cstr(&data, stroff + n as usize);
                s
            })
            .collect();
        Elf { data, sh }
    }

    fn bytes(&self, i: usize) -> &[u8] {
        let s = &self.sh[i];
        if s.sh_type == SHT_NOBITS {
            return &[];
        }
        &self.data[s.offset as usize..(s.offset + s.size) as usize]
    }

    /// (name, st_value, st_shndx, binding) of every symbol, index 0 included.
    fn symbols(&self) -> Vec<(String, u64, u16, u8)> {
        let Some(i) = self.sh.iter().position(|s| s.sh_type == SHT_SYMTAB) else {
            return vec![];
        };
        let st = &self.sh[i];
        let strtab = self.sh[st.link as usize].offset as usize;
        let d = self.bytes(i);
        d.chunks_exact(24)
            .map(|e| {
                (
                    cstr(&self.data, strtab + u32le(e, 0) as usize),
                    u64le(e, 8),
                    u16le(e, 6),
                    e[4] >> 4,
                )
            })
            .collect()
    }

    fn relas(&self, i: usize) -> Vec<Rela> {
        self.bytes(i)
            .chunks_exact(24)
            .map(|e| Rela::from_raw(u64le(e, 0), u64le(e, 8), u64le(e, 16) as i64))
            .collect()
    }
}

// ---------------------------------------------------------------- placements

const SHN_ABS: u16 = 0xfff1;
const SHN_COMMON: u16 = 0xfff2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Every kernel symbol within reach of a branch.
    Near,
    /// About half of the kernel symbols 1.5 GiB below the module (arm64: PLTs).
    Far,
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The address given to the undefined symbol `name`.
fn kernel_address(arch: Arch, placement: Placement, name: &str) -> u64 {
    let h = hash(name);
    let spread = (h % (32 << 20)) & !0xf;
    match arch {
        Arch::X86_64 => 0xffff_ffff_8100_0000 + spread,
        Arch::Aarch64 => {
            if placement == Placement::Far && h >> 63 == 1 {
                MODULE_BASE_ARM64 - (3 << 29) + spread
            } else {
                MODULE_BASE_ARM64 + (40 << 20) + spread
            }
        }
    }
}

const MODULE_BASE_ARM64: u64 = 0xffff_8000_0800_0000;
const MODULE_BASE_X86: u64 = 0xffff_ffff_c000_0000;

fn is_init(name: &str) -> bool {
    name.starts_with(".init")
}

/// The kernel clears SHF_ALLOC of these in `layout_and_allocate()` / `rewrite_section_headers()`.
fn unalloc_by_kernel(name: &str) -> bool {
    matches!(name, ".modinfo" | "__versions" | ".data..percpu")
}

// ---------------------------------------------------------------- one module

struct Outcome {
    /// Sections compared.
    sections: usize,
    /// Relocations applied by the simulator.
    relocs: usize,
    /// Words where the kernel uses a PLT entry and ld does not (or uses its own stub), checked.
    plt_diffs: usize,
    /// ADRPs turned into ADR for erratum 843419, checked.
    erratum_adr: usize,
    /// ADRPs replaced by a branch to a veneer for erratum 843419, checked.
    erratum_veneer: usize,
    /// PLT entries / veneers used (core + init).
    plt_used: i32,
}

struct Case<'a> {
    profile: &'a Profile,
    cpu: Cpu,
    placement: Placement,
}

fn ld_for(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "ld",
        Arch::Aarch64 => "aarch64-linux-gnu-ld",
    }
}

/// Relocate `ko` with the simulator and with ld; compare. `Err` with a description of the
/// first unexplained difference; `Ok(None)` when the module is out of scope (skipped).
fn check_module(case: &Case, ko: &Path, tmp: &Path) -> Result<Option<Outcome>, String> {
    let profile = case.profile;
    let arch = profile.arch();
    let elf = Elf::parse(std::fs::read(ko).map_err(|e| e.to_string())?);
    let syms = elf.symbols();
    if syms.iter().any(|s| s.2 == SHN_COMMON) || elf.sh.iter().any(|s| s.sh_type == SHT_REL) {
        return Ok(None);
    }
    // ALLOC section names must be unique for the linker script to address them
    let mut names = BTreeSet::new();
    for s in elf.sh.iter().filter(|s| s.flags & SHF_ALLOC != 0) {
        if !names.insert(s.name.clone()) {
            return Ok(None);
        }
    }

    // the simulator's view of the file image
    let mut sections: Vec<RelocSection> = elf
        .sh
        .iter()
        .enumerate()
        .map(|(i, s)| RelocSection {
            index: i,
            name: s.name.clone(),
            sh_type: s.sh_type,
            flags: s.flags,
            addr: 0,
            size: s.size,
            info: s.info,
            addralign: s.addralign,
        })
        .collect();
    let mut symbols: Vec<RelocSymbol> = syms
        .iter()
        .map(|(_, v, shndx, _)| RelocSymbol {
            value: *v,
            shndx: *shndx,
        })
        .collect();
    let mut relas: BTreeMap<usize, Vec<Rela>> = (0..elf.sh.len())
        .filter(|&i| elf.sh[i].sh_type == SHT_RELA)
        .map(|i| (i, elf.relas(i)))
        .collect();
    let modname = ko
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .unwrap_or("m")
        .to_string();
    let mut log = KernelLog::new();
    let layout = module_frob_arch_sections(
        profile, case.cpu, &modname, &sections, &mut relas, &symbols, &mut log,
    )
    .map_err(|e| format!("frob: {e} {:?}", log.texts()))?;
    layout.apply(&mut sections);

    // layout: core from the module base, init 64 MiB above, gaps for ld's stubs
    let (mut core, mut init) = match arch {
        Arch::X86_64 => (MODULE_BASE_X86, MODULE_BASE_X86 + (64 << 20)),
        Arch::Aarch64 => (MODULE_BASE_ARM64, MODULE_BASE_ARM64 + (24 << 20)),
    };
    let (init_start, mut init_end) = (init, init);
    let mut branches: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, r) in &relas {
        let n = r
            .iter()
            .filter(|r| matches!(r.r_type, R_AARCH64_CALL26 | R_AARCH64_JUMP26))
            .count() as u64;
        *branches.entry(elf.sh[*i].info as usize).or_default() += n;
    }
    let mut mem = Memory::new(1 << 32);
    for s in sections.iter_mut() {
        if s.flags & SHF_ALLOC == 0 {
            continue;
        }
        let cur = if is_init(&s.name) {
            &mut init
        } else {
            &mut core
        };
        let align = s.addralign.max(16);
        let addr = (*cur + align - 1) & !(align - 1);
        s.addr = addr;
        let gap = 0x1000 + 32 * branches.get(&s.index).copied().unwrap_or(0);
        *cur = addr + s.size + gap;
        if is_init(&s.name) {
            init_end = *cur;
        }
        if s.size > 0 {
            mem.alloc(addr, s.size, RegionKind::Module, s.name.clone())
                .map_err(|e| format!("alloc {}: {e}", s.name))?;
            if s.sh_type != SHT_NOBITS {
                mem.write(addr, elf.bytes(s.index))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if core > MODULE_BASE_ARM64 + (24 << 20) && arch == Arch::Aarch64 {
        return Ok(None); // too big for this placement
    }

    // simplify_symbols()
    let mut defsyms: BTreeMap<String, u64> = BTreeMap::new();
    for (k, (name, _, shndx, _)) in syms.iter().enumerate().skip(1) {
        let v = match *shndx {
            SHN_UNDEF => {
                if name.is_empty() {
                    0
                } else {
                    let a = kernel_address(arch, case.placement, name);
                    defsyms.insert(name.clone(), a);
                    a
                }
            }
            SHN_ABS => symbols[k].value,
            i => sections
                .get(i as usize)
                .map_or(0, |s| s.addr)
                .wrapping_add(symbols[k].value),
        };
        symbols[k].value = v;
    }

    // apply_relocations()
    let mut plt = layout.plt_state(vec![(init_start, init_end - init_start)]);
    let mut applied = 0;
    let mut targets = BTreeSet::new();
    for (&i, r) in &relas {
        let t = elf.sh[i].info as usize;
        let Some(ts) = sections.get(t) else { continue };
        if ts.flags & SHF_ALLOC == 0 || unalloc_by_kernel(&ts.name) {
            continue;
        }
        apply_relocate_add(
            profile, &modname, &sections, &symbols, i, r, &mut mem, &mut plt, &mut log,
        )
        .map_err(|e| format!("apply {}: {e} {:?}", elf.sh[i].name, log.texts()))?;
        applied += r.len();
        if ts.size > 0 {
            targets.insert(t);
        }
    }
    if !log.is_empty() {
        return Err(format!("log: {:?}", log.texts()));
    }
    if plt.core.num_entries > plt.core.max_entries || plt.init.num_entries > plt.init.max_entries {
        return Err(format!("PLT overrun {plt:?}"));
    }

    // ld at the same addresses
    let ld_out = link(arch, &elf, &sections, &defsyms, tmp)?;
    let out = Elf::parse(ld_out);
    let mut outcome = Outcome {
        sections: 0,
        relocs: applied,
        plt_diffs: 0,
        erratum_adr: 0,
        erratum_veneer: 0,
        plt_used: plt.core.num_entries + plt.init.num_entries,
    };
    for &t in &targets {
        let s = &sections[t];
        let oname = format!("o{t}");
        let oi = out
            .sh
            .iter()
            .position(|x| x.name == oname)
            .ok_or_else(|| format!("ld output lacks {oname} ({})", s.name))?;
        let theirs = out.bytes(oi);
        let ours = mem
            .read(s.addr, s.size as usize)
            .map_err(|e| e.to_string())?;
        if theirs.len() < ours.len() {
            return Err(format!("{}: ld section is shorter", s.name));
        }
        let by_offset: BTreeMap<u64, Rela> = relas
            .iter()
            .filter(|(i, _)| elf.sh[**i].info as usize == t)
            .flat_map(|(_, r)| r.iter().map(|r| (r.offset, *r)))
            .collect();
        let mut o = 0;
        while o < ours.len() {
            if ours[o] == theirs[o] {
                o += 1;
                continue;
            }
            let word = o & !3;
            let off = word as u64;
            let rel = by_offset.get(&off).ok_or_else(|| {
                format!(
                    "{} +{o:#x}: {:02x} vs ld {:02x}, no relocation there",
                    s.name, ours[o], theirs[o]
                )
            })?;
            let mine = u32::from_le_bytes(ours[word..word + 4].try_into().unwrap());
            let ld = u32::from_le_bytes(theirs[word..word + 4].try_into().unwrap());
            let place = s.addr + off;
            let sym = &symbols[rel.sym as usize];
            let target = sym.value.wrapping_add(rel.addend as u64);
            let why = explain(&mem, &out, &sections, &layout, rel, place, target, mine, ld);
            match why {
                Ok(Explained::Plt) => outcome.plt_diffs += 1,
                Ok(Explained::Adr) => outcome.erratum_adr += 1,
                Ok(Explained::Veneer) => outcome.erratum_veneer += 1,
                Err(e) => {
                    return Err(format!(
                        "{} +{off:#x} type {} sym {} addend {}: ours {mine:08x} ld {ld:08x}: {e}",
                        s.name,
                        rel.r_type,
                        syms.get(rel.sym as usize).map_or("?", |(n, ..)| n.as_str()),
                        rel.addend
                    ));
                }
            }
            o = word + 4;
        }
        outcome.sections += 1;
    }
    Ok(Some(outcome))
}

enum Explained {
    Plt,
    Adr,
    Veneer,
}

fn sext(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

fn branch_target(pc: u64, insn: u32) -> u64 {
    pc.wrapping_add((sext(insn::decode_immediate(ImmType::Imm26, insn), 26) << 2) as u64)
}

fn adrp_page(pc: u64, insn: u32) -> u64 {
    (pc & !0xfff).wrapping_add((sext(insn::decode_immediate(ImmType::Adr, insn), 21) << 12) as u64)
}

fn word_at(elf: &Elf, addr_of: &dyn Fn(&Shdr) -> Option<u64>, addr: u64) -> Option<u32> {
    elf.sh.iter().find_map(|s| {
        let base = addr_of(s)?;
        if s.sh_type != SHT_NOBITS && addr >= base && addr + 4 <= base + s.size {
            let o = (s.offset + addr - base) as usize;
            Some(u32le(&elf.data, o))
        } else {
            None
        }
    })
}

/// Where ld's branch at `pc` ends up: the target, or through one of ld's long-branch stubs.
fn ld_branch_destination(out: &Elf, pc: u64, insn: u32) -> Result<u64, String> {
    let addrs: BTreeMap<String, u64> = output_addresses(out);
    let addr_of = |s: &Shdr| addrs.get(&s.name).copied();
    let dest = branch_target(pc, insn);
    let w = |a: u64| word_at(out, &addr_of, a);
    match (w(dest), w(dest + 4), w(dest + 8)) {
        // adrp x16, page; add x16, x16, #lo12; br x16
        (Some(a), Some(b), Some(0xd61f_0200))
            if insn::is_adrp(a) && b & 0xffc0_03ff == 0x9100_0210 =>
        {
            Ok(adrp_page(dest, a) + insn::decode_immediate(ImmType::Imm12, b))
        }
        // ldr x16, #8; adr x17, #0; add x16, x16, x17; br x16; .xword offset
        (Some(0x5800_0050), Some(0x1000_0011), Some(0x8b11_0210)) => {
            let lo = w(dest + 16).ok_or("stub literal")?;
            let hi = w(dest + 20).ok_or("stub literal")?;
            Ok((dest + 4).wrapping_add(u64::from(lo) | u64::from(hi) << 32))
        }
        _ => Ok(dest),
    }
}

fn output_addresses(out: &Elf) -> BTreeMap<String, u64> {
    // sh_addr is not kept in Shdr: read it from the header
    out.sh
        .iter()
        .map(|s| (s.name.clone(), u64le(&out.data, s.hdr_off + 0x10)))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn explain(
    mem: &Memory,
    out: &Elf,
    sections: &[RelocSection],
    layout: &PltLayout,
    rel: &Rela,
    place: u64,
    target: u64,
    mine: u32,
    ld: u32,
) -> Result<Explained, String> {
    let in_plt = |a: u64| {
        layout.updates().take(2).any(|u| {
            let s = &sections[u.index];
            a >= s.addr && a < s.addr + s.size
        })
    };
    match rel.r_type {
        R_AARCH64_CALL26 | R_AARCH64_JUMP26 => {
            if mine & 0xfc00_0000 != ld & 0xfc00_0000 {
                return Err("opcode changed".into());
            }
            let via = branch_target(place, mine);
            if !in_plt(via) {
                return Err(format!("branch to {via:x}, not into a PLT"));
            }
            let e = plt::PltEntry::read(mem, via).map_err(|e| e.to_string())?;
            if e.br != 0xd61f_0200 || !insn::is_adrp(e.adrp) {
                return Err(format!("not a PLT entry: {e:x?}"));
            }
            let reached = adrp_page(via, e.adrp) + insn::decode_immediate(ImmType::Imm12, e.add);
            let theirs = ld_branch_destination(out, place, ld)?;
            if reached != target || theirs != target {
                return Err(format!(
                    "PLT reaches {reached:x}, ld reaches {theirs:x}, S+A {target:x}"
                ));
            }
            Ok(Explained::Plt)
        }
        R_AARCH64_ADR_PREL_PG_HI21 | R_AARCH64_ADR_PREL_PG_HI21_NC => {
            if !layout.erratum_843419 || place & 0xfff < 0xff8 {
                return Err("ADRP differs at an allowed offset".into());
            }
            let page = target & !0xfff;
            if adrp_page(place, ld) != page {
                return Err("ld's ADRP does not give the page".into());
            }
            if mine & 0x9f00_0000 == insn::INSN_ADR {
                // ADR Xd, page
                let off = sext(insn::decode_immediate(ImmType::Adr, mine), 21);
                if place.wrapping_add(off as u64) != page || mine & 0x1f != ld & 0x1f {
                    return Err("ADR does not give the page".into());
                }
                return Ok(Explained::Adr);
            }
            // B veneer; veneer: adrp Xd, page; add Xd, Xd, #0; b place + 4
            let v = branch_target(place, mine);
            if mine & 0xfc00_0000 != insn::INSN_B || !in_plt(v) {
                return Err("neither ADR nor B to a veneer".into());
            }
            let e = plt::PltEntry::read(mem, v).map_err(|e| e.to_string())?;
            let rd = ld & 0x1f;
            if !insn::is_adrp(e.adrp)
                || e.adrp & 0x1f != rd
                || adrp_page(v, e.adrp) != page
                || e.add != (0x9100_0000 | rd << 5 | rd)
                || branch_target(v + 8, e.br) != place + 4
            {
                return Err(format!("bad veneer {e:x?}"));
            }
            Ok(Explained::Veneer)
        }
        _ => Err("unexpected difference".into()),
    }
}

/// Link `elf` (copied, SHF_MERGE cleared so ld does not merge strings) with every ALLOC
/// section at its address; the output's bytes.
fn link(
    arch: Arch,
    elf: &Elf,
    sections: &[RelocSection],
    defsyms: &BTreeMap<String, u64>,
    tmp: &Path,
) -> Result<Vec<u8>, String> {
    let mut data = elf.data.clone();
    let mut script = String::from("SECTIONS {\n");
    for (i, s) in elf.sh.iter().enumerate() {
        if s.flags & SHF_ALLOC == 0 {
            continue;
        }
        let flags = s.flags & !0x30; // SHF_MERGE | SHF_STRINGS
        data[s.hdr_off + 8..s.hdr_off + 16].copy_from_slice(&flags.to_le_bytes());
        script += &format!(
            "  o{i} {:#x} : {{ KEEP(*(\"{}\")) }}\n",
            sections[i].addr, s.name
        );
    }
    script += "}\n";
    for (name, a) in defsyms {
        script += &format!("\"{name}\" = {a:#x};\n");
    }
    let ko = tmp.join("in.ko");
    let ld_script = tmp.join("link.ld");
    let out = tmp.join("out");
    std::fs::write(&ko, &data).map_err(|e| e.to_string())?;
    std::fs::write(&ld_script, &script).map_err(|e| e.to_string())?;
    let r = Command::new(ld_for(arch))
        .args([
            "--no-check-sections",
            "-e",
            "0",
            "--build-id=none",
            "-z",
            "noexecstack",
        ])
        .args(["--no-warn-rwx-segments", "-o"])
        .arg(&out)
        .arg("-T")
        .arg(&ld_script)
        .arg(&ko)
        .output()
        .map_err(|e| e.to_string())?;
    if !r.status.success() {
        return Err(format!("ld: {}", String::from_utf8_lossy(&r.stderr)));
    }
    std::fs::read(&out).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- module lists

fn main_checkout() -> PathBuf {
    PathBuf::from(option_env!("MODSIM_MAIN").unwrap_or("/work/main"))
}

fn tool_available(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The modules to check for a kernel: the fixtures, then every n-th Debian module.
fn modules(kernel: &str) -> Vec<PathBuf> {
    let fixtures: &[&str] = if kernel.ends_with("arm64") {
        // mp_weak uses GOT relocations, which the arm64 loader refuses (see below)
        &["mp_plt", "mp_types", "mp_export"]
    } else {
        &["mp_plt", "mp_types", "mp_export", "mp_weak"]
    };
    let mut v: Vec<PathBuf> = fixtures
        .iter()
        .map(|m| main_checkout().join(format!("tests/fixtures/ko/{kernel}/{m}.ko")))
        .filter(|p| p.exists())
        .collect();
    let stride = match std::env::var("MODSIM_RELOC_ORACLE").as_deref() {
        Ok("all") => 1,
        Ok(n) => n.parse().unwrap_or(40),
        Err(_) => 40,
    };
    let root = main_checkout().join(format!("target/lab/root/{kernel}/lib/modules"));
    let mut all = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ko")
                || p.to_string_lossy().ends_with(".ko.xz")
            {
                all.push(p);
            }
        }
    }
    all.sort();
    v.extend(all.into_iter().step_by(stride));
    v
}

fn decompressed(p: &Path, tmp: &Path) -> Result<PathBuf, String> {
    if p.extension().is_none_or(|e| e != "xz") {
        return Ok(p.to_path_buf());
    }
    let out = Command::new("xz")
        .arg("-dc")
        .arg(p)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("xz failed".into());
    }
    let name = p.file_stem().unwrap_or_default();
    let dst = tmp.join(name);
    std::fs::write(&dst, out.stdout).map_err(|e| e.to_string())?;
    Ok(dst)
}

#[derive(Default, Debug)]
struct Totals {
    modules: usize,
    skipped: usize,
    sections: usize,
    relocs: usize,
    plt_diffs: usize,
    erratum_adr: usize,
    erratum_veneer: usize,
    plt_used: i64,
    failures: Vec<String>,
}

fn run(kernel: &str, cpu: Cpu, placement: Placement) {
    let profile = Profile::builtin(kernel).unwrap();
    if !tool_available(ld_for(profile.arch())) || !tool_available("xz") {
        eprintln!("oracle {kernel}: skipped (no GNU ld or xz)");
        return;
    }
    let list = modules(kernel);
    if list.is_empty() {
        eprintln!("oracle {kernel}: skipped (no modules)");
        return;
    }
    let case = Case {
        profile,
        cpu,
        placement,
    };
    let totals = std::sync::Mutex::new(Totals::default());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| {
                let tmp = tempfile::tempdir().unwrap();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = list.get(i) else { break };
                    let res = decompressed(p, tmp.path())
                        .and_then(|ko| check_module(&case, &ko, tmp.path()));
                    let mut t = totals.lock().unwrap();
                    match res {
                        Ok(Some(o)) => {
                            t.modules += 1;
                            t.sections += o.sections;
                            t.relocs += o.relocs;
                            t.plt_diffs += o.plt_diffs;
                            t.erratum_adr += o.erratum_adr;
                            t.erratum_veneer += o.erratum_veneer;
                            t.plt_used += i64::from(o.plt_used);
                        }
                        Ok(None) => t.skipped += 1,
                        Err(e) => t.failures.push(format!("{}: {e}", p.display())),
                    }
                }
            });
        }
    });
    let t = totals.into_inner().unwrap();
    eprintln!(
        "oracle {kernel} {placement:?} erratum={}: {} modules identical to ld ({} skipped), {} sections, {} relocations, {} branch words through a PLT and {} ADRP words as ADR + {} as B to a veneer (erratum 843419) differing as expected, {} PLT slots used",
        cpu.arm64_workaround_843419,
        t.modules,
        t.skipped,
        t.sections,
        t.relocs,
        t.plt_diffs,
        t.erratum_adr,
        t.erratum_veneer,
        t.plt_used
    );
    assert!(
        t.failures.is_empty(),
        "{} of {} modules differ:\n{}",
        t.failures.len(),
        list.len(),
        t.failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(t.modules > 0);
}

/// mp_weak reads a weak undefined symbol through the GOT (`R_AARCH64_ADR_GOT_PAGE`,
/// `R_AARCH64_LD64_GOT_LO12_NC`), which arm64's `apply_relocate_add()` does not support. The
/// recording of the real kernels (`tests/conformance/recorded/debian-6.*-arm64/symbols.jsonl`)
/// has `ENOEXEC` with `unsupported RELA relocation: 312`: 312, not 311, because the partition
/// in `module_frob_arch_sections()` reordered `.rela.init.text` first. The simulator must do
/// the same.
#[test]
fn mp_weak_is_refused_like_the_real_arm64_kernels() {
    for (kernel, line) in [
        (
            "debian-6.1-arm64",
            "module mp_weak: unsupported RELA relocation: 312",
        ),
        (
            "debian-6.12-arm64",
            "Modules: module mp_weak: unsupported RELA relocation: 312",
        ),
    ] {
        let ko = main_checkout().join(format!("tests/fixtures/ko/{kernel}/mp_weak.ko"));
        if !ko.exists() || !tool_available("aarch64-linux-gnu-ld") {
            eprintln!("{kernel}: mp_weak skipped");
            continue;
        }
        let case = Case {
            profile: Profile::builtin(kernel).unwrap(),
            cpu: Cpu::default(),
            placement: Placement::Near,
        };
        let tmp = tempfile::tempdir().unwrap();
        let err = check_module(&case, &ko, tmp.path())
            .err()
            .unwrap_or_default();
        assert_eq!(
            err,
            format!("apply .rela.init.text: ENOEXEC [\"{line}\"]"),
            "{kernel}"
        );
    }
}

#[test]
fn oracle_6_1_amd64() {
    run("debian-6.1-amd64", Cpu::default(), Placement::Near);
}

#[test]
fn oracle_6_12_amd64() {
    run("debian-6.12-amd64", Cpu::default(), Placement::Near);
}

#[test]
fn oracle_6_1_arm64_near() {
    run("debian-6.1-arm64", Cpu::default(), Placement::Near);
}

#[test]
fn oracle_6_1_arm64_far_plts() {
    run("debian-6.1-arm64", Cpu::default(), Placement::Far);
}

#[test]
fn oracle_6_12_arm64_near() {
    run("debian-6.12-arm64", Cpu::default(), Placement::Near);
}

#[test]
fn oracle_6_12_arm64_far_plts() {
    run("debian-6.12-arm64", Cpu::default(), Placement::Far);
}

#[test]
fn oracle_6_12_arm64_far_plts_erratum_843419() {
    let cpu = Cpu {
        arm64_workaround_843419: true,
    };
    run("debian-6.12-arm64", cpu, Placement::Far);
}

#[test]
fn oracle_6_1_arm64_near_erratum_843419() {
    let cpu = Cpu {
        arm64_workaround_843419: true,
    };
    run("debian-6.1-arm64", cpu, Placement::Near);
}
