//! Byte-exact relocation: the simulator's module memory against the real kernel's.
//!
//! `tests/fixtures/memdump/<kernel>.json` holds what `tests/memdump/record.sh` captured from
//! one boot of each real kernel under QEMU: per module, the section addresses
//! (`/sys/module/<m>/sections/`), the addresses of the symbols it imports and of the kernel
//! symbols the post-relocation patches use (`/proc/kallsyms`), and the bytes of every live
//! section (`/proc/kcore`). This test loads each module into the simulator at those addresses
//! with those symbols (`loader::image::load_placed`, what `modloader image` does) and compares
//! every captured section byte for byte, printing `N identical, M differ` per kernel and, for
//! each difference, the first differing offsets with the relocation or kernel patch that
//! wrote them.
//!
//! The only bytes allowed to differ are listed below by name: fields of `struct module` the
//! kernel fills at run time (offsets from the kernel's own BTF,
//! `tests/fixtures/memdump/struct_module/<kernel>.tsv`) and `charp` parameter values (a pointer
//! to a kernel heap copy).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use indexmap::IndexMap;
use modsim_tests::Target;
use sim::image::{ElfHeader, Rela, Section, Symbol};
use sim::kernel::{Kernel, ProfileRef};
use sim::profile::Profile;
use sim::trace::reloc_type_name;

/// Fields of `struct module` the kernel writes during the load (kernel/module/main.c unless
/// said otherwise). Every other byte of `.gnu.linkonce.this_module` (among them `state`,
/// `name`, `init`, `exit`, `version`, `srcversion` and the padding) must be identical.
const STRUCT_MODULE_RUNTIME_FIELDS: &[&str] = &[
    // The module list and its sysfs objects: add_unformed_module(), mod_sysfs_setup(),
    // module_add_modinfo_attrs(), add_sect_attrs(), add_notes_attrs().
    "list",
    "mkobj",
    "modinfo_attrs",
    "holders_dir",
    "sect_attrs",
    "notes_attrs",
    // find_module_sections(): pointers into the module's own tables.
    "syms",
    "num_syms",
    "crcs",
    "gpl_syms",
    "num_gpl_syms",
    "gpl_crcs",
    "kp",
    "num_kp",
    "ftrace_callsites",
    "num_ftrace_callsites",
    "jump_entries",
    "num_jump_entries",
    "btf_data_size",
    // Modules built with a distilled base BTF (pahole 1.28+, Debian 13's 6.12: a .BTF.base
    // section) have this one set too.
    "btf_base_data_size",
    // Memory layout: layout_sections()/move_module() (6.1 core_layout and init_layout, 6.12
    // mem[]), kallsyms (add_kallsyms()), the arch's data (x86 ORC and ITS, arm64 PLTs).
    "core_layout",
    "init_layout",
    "mem",
    "kallsyms",
    "core_kallsyms",
    "arch",
    // Load state: module_unload_init() (refcnt, the use lists), the param lock,
    // mod->args (strndup_user), taints (out-of-tree: O), module_bug_finalize() (bug_list),
    // resolve_symbol() (using_gplonly_symbols), klp_alive (kernel/livepatch).
    "refcnt",
    "source_list",
    "target_list",
    "param_lock",
    "args",
    "taints",
    "bug_list",
    "using_gplonly_symbols",
    "klp_alive",
];

/// `charp` parameters set by the capture's parameter string: the value is a pointer to a
/// `kmalloc`'d copy (`param_set_charp()`), whose address no simulator can know. (module,
/// variable, number of pointers set from its start).
const CHARP_HEAP_POINTERS: &[(&str, &str, u64)] =
    &[("mp_types", "p_charp", 1), ("mp_types", "p_charparr", 2)];

#[derive(serde::Deserialize)]
struct Capture {
    meta: serde_json::Value,
    modules: Vec<CapturedModule>,
}

#[derive(serde::Deserialize)]
struct CapturedModule {
    module: String,
    file: String,
    params: String,
    sections: IndexMap<String, String>,
    symbols: IndexMap<String, String>,
    bytes: IndexMap<String, String>,
}

fn hex_map(m: &IndexMap<String, String>) -> IndexMap<String, u64> {
    m.iter()
        .map(|(k, v)| {
            let a = u64::from_str_radix(v.trim_start_matches("0x"), 16)
                .unwrap_or_else(|e| panic!("{k}: bad address {v}: {e}"));
            (k.clone(), a)
        })
        .collect()
}

