//! What the kernel writes into a module's memory after relocation, before `init` runs: the
//! architecture's `module_finalize()` (called by `post_relocation()`) and
//! `ftrace_module_init()`. Without these a correctly relocated module still differs from the
//! real kernel's copy byte for byte.
//!
//! | step | kernel source | what changes |
//! |---|---|---|
//! | `apply_retpolines` | arch/x86/kernel/alternative.c | unless the CPU keeps retpolines, each `.retpoline_sites` thunk call or jump becomes `[lfence;] call/jmp *%reg` |
//! | `apply_returns` | arch/x86/kernel/alternative.c | each `.return_sites` `jmp __x86_return_thunk` becomes `ret; int3...` (or a jump to the CPU's own thunk) |
//! | `apply_seal_endbr` | arch/x86/kernel/alternative.c | each `.ibt_endbr_seal` `endbr64` becomes a 4-byte NOP |
//! | `alternatives_smp_module_add` | arch/x86/kernel/alternative.c | on a one-CPU machine each `.smp_locks` `lock` prefix becomes a DS prefix |
//! | `unwind_module_init` | arch/x86/kernel/unwind_orc.c | `.orc_unwind_ip` / `.orc_unwind` sorted by address |
//! | `module_init_ftrace_plt` | arch/arm64/kernel/module.c | the ftrace trampolines: PLT entries to `ftrace_caller` (6.1: and `ftrace_regs_caller`) |
//! | `ftrace_process_locs` | kernel/trace/ftrace.c | the call-site table (`__mcount_loc`, `__patchable_function_entries`) sorted, each site made a NOP by the arch's `ftrace_init_nop()`: x86 `call __fentry__` → 5-byte NOP; arm64 first NOP → `mov x9, x30`, and on 6.12 the `ftrace_nop_ops` literal before the function |
//! | `jump_label_add_module` | kernel/jump_label.c | (when the module is COMING) `__jump_table` sorted, init entries flagged, the module's static keys pointed at their entries |
//!
//! What depends on the machine comes from [`crate::kernel::Settings`]: the return thunk the
//! CPU needs, the Spectre v2 mitigation, whether it runs on one CPU.
//!
//! Sections the kernel would also patch but the simulator does not model yet (alternatives,
//! paravirt, static calls, the exception table) are named in the trace (`module_finalize`,
//! "not modelled"), and so are static keys outside the module (their state, which may patch
//! the module's code, is the running kernel's), so that a difference there is not a mystery.
//!
//! Sorting is `sort()` of lib/sort.c, step for step ([`sort_r`]): with comparisons that can
//! tie (the ORC table's), only the kernel's own heapsort gives the kernel's order.
//!
//! *Invariant:* every read and write goes through [`Memory`] and is bounds-checked; a table
//! entry that points outside the module is skipped, as the kernel's `WARN`s skip it.

use crate::errno::Errno;
use crate::kernel::{Kernel, SysError, SysResult};
use crate::load::Loading;
use crate::load::layout::{MemType, kernel_image_base};
use crate::load::reloc::plt::get_plt_entry;
use crate::memory::Memory;
use crate::profile::{Arch, KernelVersion, Profile};
use crate::trace::TraceEvent;

/// Kernel symbols the patches point at that are not exports, each with the simulator's own
/// address for it (after the exports, 16 bytes apart); a given address replaces it
/// ([`Kernel::set_symbol_addresses`]).
const INTERNAL_SYMBOLS: [&str; 6] = [
    "ftrace_caller",
    "ftrace_regs_caller",
    "ftrace_nop_ops",
    "its_return_thunk",
    "srso_return_thunk",
    "retbleed_return_thunk",
];

/// The simulator's address for one of [`INTERNAL_SYMBOLS`].
pub(crate) fn internal_symbol_address(profile: &Profile, name: &str) -> Option<u64> {
    let i = INTERNAL_SYMBOLS.iter().position(|&n| n == name)?;
    let after_exports = profile.exports().len() as u64 + 1 + i as u64;
    Some(kernel_image_base(profile) + 16 * after_exports)
}

/// `x86_nops[5]`: the 5-byte NOP ftrace writes over `call __fentry__`.
const X86_NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
/// `aarch64_insn_gen_nop()`.
const A64_NOP: u32 = 0xd503_201f;
/// `aarch64_insn_gen_move_reg(x9, lr, 64-bit)`: `mov x9, x30` (`orr x9, xzr, x30`).
const A64_MOV_X9_LR: u32 = 0xaa1e_03e9;

/// The return thunk the simulated CPU needs, if any ([`crate::kernel::Settings::x86_return_thunk`]).
fn rethunk(kernel: &Kernel) -> Option<&str> {
    kernel.settings.x86_return_thunk.as_deref()
}

struct Sec {
    addr: u64,
    size: u64,
}

fn find(l: &Loading, name: &str) -> Option<Sec> {
    let i = l.info.find_sec(name)?;
    let s = l.info.sections.get(i)?;
    let addr = *l.addr.get(i)?;
    (addr != 0).then_some(Sec { addr, size: s.size })
}

/// Models `module_finalize()` (arch/x86/kernel/module.c, arch/arm64/kernel/module.c), the
/// last step of `post_relocation()`.
pub(crate) fn module_finalize(kernel: &mut Kernel, l: &mut Loading) -> SysResult {
    let mut notes: Vec<String> = Vec::new();
    let not_modelled: &[&str] = match kernel.profile.arch() {
        Arch::X86_64 => &[
            ".altinstructions",
            ".parainstructions",
            ".static_call_sites",
            "__ex_table",
        ],
        Arch::Aarch64 => &[".altinstructions", "__ex_table"],
    };
    for name in not_modelled {
        if find(l, name).is_some_and(|s| s.size > 0) {
            notes.push(format!("{name} (not modelled: the kernel may patch more)"));
        }
    }
    let r = match kernel.profile.arch() {
        Arch::X86_64 => {
            if let Some(s) = find(l, ".retpoline_sites") {
                let n = apply_retpolines(kernel, &s);
                notes.push(format!(
                    "apply_retpolines: {n} thunk calls and jumps rewritten"
                ));
            }
            if let Some(s) = find(l, ".return_sites") {
                let n = apply_returns(kernel, &s);
                notes.push(format!("apply_returns: {n} return thunk sites rewritten"));
            }
            if let Some(s) = find(l, ".ibt_endbr_seal") {
                let n = apply_seal_endbr(kernel, &s);
                let f = match kernel.version() {
                    KernelVersion::V6_1 => "apply_ibt_endbr",
                    KernelVersion::V6_12 => "apply_seal_endbr",
                };
                notes.push(format!("{f}: {n} ENDBR instructions sealed"));
            }
            if let Some(locks) = find(l, ".smp_locks") {
                // 6.1 hands it the .text section, 6.12 the MOD_TEXT region.
                let text = match kernel.version() {
                    KernelVersion::V6_1 => find(l, ".text").map(|t| (t.addr, t.addr + t.size)),
                    KernelVersion::V6_12 => {
                        let t = MemType::Text as usize;
                        Some((l.region[t], l.region[t].saturating_add(l.region_size[t])))
                    }
                };
                if let Some(text) = text {
                    let n = alternatives_smp_module_add(kernel, &locks, text);
                    notes.push(format!(
                        "alternatives_smp_module_add: {n} lock prefixes made DS prefixes"
                    ));
                }
            }
            if let (Some(orc), Some(ip)) = (find(l, ".orc_unwind"), find(l, ".orc_unwind_ip")) {
                let n = unwind_module_init(kernel, &ip, &orc);
                notes.push(format!("unwind_module_init: {n} ORC entries sorted"));
            }
            Ok(())
        }
        Arch::Aarch64 => module_init_ftrace_plt(kernel, l, &mut notes),
    };
    if kernel.tracing() {
        let mut ev = TraceEvent::new(
            "module_finalize",
            "arch/*/kernel/module.c",
            "the architecture's patches to the relocated module",
        );
        for (i, n) in notes.iter().enumerate() {
            ev = ev.with(format!("{}", i + 1), n);
        }
        kernel.push_trace(ev);
    }
    r
}

/// The addresses a site table of PREL32 entries (`s32 *s; addr = (void *)s + *s`) points at.
fn prel32_sites(mem: &Memory, s: &Sec) -> Vec<u64> {
    (0..s.size / 4)
        .filter_map(|k| {
            let at = s.addr + 4 * k;
            let off = mem.read_u32(at).ok()?;
            Some(at.wrapping_add(off as i32 as i64 as u64))
        })
        .collect()
}