/// `struct module` members: (offset, size, name).
fn struct_module(t: &Target) -> Vec<(u64, u64, String)> {
    let p = &t.struct_module;
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].parse().expect("offset"),
                f[1].parse().expect("size"),
                f[2].to_string(),
            )
        })
        .collect()
}

/// What the `.ko` says about one section: its relocations and symbols.
struct KoView {
    aarch64: bool,
    /// section name → relocations (offset, type, symbol name, addend).
    relas: BTreeMap<String, Vec<(u64, u32, String, i64)>>,
    /// symbol name → (section name, value).
    symbols: BTreeMap<String, (String, u64)>,
}

fn ko_view(image: &[u8]) -> KoView {
    let h = ElfHeader::parse(image).expect("ELF header");
    let mut secs = Section::read_table(image, h.e_shoff, h.e_shnum).expect("sections");
    let strs = secs[usize::from(h.e_shstrndx)].offset;
    for s in &mut secs {
        s.name = String::from_utf8_lossy(Section::read_name(image, strs, s.sh_name)).into_owned();
    }
    let symtab = secs.iter().find(|s| s.sh_type == 2).expect(".symtab");
    let syms =
        Symbol::read_table(image, symtab, secs[symtab.link as usize].offset).expect("symbols");
    let mut relas = BTreeMap::new();
    for s in secs.iter().filter(|s| s.sh_type == 4) {
        let target = secs[s.info as usize].name.clone();
        let v: Vec<(u64, u32, String, i64)> = Rela::read_table(image, s)
            .expect("relas")
            .into_iter()
            .map(|r| {
                let sym = syms.get(r.sym as usize).map_or(String::new(), |y| {
                    if y.name.is_empty() {
                        secs.get(usize::from(y.shndx))
                            .map_or(String::new(), |s| s.name.clone())
                    } else {
                        y.name_str().into_owned()
                    }
                });
                (r.offset, r.r_type, sym, r.addend)
            })
            .collect();
        relas.insert(target, v);
    }
    let symbols = syms
        .iter()
        .filter(|y| !y.name.is_empty() && usize::from(y.shndx) < secs.len() && y.shndx != 0)
        .map(|y| {
            (
                y.name_str().into_owned(),
                (secs[usize::from(y.shndx)].name.clone(), y.value),
            )
        })
        .collect();
    KoView {
        aarch64: h.e_machine == 183,
        relas,
        symbols,
    }
}

/// The relocation width in bytes a type writes (for naming the one that covers an offset).
fn reloc_width(aarch64: bool, t: u32) -> u64 {
    match (aarch64, t) {
        (false, 1) | (false, 24) => 8,  // R_X86_64_64, PC64
        (false, _) => 4,                // PC32, PLT32, 32, 32S
        (true, 257) | (true, 260) => 8, // ABS64, PREL64
        (true, 258) | (true, 261) => 4, // ABS32, PREL32
        (true, 259) | (true, 262) => 2, // ABS16, PREL16
        (true, _) => 4,                 // instructions
    }
}