/// `x86_nops[]` (arch/x86/kernel/alternative.c): the best NOP of each length, 1 to 8 bytes.
const X86_NOPS: [&[u8]; 9] = [
    &[],
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// Models `apply_retpolines()` with `patch_retpoline()`, `emit_indirect()` and
/// `optimize_nops()` (arch/x86/kernel/alternative.c): every `.retpoline_sites` entry is a
/// `call`, `jmp` or `jcc` to `__x86_indirect_thunk_<reg>`; unless the CPU keeps retpolines
/// ([`crate::kernel::X86Retpoline::Thunks`]), it becomes `[lfence;] call/jmp *%reg` (a `jcc`
/// an inverted short `jcc` over it), an `int3` after a jump, and NOPs to the original length.
/// Returns the number rewritten.
fn apply_retpolines(kernel: &mut Kernel, s: &Sec) -> usize {
    use crate::kernel::X86Retpoline;
    let p = &kernel.profile;
    let on = match p.version() {
        KernelVersion::V6_1 => p.is_enabled("RETPOLINE") && p.is_enabled("OBJTOOL"),
        KernelVersion::V6_12 => p.is_enabled("MITIGATION_RETPOLINE") && p.is_enabled("OBJTOOL"),
    };
    let mode = kernel.settings.x86_retpoline;
    if !on || mode == X86Retpoline::Thunks {
        return 0;
    }
    // The thunk of each register (`__x86_indirect_thunk_array[reg]`), by its exported name:
    // this works with given addresses and with the simulator's own.
    const REGS: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    let thunks: Vec<Option<u64>> = REGS
        .iter()
        .map(|r| kernel.kernel_symbol_address(&format!("__x86_indirect_thunk_{r}")))
        .collect();
    let mut n = 0;
    for addr in prel32_sites(&kernel.memory, s) {
        let Ok(head) = kernel.memory.read(addr, 2) else {
            continue;
        };
        // insn_decode_kernel(): call/jmp rel32 (5 bytes) or jcc rel32 (0f 8x, 6 bytes).
        let (op, len, cc) = match head[0] {
            0xe8 | 0xe9 => (head[0], 5usize, None),
            0x0f if (0x80..=0x8f).contains(&head[1]) => (0xe9, 6, Some(head[1] & 0xf)),
            _ => continue, // WARN_ON_ONCE
        };
        let Ok(insn) = kernel.memory.read(addr, len) else {
            continue;
        };
        let imm = &insn[len - 4..len];
        let rel = i32::from_le_bytes([imm[0], imm[1], imm[2], imm[3]]);
        let target = addr
            .wrapping_add(len as u64)
            .wrapping_add(rel as i64 as u64);
        // reg = target - __x86_indirect_thunk_array
        let Some(reg) = thunks.iter().position(|t| *t == Some(target)) else {
            continue; // WARN_ON_ONCE
        };
        if reg == 4 {
            continue; // BUG_ON: call *%rsp
        }
        let reg = reg as u8;
        let mut bytes: Vec<u8> = Vec::with_capacity(len);
        if let Some(cc) = cc {
            bytes.push(0x70 + (cc ^ 1)); // Jncc.d8 over the rest
            bytes.push((len - 2) as u8);
        }
        if mode == X86Retpoline::Lfence {
            bytes.extend([0x0f, 0xae, 0xe8]);
        }
        // emit_indirect()
        if reg >= 8 {
            bytes.push(0x41);
        }
        let modrm = if op == 0xe8 { 0x10 } else { 0x20 };
        bytes.extend([0xff, 0xc0 | modrm | (reg & 7)]);
        if op == 0xe9 && bytes.len() < len {
            bytes.push(0xcc);
        }
        if bytes.len() > len {
            continue; // patch_retpoline() returned more than fits: not applied
        }
        // NOP1 padding, which optimize_nops() turns into one NOP of the run's length.
        bytes.extend_from_slice(X86_NOPS[len - bytes.len()]);
        if kernel.memory.write(addr, &bytes).is_ok() {
            n += 1;
        }
    }
    n
}

/// Models `apply_returns()` with `patch_return()` (arch/x86/kernel/alternative.c,
/// `CONFIG_RETHUNK`): every `.return_sites` entry (a PREL32 offset to a `jmp
/// __x86_return_thunk`) becomes `ret` and `int3` padding when the CPU needs no return thunk,
/// or a jump to the thunk the CPU uses. Returns the number of sites rewritten.
fn apply_returns(kernel: &mut Kernel, s: &Sec) -> usize {
    let p = &kernel.profile;
    let on = match p.version() {
        KernelVersion::V6_1 => {
            p.is_enabled("RETPOLINE") && p.is_enabled("OBJTOOL") && p.is_enabled("RETHUNK")
        }
        KernelVersion::V6_12 => {
            p.is_enabled("MITIGATION_RETPOLINE")
                && p.is_enabled("OBJTOOL")
                && p.is_enabled("MITIGATION_RETHUNK")
        }
    };
    if !on {
        return 0;
    }
    let Some(thunk) = kernel.kernel_symbol_address("__x86_return_thunk") else {
        return 0;
    };
    let cpu_thunk = rethunk(kernel).map(str::to_string);
    let cpu_thunk_addr = cpu_thunk
        .as_deref()
        .and_then(|t| kernel.kernel_symbol_address(t));
    let mut n = 0;
    for addr in prel32_sites(&kernel.memory, s) {
        // insn_decode_kernel(): only a 5-byte `jmp rel32` has a destination.
        let Ok(insn) = kernel.memory.read(addr, 5) else {
            continue;
        };
        if insn[0] != 0xe9 {
            continue; // WARN_ONCE("missing return thunk")
        }
        let rel = i32::from_le_bytes([insn[1], insn[2], insn[3], insn[4]]);
        let dest = addr.wrapping_add(5).wrapping_add(rel as i64 as u64);
        // __static_call_fixup(): a static call trampoline ends in `ud1 %esp, %ecx`.
        if kernel
            .memory
            .read(addr.wrapping_add(5), 3)
            .is_ok_and(|b| b == [0x0f, 0xb9, 0xcc])
        {
            continue;
        }
        if dest != thunk {
            continue; // WARN_ONCE("missing return thunk")
        }
        let mut bytes = [0xcc_u8; 5];
        // cpu_wants_rethunk_at()
        let wants = match (cpu_thunk.as_deref(), cpu_thunk_addr) {
            (Some("its_return_thunk"), Some(_)) => addr & 0x20 == 0,
            (Some(_), Some(_)) => true,
            _ => false,
        };
        match cpu_thunk_addr.filter(|_| wants) {
            Some(t) => {
                bytes[0] = 0xe9;
                let rel = t.wrapping_sub(addr.wrapping_add(5)) as i32;
                bytes[1..].copy_from_slice(&rel.to_le_bytes());
            }
            None => bytes[0] = 0xc3,
        }
        if kernel.memory.write(addr, &bytes).is_ok() {
            n += 1;
        }
    }
    n
}

/// `gen_endbr()`: `endbr64`, as a little-endian word.
const ENDBR64: u32 = 0xfa1e_0ff3;
/// `gen_endbr_poison()`: `osp nopl (%rax)`, the 4-byte NOP that replaces a sealed ENDBR.
const ENDBR_POISON: u32 = 0x001f_0f66;

/// Models `apply_seal_endbr()` (6.12; `apply_ibt_endbr()` on 6.1) with `poison_endbr()`
/// (arch/x86/kernel/alternative.c, `CONFIG_X86_KERNEL_IBT`): every `.ibt_endbr_seal` entry
/// (PREL32) is the `endbr64` of a function never called indirectly; it becomes
/// [`ENDBR_POISON`], whatever the CPU. A site without an ENDBR is left alone (the kernel
/// warns). Returns the number sealed.
fn apply_seal_endbr(kernel: &mut Kernel, s: &Sec) -> usize {
    if !kernel.profile.is_enabled("X86_KERNEL_IBT") {
        return 0;
    }
    let mut n = 0;
    for addr in prel32_sites(&kernel.memory, s) {
        // is_endbr(): ENDBR64, ENDBR32, or already the poison.
        let Ok(insn) = kernel.memory.read_u32(addr) else {
            continue;
        };
        if insn != ENDBR_POISON && insn & !0x0100_0000 != ENDBR64 {
            continue; // WARN_ON_ONCE
        }
        if kernel.memory.write_u32(addr, ENDBR_POISON).is_ok() {
            n += 1;
        }
    }
    n
}

/// Models `alternatives_smp_module_add()` → `alternatives_smp_unlock()`
/// (arch/x86/kernel/alternative.c) on a machine running with its lock prefixes patched out
/// ([`crate::kernel::Settings::uniprocessor`]): every `.smp_locks` entry (PREL32) inside the
/// text range that points at a `lock` prefix (0xf0) gets a DS prefix (0x3e) instead. Returns
/// the number changed.
fn alternatives_smp_module_add(kernel: &mut Kernel, locks: &Sec, text: (u64, u64)) -> usize {
    if !kernel.settings.uniprocessor || !kernel.profile.is_enabled("SMP") {
        return 0;
    }
    let mut n = 0;
    for (k, ptr) in prel32_sites(&kernel.memory, locks).into_iter().enumerate() {
        // `!*poff`: a zero offset is a hole in the table.
        let zero = kernel
            .memory
            .read_u32(locks.addr + 4 * k as u64)
            .is_ok_and(|v| v == 0);
        if zero || ptr < text.0 || ptr >= text.1 {
            continue;
        }
        if kernel.memory.read(ptr, 1).is_ok_and(|b| b[0] == 0xf0)
            && kernel.memory.write(ptr, &[0x3e]).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Models `jump_label_add_module()` (kernel/jump_label.c), run by the jump label module
/// notifier when the module is COMING: `__jump_table` (relative `struct jump_entry`: s32 code,
/// s32 target, long key with the branch and init flags in its low bits) is sorted by key, then
/// code address (`jump_label_cmp()`, swapping with `jump_label_swap()`); each entry in init
/// code gets the init flag (`jump_entry_set_init()`); each key inside the module is pointed at
/// its first entry (`static_key_set_entries()`: the union after `enabled` becomes the entry's
/// address with the key's type bits). The code is patched only when a key's state differs
/// from its initial one, which a key the module defines cannot; a key outside the module
/// (vmlinux's, another module's) is noted in the trace, not modelled.
pub(crate) fn jump_label_add_module(kernel: &mut Kernel, l: &Loading) {
    let Some(s) = find(l, "__jump_table") else {
        return;
    };
    if !kernel.profile.is_enabled("JUMP_LABEL") {
        return;
    }
    let version = kernel.version();
    let n = (s.size / 16) as usize;
    let Ok(b) = kernel.memory.read(s.addr, n * 16) else {
        return;
    };
    // (code, target, key) as stored: relative to each field's own address.
    let mut e: Vec<(i32, i32, i64)> = b
        .chunks_exact(16)
        .map(|c| {
            let w = |i: usize| i32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            let key = i64::from_le_bytes(c[8..16].try_into().unwrap_or([0; 8]));
            (w(0), w(4), key)
        })
        .collect();
    let base = s.addr;
    let code_at =
        |e: &[(i32, i32, i64)], i: usize| (base + 16 * i as u64).wrapping_add(e[i].0 as i64 as u64);
    let key_at = |e: &[(i32, i32, i64)], i: usize| {
        (base + 16 * i as u64 + 8).wrapping_add(e[i].2 as u64) & !3
    };
    let cell = std::cell::RefCell::new(&mut e);
    sort_r(
        version,
        n,
        |a, b| {
            let e = cell.borrow();
            let (ka, kb) = (key_at(&e, a), key_at(&e, b));
            if ka != kb {
                return if ka < kb { -1 } else { 1 };
            }
            code_at(&e, a).cmp(&code_at(&e, b)) as i32
        },
        |a, b| {
            // jump_label_swap(): delta = a - b, in bytes
            let mut e = cell.borrow_mut();
            let delta = 16 * (a as i64 - b as i64);
            let (ta, tb) = (e[a], e[b]);
            e[a] = (
                tb.0.wrapping_sub(delta as i32),
                tb.1.wrapping_sub(delta as i32),
                tb.2.wrapping_sub(delta),
            );
            e[b] = (
                ta.0.wrapping_add(delta as i32),
                ta.1.wrapping_add(delta as i32),
                ta.2.wrapping_add(delta),
            );
        },
    );
    let module_ranges: Vec<(u64, u64, bool)> = MemType::ALL
        .iter()
        .filter(|t| l.region_size[**t as usize] != 0)
        .map(|t| {
            let b = l.region[*t as usize];
            (b, b.saturating_add(l.region_size[*t as usize]), t.is_init())
        })
        .collect();
    let within = |a: u64, init_only: bool| {
        module_ranges
            .iter()
            .any(|&(lo, hi, init)| a >= lo && a < hi && (init || !init_only))
    };
    let mut keys_set = 0;
    let mut outside = 0;
    let mut last_key = None;
    for i in 0..n {
        let in_init = within(code_at(&e, i), true);
        if in_init {
            e[i].2 |= 2;
        } else {
            e[i].2 &= !2;
        }
        let key = key_at(&e, i);
        if last_key == Some(key) {
            continue;
        }
        last_key = Some(key);
        if within(key, false) {
            let entry = base + 16 * i as u64;
            let old = kernel.memory.read_u64(key.wrapping_add(8)).unwrap_or(0);
            let _ = kernel
                .memory
                .write_u64(key.wrapping_add(8), entry | (old & 3));
            keys_set += 1;
        } else {
            outside += 1;
        }
    }
    let bytes: Vec<u8> = e
        .iter()
        .flat_map(|(c, t, k)| {
            let mut v = c.to_le_bytes().to_vec();
            v.extend(t.to_le_bytes());
            v.extend(k.to_le_bytes());
            v
        })
        .collect();
    let _ = kernel.memory.write(s.addr, &bytes);
    if kernel.tracing() {
        let mut ev = TraceEvent::new(
            "jump_label_add_module",
            "kernel/jump_label.c",
            "the module's static branches sorted and its own keys pointed at their entries",
        )
        .with("__jump_table entries", n)
        .with("keys of the module", keys_set);
        if outside > 0 {
            ev = ev.with(
                "keys outside the module (their state may patch code: not modelled)",
                outside,
            );
        }
        kernel.push_trace(ev);
    }
}

/// Models `unwind_module_init()` (arch/x86/kernel/unwind_orc.c): `.orc_unwind_ip` (PREL32
/// addresses) and `.orc_unwind` (6-byte `struct orc_entry`) sorted together by absolute
/// address with `orc_sort_cmp()`/`orc_sort_swap()`. Returns the number of entries.
fn unwind_module_init(kernel: &mut Kernel, ip: &Sec, orc: &Sec) -> usize {
    let version = kernel.version();
    let n = (ip.size / 4).min(orc.size / 6) as usize;
    let mem = &mut kernel.memory;
    let (Ok(ipb), Ok(orcb)) = (mem.read(ip.addr, n * 4), mem.read(orc.addr, n * 6)) else {
        return 0;
    };
    let mut ips: Vec<i32> = ipb
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut orcs: Vec<[u8; 6]> = orcb
        .chunks_exact(6)
        .map(|c| [c[0], c[1], c[2], c[3], c[4], c[5]])
        .collect();
    let base = ip.addr;
    let at = |ips: &[i32], i: usize| (base + 4 * i as u64).wrapping_add(ips[i] as i64 as u64);
    // The "weak" section terminators sort first among equal addresses.
    let undefined = |e: &[u8; 6]| match version {
        // sp_reg == ORC_REG_UNDEFINED && !end
        KernelVersion::V6_1 => e[4] & 0x0f == 0 && e[5] & 0x04 == 0,
        // type == ORC_TYPE_UNDEFINED
        KernelVersion::V6_12 => e[5] & 0x07 == 0,
    };
    let (ipc, orcc) = (
        std::cell::RefCell::new(&mut ips),
        std::cell::RefCell::new(&mut orcs),
    );
    sort_r(
        version,
        n,
        |a, b| {
            let ips = ipc.borrow();
            let (x, y) = (at(&ips, a), at(&ips, b));
            if x != y {
                return if x > y { 1 } else { -1 };
            }
            if undefined(&orcc.borrow()[a]) { -1 } else { 1 }
        },
        |a, b| {
            let mut ips = ipc.borrow_mut();
            let delta = (4 * (b as i64 - a as i64)) as i32;
            let tmp = ips[a];
            ips[a] = ips[b].wrapping_add(delta);
            ips[b] = tmp.wrapping_sub(delta);
            orcc.borrow_mut().swap(a, b);
        },
    );
    let ipb: Vec<u8> = ips.iter().flat_map(|v| v.to_le_bytes()).collect();
    let orcb: Vec<u8> = orcs.iter().flatten().copied().collect();
    if mem.write(ip.addr, &ipb).is_err() || mem.write(orc.addr, &orcb).is_err() {
        return 0;
    }
    n
}

/// Models `module_init_ftrace_plt()` (arch/arm64/kernel/module.c): the ftrace trampolines
/// are PLT entries to `ftrace_caller` (`FTRACE_ADDR`) and, on 6.1 with
/// `CONFIG_DYNAMIC_FTRACE_WITH_REGS`, `ftrace_regs_caller`; 6.12 also fills the init one.
/// A module without the section is refused with `ENOEXEC`.
fn module_init_ftrace_plt(kernel: &mut Kernel, l: &Loading, notes: &mut Vec<String>) -> SysResult {
    let p = &kernel.profile;
    let v6_1 = p.version() == KernelVersion::V6_1;
    if !p.is_enabled("DYNAMIC_FTRACE") || (v6_1 && !p.is_enabled("ARM64_MODULE_PLTS")) {
        return Ok(());
    }
    let regs = v6_1 && p.is_enabled("DYNAMIC_FTRACE_WITH_REGS");
    let mut plts: Vec<(&str, u64, &str)> = Vec::new();
    let tramp = find(l, ".text.ftrace_trampoline")
        .ok_or_else(|| SysError::new("module_init_ftrace_plt", Errno::ENOEXEC))?;
    plts.push((".text.ftrace_trampoline", tramp.addr, "ftrace_caller"));
    if regs {
        plts.push((
            ".text.ftrace_trampoline",
            tramp.addr + 12,
            "ftrace_regs_caller",
        ));
    }
    if !v6_1 {
        let init = find(l, ".init.text.ftrace_trampoline")
            .ok_or_else(|| SysError::new("module_init_ftrace_plt", Errno::ENOEXEC))?;
        plts.push((".init.text.ftrace_trampoline", init.addr, "ftrace_caller"));
    }
    for (sec, at, target) in plts {
        let dst = kernel.kernel_symbol_address(target).unwrap_or(0);
        let e = get_plt_entry(dst, at, &mut kernel.log);
        kernel
            .memory
            .write(at, &e.to_bytes())
            .map_err(|_| SysError::new("module_init_ftrace_plt", Errno::EFAULT))?;
        notes.push(format!(
            "{sec} at {at:#x}: PLT entry to {target} ({dst:#x})"
        ));
    }
    Ok(())
}

/// Models `ftrace_module_init()` → `ftrace_process_locs()` (kernel/trace/ftrace.c): the
/// module's call-site table (`FTRACE_CALLSITE_SECTION`) is sorted in place, then each site is
/// initialised by the arch's `ftrace_init_nop()`. A site whose bytes are not what the kernel
/// expects stops the walk (the kernel's `ftrace_bug()`, which also disables ftrace; the
/// simulator records it in the trace and the log).
pub(crate) fn ftrace_module_init(kernel: &mut Kernel, l: &Loading) {
    let p = &kernel.profile;
    if !p.is_enabled("DYNAMIC_FTRACE") || !p.is_enabled("FTRACE_MCOUNT_RECORD") {
        return;
    }
    let secname = if p.is_enabled("FTRACE_MCOUNT_USE_PATCHABLE_FUNCTION_ENTRY") {
        "__patchable_function_entries"
    } else {
        "__mcount_loc"
    };
    let Some(s) = find(l, secname) else { return };
    let n = ftrace_process_locs(kernel, &s);
    if kernel.tracing() {
        let ev = TraceEvent::new(
            "ftrace_module_init",
            "kernel/trace/ftrace.c",
            "ftrace sorted the module's call sites and made each one a disabled trace site (ftrace_init_nop)",
        )
        .with("call-site table", secname)
        .with("sites initialised", n);
        kernel.push_trace(ev);
    }
}

/// `ftrace_process_locs()` for a module: returns the number of sites initialised.
fn ftrace_process_locs(kernel: &mut Kernel, s: &Sec) -> usize {
    let version = kernel.version();
    let count = (s.size / 8) as usize;
    let Ok(b) = kernel.memory.read(s.addr, count * 8) else {
        return 0;
    };
    let mut locs: Vec<u64> = b
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let cell = std::cell::RefCell::new(&mut locs);
    sort_r(
        version,
        count,
        |a, b| {
            let v = cell.borrow();
            v[a].cmp(&v[b]) as i32
        },
        |a, b| cell.borrow_mut().swap(a, b),
    );
    let bytes: Vec<u8> = locs.iter().flat_map(|v| v.to_le_bytes()).collect();
    if kernel.memory.write(s.addr, &bytes).is_err() {
        return 0;
    }
    let arch = kernel.profile.arch();
    let fentry = kernel.kernel_symbol_address("__fentry__").unwrap_or(0);
    let nop_ops = kernel.kernel_symbol_address("ftrace_nop_ops").unwrap_or(0);
    let mut done = 0;
    for &loc in &locs {
        let ip = ftrace_call_adjust(&kernel.profile, &kernel.memory, loc);
        if ip == 0 {
            continue;
        }
        let r = match arch {
            Arch::X86_64 => x86_ftrace_init_nop(&mut kernel.memory, ip, fentry),
            Arch::Aarch64 => a64_ftrace_init_nop(&kernel.profile, &mut kernel.memory, ip, nop_ops),
        };
        if let Err(e) = r {
            kernel.log.info("------------[ ftrace bug ]------------");
            kernel.log.info(match e {
                Errno::EFAULT => format!("ftrace faulted on modifying [<{ip:016x}>]"),
                _ => format!("ftrace failed to modify [<{ip:016x}>]"),
            });
            break;
        }
        done += 1;
    }
    done
}

/// `ftrace_call_adjust()`: from the table entry to the address the arch patches.
fn ftrace_call_adjust(profile: &Profile, mem: &Memory, addr: u64) -> u64 {
    if addr == 0 {
        return 0;
    }
    match profile.arch() {
        Arch::X86_64 => addr,
        Arch::Aarch64 => {
            if !profile.is_enabled("DYNAMIC_FTRACE_WITH_CALL_OPS") {
                // The BL is the second of the two NOPs at the entry.
                if profile.is_enabled("DYNAMIC_FTRACE_WITH_REGS")
                    || profile.is_enabled("DYNAMIC_FTRACE_WITH_ARGS")
                {
                    return addr.wrapping_add(4);
                }
                return addr;
            }
            // Two NOPs before the function (the ops literal), an optional BTI, then the two.
            if !addr.is_multiple_of(8) {
                return 0; // WARN_RATELIMIT("Misaligned patch-site")
            }
            let mut a = addr.wrapping_add(8);
            if profile.is_enabled("ARM64_BTI_KERNEL")
                && mem
                    .read_u32(a)
                    .is_ok_and(|insn| insn & 0xffff_ff3f == 0xd503_241f)
            {
                a = a.wrapping_add(4);
            }
            a.wrapping_add(4)
        }
    }
}

/// x86's `ftrace_init_nop()` → `ftrace_make_nop(mod, rec, MCOUNT_ADDR)` →
/// `ftrace_modify_code_direct()`: the `call __fentry__` at `ip` becomes `x86_nops[5]`.
fn x86_ftrace_init_nop(mem: &mut Memory, ip: u64, fentry: u64) -> Result<(), Errno> {
    let mut old = [0xe8_u8, 0, 0, 0, 0];
    let rel = fentry.wrapping_sub(ip.wrapping_add(5)) as i32;
    old[1..].copy_from_slice(&rel.to_le_bytes());
    let cur = mem.read(ip, 5).map_err(|_| Errno::EFAULT)?;
    if cur != old {
        return Err(Errno::EINVAL);
    }
    mem.write(ip, &X86_NOP5).map_err(|_| Errno::EPERM)
}

/// arm64's `ftrace_init_nop()`: on 6.12 (`CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS`) first
/// `ftrace_rec_set_nop_ops()` writes `&ftrace_nop_ops` into the literal before the function;
/// then the NOP before `ip` becomes `mov x9, x30` (`ftrace_modify_code()` with validation).
fn a64_ftrace_init_nop(
    profile: &Profile,
    mem: &mut Memory,
    ip: u64,
    nop_ops: u64,
) -> Result<(), Errno> {
    if profile.is_enabled("DYNAMIC_FTRACE_WITH_CALL_OPS") {
        let literal = (ip.wrapping_sub(12)) & !7;
        mem.write_u64(literal, nop_ops).map_err(|_| Errno::EPERM)?;
    }
    let pc = ip.wrapping_sub(4);
    let cur = mem.read_u32(pc).map_err(|_| Errno::EFAULT)?;
    if cur != A64_NOP {
        return Err(Errno::EINVAL);
    }
    mem.write_u32(pc, A64_MOV_X9_LR).map_err(|_| Errno::EPERM)
}

/// `sort_r()` of lib/sort.c, the version's heapsort (6.12 extracts two elements per round
/// and compares children with `>` instead of `>=`), over `num` elements addressed by index:
/// `cmp(a, b)` is the kernel's comparison (<0, 0, >0), `swap(a, b)` its swap function.
pub fn sort_r(
    version: KernelVersion,
    num: usize,
    mut cmp: impl FnMut(usize, usize) -> i32,
    mut swap: impl FnMut(usize, usize),
) {
    // Indices below are element indices; the kernel's are byte offsets (size times these).
    let parent = |i: usize| (i - 1) / 2;
    let mut n = num;
    let mut a = num / 2;
    if a == 0 {
        return;
    }
    let v6_12 = version == KernelVersion::V6_12;
    let mut shift = 0usize;
    loop {
        if a != 0 {
            a -= 1 << shift;
        } else if v6_12 {
            if n > 3 {
                n -= 1;
                swap(0, n);
                shift = usize::from(cmp(1, 2) <= 0);
                a = 1 << shift;
                n -= 1;
                swap(a, n);
            } else {
                break;
            }
        } else {
            n -= 1;
            if n == 0 {
                break;
            }
            swap(0, n);
        }
        let mut b = a;
        let (mut c, mut d);
        loop {
            c = 2 * b + 1;
            d = c + 1;
            if d >= n {
                break;
            }
            let r = cmp(c, d);
            b = if (v6_12 && r > 0) || (!v6_12 && r >= 0) {
                c
            } else {
                d
            };
        }
        if d == n {
            b = c;
        }
        while b != a && cmp(a, b) >= 0 {
            b = parent(b);
        }
        let c = b;
        while b != a {
            b = parent(b);
            swap(b, c);
        }
    }
    if v6_12 {
        n -= 1;
        swap(0, n);
        if n == 2 && cmp(0, 1) > 0 {
            swap(0, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(version: KernelVersion, v: &[i64]) -> Vec<i64> {
        let cell = std::cell::RefCell::new(v.to_vec());
        sort_r(
            version,
            v.len(),
            |a, b| {
                let v = cell.borrow();
                v[a].cmp(&v[b]) as i32
            },
            |a, b| cell.borrow_mut().swap(a, b),
        );
        cell.into_inner()
    }

    #[test]
    fn sort_r_sorts_like_sort_for_both_versions() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in 0..70 {
            let v: Vec<i64> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 23) as i64
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            for version in [KernelVersion::V6_1, KernelVersion::V6_12] {
                assert_eq!(sorted(version, &v), want, "{version:?} {v:?}");
            }
        }
    }
}