/// Code the kernel patches after relocation, from the simulator's copy of the module's site
/// tables: (section, offset, length, the patch step).
type Sites = Vec<(String, u64, u64, &'static str)>;

fn patch_sites(k: &Kernel, module: &str) -> Sites {
    let Some(m) = k.module(module) else {
        return Vec::new();
    };
    let locate = |addr: u64| {
        m.sections
            .iter()
            .find(|s| s.addr <= addr && addr < s.addr + s.size)
            .map(|s| (s.name.clone(), addr - s.addr))
    };
    let aarch64 = k.profile().arch() == sim::profile::Arch::Aarch64;
    let mut out = Vec::new();
    for s in &m.sections {
        let Ok(b) = k.memory().read(s.addr, s.size as usize) else {
            continue;
        };
        let prel32 = |len: u64, step: &'static str, out: &mut Sites| {
            for (i, c) in b.chunks_exact(4).enumerate() {
                let at = s.addr + 4 * i as u64;
                let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if let Some((sec, off)) = locate(at.wrapping_add(v as i64 as u64)) {
                    out.push((sec, off, len, step));
                }
            }
        };
        match s.name.as_str() {
            ".return_sites" => prel32(5, "apply_returns", &mut out),
            ".smp_locks" => prel32(1, "alternatives_smp_module_add", &mut out),
            "__jump_table" => {
                // struct jump_entry { s32 code; s32 target; long key; }: the key's entries.
                for (i, c) in b.chunks_exact(16).enumerate() {
                    let at = s.addr + 16 * i as u64 + 8;
                    let v = i64::from_le_bytes(c[8..16].try_into().expect("8 bytes"));
                    let key = at.wrapping_add(v as u64) & !3;
                    if let Some((sec, off)) = locate(key + 8) {
                        out.push((
                            sec,
                            off,
                            8,
                            "jump_label_add_module (static_key_set_entries)",
                        ));
                    }
                }
            }
            ".ibt_endbr_seal" => prel32(4, "apply_seal_endbr", &mut out),
            "__mcount_loc" | "__patchable_function_entries" => {
                for c in b.chunks_exact(8) {
                    let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                    // x86: the 5-byte call; arm64: the ops literal and the two entry NOPs.
                    let (start, len) = if aarch64 { (v, 20) } else { (v, 5) };
                    if let Some((sec, off)) = locate(start) {
                        out.push((sec, off, len, "ftrace_init_nop"));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Which kernel step wrote offset `off` of section `sec`, as far as the test can tell.
fn who_wrote(ko: &KoView, sites: &Sites, sec: &str, off: u64) -> String {
    if let Some(r) = ko.relas.get(sec).and_then(|v| {
        v.iter()
            .find(|r| r.0 <= off && off < r.0 + reloc_width(ko.aarch64, r.1))
    }) {
        let then = match sec {
            ".orc_unwind_ip" => ", then unwind_module_init (ORC sort)",
            "__mcount_loc" | "__patchable_function_entries" => ", then ftrace_process_locs (sort)",
            _ => "",
        };
        return format!(
            "relocation {} at +{:#x} against {}{:+#x} (apply_relocate_add){then}",
            reloc_type_name(ko.aarch64, r.1),
            r.0,
            r.2,
            r.3
        );
    }
    if let Some((_, o, _, step)) = sites
        .iter()
        .find(|(s, o, len, _)| s == sec && *o <= off && off < o + len)
    {
        return format!("{step} (the patch site at +{o:#x})");
    }
    let patch = match sec {
        ".orc_unwind" | ".orc_unwind_ip" => "unwind_module_init (ORC sort)",
        "__mcount_loc" | "__patchable_function_entries" => "ftrace_process_locs (sort)",
        "__jump_table" => "jump_label_add_module (sort, init flags)",
        ".text.ftrace_trampoline" | ".init.text.ftrace_trampoline" => "module_init_ftrace_plt",
        ".plt" | ".init.plt" => "module_emit_plt_entry",
        ".gnu.linkonce.this_module" => "struct module (filled by the kernel)",
        _ => "the file's bytes (move_module) or a parameter (parse_args)",
    };
    patch.to_string()
}

/// Byte ranges (offsets in the section) allowed to differ, each with its reason.
fn allowed(t: &Target, module: &str, sec: &str, ko: &KoView) -> Vec<(u64, u64, String)> {
    let mut out = Vec::new();
    if sec == ".gnu.linkonce.this_module" {
        for (off, size, name) in struct_module(t) {
            if STRUCT_MODULE_RUNTIME_FIELDS.contains(&name.as_str()) {
                out.push((off, off + size, format!("struct module .{name}")));
            }
        }
    }
    for &(m, var, n) in CHARP_HEAP_POINTERS {
        if m != module {
            continue;
        }
        if let Some((_, v)) = ko.symbols.get(var).filter(|(s, _)| s == sec) {
            out.push((*v, v + 8 * n, format!("{var} (charp heap pointer)")));
        }
    }
    out
}

/// The captures of a kernel: (name, path), the default one first (it must exist): the committed
/// ones, those of a kernel set (`MODSIM_KERNEL_SET`), or those in `$MODSIM_MEMDUMP_DIR` (a fresh
/// recording: `tests/memdump/record.sh --out DIR`, as CI does): `t.memdump`.
fn captures_of(t: &Target) -> Vec<(String, PathBuf)> {
    let kernel = t.name.as_str();
    let dir = t.memdump.clone();
    let main = dir.join(format!("{kernel}.json"));
    let mut out = vec![(kernel.to_string(), main)];
    let mut other: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            stem.strip_prefix(kernel)?
                .starts_with('+')
                .then(|| (stem.to_string(), dir.join(&name)))
        })
        .collect();
    other.sort();
    out.extend(other);
    out
}

fn check_capture(
    t: &Target,
    profile: &ProfileRef,
    path: &std::path::Path,
    report: &mut String,
    notes: &mut String,
) -> (usize, usize) {
    let kernel = t.name.as_str();
    let label = path
        .file_stem()
        .map_or_else(|| kernel.to_string(), |s| s.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cap: Capture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        cap.meta["kernel"],
        kernel,
        "{}: meta.kernel",
        path.display()
    );
    // The boot options of the capture decide the machine-dependent patches.
    let mut settings = sim::kernel::Settings::default();
    settings.apply_cmdline(cap.meta["append"].as_str().unwrap_or(""));
    let mut k = Kernel::with_settings(profile.clone(), settings);
    let (mut same, mut differ) = (0, 0);
    let mut allowed_used = std::collections::BTreeSet::new();
    for m in &cap.modules {
        let file = t.fixtures.join(&m.file);
        let image = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let ko = ko_view(&image);
        let name = loader::image::load_placed(
            &mut k,
            &image,
            &m.params,
            hex_map(&m.sections),
            hex_map(&m.symbols),
        )
        .unwrap_or_else(|e| panic!("{label}: {}: {e}", m.module));
        assert_eq!(name, m.module, "{label}: module name");
        let sites = patch_sites(&k, &name);
        let module = k.module(&name).expect("loaded");
        for w in &module.placement_mismatches {
            report.push_str(&format!("{label} {name}: layout: {w}\n"));
            differ += 1;
        }
        for (sec, _, _) in loader::image::live_sections(&k, &name) {
            if !m.bytes.contains_key(&sec) {
                report.push_str(&format!(
                    "{label} {name} {sec}: live in the simulator, not captured\n"
                ));
                differ += 1;
            }
        }
        for (sec, b64) in &m.bytes {
            let real = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_else(|e| panic!("{label} {name} {sec}: base64: {e}"));
            let sim = match k.section_bytes(&name, sec) {
                Ok(b) => b,
                Err(e) => {
                    report.push_str(&format!(
                        "{label} {name} {sec}: not in the simulator ({e})\n"
                    ));
                    differ += 1;
                    continue;
                }
            };
            let ok_ranges = allowed(t, &name, sec, &ko);
            let mut excused = std::collections::BTreeSet::new();
            let mut diffs: Vec<u64> = Vec::new();
            for i in 0..real.len().max(sim.len()) {
                let (r, s) = (real.get(i).copied(), sim.get(i).copied());
                let equal = match (r, s) {
                    (Some(r), Some(s)) => r == s,
                    // The capture may run past the section (arm64's resized PLT sections are
                    // read to the next section): those bytes are zero-filled memory.
                    (Some(r), None) => r == 0,
                    (None, Some(_)) => false,
                    (None, None) => true,
                };
                let i = i as u64;
                if equal {
                    continue;
                }
                match ok_ranges.iter().find(|(a, b, _)| *a <= i && i < *b) {
                    Some((_, _, why)) => {
                        excused.insert(why.clone());
                    }
                    None => diffs.push(i),
                }
            }
            allowed_used.extend(excused);
            if diffs.is_empty() {
                same += 1;
                continue;
            }
            differ += 1;
            report.push_str(&format!(
                "{label} {name} {sec}: {} bytes differ (real {} bytes, simulated {})\n",
                diffs.len(),
                real.len(),
                sim.len()
            ));
            let mut shown = 0;
            let mut last = None;
            for &o in &diffs {
                // One line per differing run of bytes.
                if last.is_some_and(|l| l + 1 == o) {
                    last = Some(o);
                    continue;
                }
                last = Some(o);
                if shown == 8 {
                    report.push_str("    ...\n");
                    break;
                }
                shown += 1;
                let at = |v: &[u8]| {
                    let o = o as usize;
                    v.get(o..(o + 8).min(v.len()))
                        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                        .unwrap_or_default()
                };
                report.push_str(&format!(
                    "    +{o:#x}: real {} simulated {}: {}\n",
                    at(&real),
                    at(&sim),
                    who_wrote(&ko, &sites, sec, o)
                ));
            }
        }
    }
    if !allowed_used.is_empty() {
        let (fields, other): (Vec<String>, Vec<String>) = allowed_used
            .into_iter()
            .partition(|w: &String| w.starts_with("struct module ."));
        let fields: Vec<&str> = fields
            .iter()
            .map(|f| &f["struct module .".len()..])
            .collect();
        notes.push_str(&format!(
            "{label}: allowed to differ: {}; struct module run-time fields {}\n",
            other.join(", "),
            fields.join(" ")
        ));
    }
    let _ = &cap.meta;
    (same, differ)
}

#[test]
fn simulated_module_memory_is_byte_identical_to_the_real_kernels() {
    let mut report = String::new();
    let mut notes = String::new();
    let mut summary = Vec::new();
    let mut failed = false;
    // MODSIM_MEMDUMP_KERNELS="a b" checks only those kernels (while re-recording one).
    let only = std::env::var("MODSIM_MEMDUMP_KERNELS").ok();
    // The four pinned kernels, or the set of MODSIM_KERNEL_SET (tests/lab/current.sh).
    for t in modsim_tests::targets() {
        if only
            .as_deref()
            .is_some_and(|o| !o.split_whitespace().any(|k| k == t.name))
        {
            continue;
        }
        let profile = t.profile();
        // <kernel>.json, then the captures booted with other options: <kernel>+<suffix>.json.
        for (name, path) in captures_of(&t) {
            let (same, differ) = check_capture(&t, &profile, &path, &mut report, &mut notes);
            summary.push(format!("{name}: {same} identical, {differ} differ"));
            failed |= differ > 0 || same == 0;
        }
    }
    for s in &summary {
        println!("{s}");
    }
    print!("{notes}{report}");
    assert!(!failed, "\n{}\n{report}", summary.join("\n"));
}

/// The placement is checked against the simulator's layout: moving one section of a captured
/// module by a page is reported as a layout disagreement, and the section is still put where
/// it was told.
#[test]
fn a_placement_the_layout_disagrees_with_is_reported() {
    let kernel = "debian-6.1-amd64";
    let path = modsim_tests::memdump_dir().join(format!("{kernel}.json"));
    let text = std::fs::read_to_string(path).expect("capture");
    let cap: Capture = serde_json::from_str(&text).expect("capture JSON");
    let m = cap
        .modules
        .iter()
        .find(|m| m.module == "mp_lib")
        .expect("mp_lib captured");
    let image = std::fs::read(modsim_tests::fixtures(kernel).join(&m.file)).expect("mp_lib.ko");
    let mut sections = hex_map(&m.sections);
    let moved = sections[".note.Linux"] + 0x1000;
    sections.insert(".note.Linux".into(), moved);
    let mut k = Kernel::new(Profile::builtin(kernel).expect("profile"));
    let name = loader::image::load_placed(&mut k, &image, "", sections, hex_map(&m.symbols))
        .expect("loads");
    let module = k.module(&name).expect("loaded");
    assert_eq!(
        module.placement_mismatches.len(),
        1,
        "{:?}",
        module.placement_mismatches
    );
    assert!(module.placement_mismatches[0].starts_with(".note.Linux: given at"));
    let s = module
        .sections
        .iter()
        .find(|s| s.name == ".note.Linux")
        .expect("section");
    assert_eq!(s.addr, moved);
    // The next load has no placement: the simulator's own addresses again.
    let other = std::fs::read(modsim_tests::fixtures(kernel).join("mp_export.ko")).expect("ko");
    k.init_module(&other, Some(b"")).expect("mp_export loads");
    assert!(
        k.module("mp_export")
            .expect("loaded")
            .placement_mismatches
            .is_empty()
    );
}

/// Without a placement (the simulator's own addresses) the machine-dependent patches apply
/// the same way: with `spectre_v2=off` mp_patch's thunk call and jump become `call *%rax` and
/// `jmp *%rax` padded as the real kernel pads them (see the `+nospectre` captures).
#[test]
fn retpolines_are_rewritten_on_the_simulators_own_addresses_too() {
    for kernel in ["debian-6.1-amd64", "debian-6.12-amd64"] {
        let image = std::fs::read(modsim_tests::fixtures(kernel).join("mp_patch.ko")).expect("ko");
        let mut settings = sim::kernel::Settings::default();
        settings.apply_cmdline("quiet spectre_v2=off");
        let mut k = Kernel::with_settings(Profile::builtin(kernel).expect("profile"), settings);
        k.init_module(&image, Some(b"")).expect("mp_patch loads");
        let m = k.module("mp_patch").expect("loaded");
        let s = m
            .sections
            .iter()
            .find(|s| s.name == ".retpoline_sites")
            .expect(".retpoline_sites");
        let table = k
            .section_bytes("mp_patch", ".retpoline_sites")
            .expect("table");
        let mut seen: Vec<Vec<u8>> = table
            .chunks_exact(4)
            .enumerate()
            .map(|(i, c)| {
                let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let site = (s.addr + 4 * i as u64).wrapping_add(v as i64 as u64);
                k.memory().read(site, 5).expect("site").to_vec()
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                vec![0xff, 0xd0, 0x0f, 0x1f, 0x00], // call *%rax; nopl (%rax)
                vec![0xff, 0xe0, 0xcc, 0x66, 0x90], // jmp *%rax; int3; xchg %ax,%ax
            ],
            "{kernel}"
        );
    }
}
