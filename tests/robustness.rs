//! Untrusted module images never panic the simulator, whatever the kernel profile: every
//! fixture and every broken variant through both system calls of a fresh kernel of each of the
//! four profiles, and random mutations of real fixtures through the whole load path.

use std::sync::OnceLock;

use modsim_tests::{KERNELS, fixtures};
use proptest::prelude::*;
use sim::kernel::{Kernel, MODULE_INIT_COMPRESSED_FILE};
use sim::profile::Profile;

fn fixture_files(kernel: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures(kernel))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".ko"))
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(&p).ok()?,
            ))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_fixture_and_variant_loads_or_fails_cleanly_on_every_profile() {
    let mut loads = 0;
    let mut loaded = 0;
    for k in KERNELS {
        let p = Profile::builtin(k).unwrap_or_else(|e| panic!("{e}"));
        for target in KERNELS {
            for (name, bytes) in fixture_files(target) {
                for flags in [0, 1, 2, 3, MODULE_INIT_COMPRESSED_FILE] {
                    let mut kernel = Kernel::new(p);
                    loaded += usize::from(
                        kernel
                            .finit_module_bytes(bytes.clone(), Some(b"p_int=1 p_charp=x"), flags)
                            .is_ok(),
                    );
                    let _ = kernel.init_module(&bytes, None);
                    loads += 2;
                    // Whatever loaded can be unloaded (forced if it has no exit).
                    // By the name's bytes, as delete_module compares them.
                    let names: Vec<Vec<u8>> =
                        kernel.modules().map(|m| m.raw_name.clone()).collect();
                    for n in names {
                        let _ = kernel.delete_module(&n, 0o1000);
                    }
                    // Newest first, so users go before what they use: nothing may remain, and a
                    // failed load must not have left memory behind.
                    assert!(
                        kernel.modules().next().is_none(),
                        "{k} {target}/{name} flags {flags}: modules left"
                    );
                    assert_eq!(
                        kernel.memory().used(),
                        0,
                        "{k} {target}/{name} flags {flags}: memory left"
                    );
                }
            }
        }
    }
    println!("{loads} loads, {loaded} succeeded");
    assert!(
        loads > 2000 && loaded > 100,
        "{loads} loads, {loaded} succeeded: fixtures missing?"
    );
}

#[test]
fn a_kernel_is_a_value_that_threads_can_share_and_tests_can_make_by_the_thousand() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Kernel>();
    let p = Profile::builtin("debian-6.12-arm64").unwrap_or_else(|e| panic!("{e}"));
    let kernels: Vec<Kernel> = (0..2000).map(|_| Kernel::new(p)).collect();
    assert!(
        kernels
            .iter()
            .all(|k| k.modules().next().is_none() && k.tainted() == 0)
    );
    std::thread::scope(|s| {
        for k in kernels.into_iter().take(4) {
            s.spawn(move || assert_eq!(k.proc_modules(), ""));
        }
    });
}

fn corpus() -> &'static Vec<(&'static str, Vec<u8>)> {
    static C: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    C.get_or_init(|| {
        let mut v = Vec::new();
        for k in KERNELS {
            for name in [
                "mp_types.ko",
                "mp_export.ko",
                "mp_plt.ko",
                "mp_patch.ko",
                "mp_lib.ko.xz",
            ] {
                if let Ok(b) = std::fs::read(fixtures(k).join(name)) {
                    v.push((k, b));
                }
            }
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
    /// Property: flipping, truncating or overwriting bytes of a real module never panics the
    /// load path (any errno is fine).
    #[test]
    fn mutated_modules_never_panic_the_load_path(
        pick in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let c = corpus();
        prop_assume!(!c.is_empty());
        let (k, bytes) = &c[pick % c.len()];
        let mut b = bytes.clone();
        for (i, v) in &edits {
            let at = i.index(b.len());
            b[at] = *v;
        }
        if let Some(cut) = cut {
            b.truncate(cut.index(b.len() + 1));
        }
        let p = Profile::builtin(k).unwrap_or_else(|e| panic!("{e}"));
        let mut kernel = Kernel::new(p);
        let flags = if b.starts_with(b"\xfd7zXZ") { MODULE_INIT_COMPRESSED_FILE } else { 0 };
        let _ = kernel.finit_module_bytes(b.clone(), Some(b""), flags);
        let _ = kernel.init_module(&b, Some(b"p_int=3"));
    }
}

/// The byte ranges of `mp_patch.ko` (every kernel) that the post-relocation patches read:
/// their tables and those tables' relocations.
/// (kernel, mp_patch.ko, the (offset, length) of each table and relocation section).
type PatchTables = Vec<(&'static str, Vec<u8>, Vec<(usize, usize)>)>;

fn patch_tables() -> &'static PatchTables {
    static C: OnceLock<PatchTables> = OnceLock::new();
    C.get_or_init(|| {
        use sim::image::{ElfHeader, Section};
        const TABLES: [&str; 9] = [
            ".smp_locks",
            "__jump_table",
            ".return_sites",
            ".retpoline_sites",
            "__mcount_loc",
            "__patchable_function_entries",
            ".orc_unwind_ip",
            ".orc_unwind",
            ".ibt_endbr_seal",
        ];
        let mut v = Vec::new();
        for k in KERNELS {
            let Ok(b) = std::fs::read(fixtures(k).join("mp_patch.ko")) else {
                continue;
            };
            let h = ElfHeader::parse(&b).expect("ELF header");
            let mut secs = Section::read_table(&b, h.e_shoff, h.e_shnum).expect("sections");
            let strs = secs[usize::from(h.e_shstrndx)].offset;
            for s in &mut secs {
                s.name =
                    String::from_utf8_lossy(Section::read_name(&b, strs, s.sh_name)).into_owned();
            }
            let ranges: Vec<(usize, usize)> = secs
                .iter()
                .filter(|s| {
                    TABLES
                        .iter()
                        .any(|t| s.name == *t || s.name == format!(".rela{t}"))
                        && s.sh_type != 8
                        && s.size > 0
                })
                .map(|s| (s.offset as usize, s.size as usize))
                .collect();
            assert!(!ranges.is_empty(), "{k}: mp_patch.ko has no patch tables");
            v.push((k, b, ranges));
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
    /// Property: whatever the patch tables and their relocations say (sites outside the
    /// module, misaligned, overlapping, huge), the post-relocation patches never panic.
    #[test]
    fn mutated_patch_tables_never_panic(
        pick in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cpus in 1u32..3,
        retpoline in 0u8..3,
    ) {
        let c = patch_tables();
        prop_assume!(!c.is_empty());
        let (k, bytes, ranges) = &c[pick % c.len()];
        let mut b = bytes.clone();
        for (r, i, v) in &edits {
            let (off, len) = ranges[r.index(ranges.len())];
            b[off + i.index(len)] = *v;
        }
        let p = Profile::builtin(k).unwrap_or_else(|e| panic!("{e}"));
        let mut settings = sim::kernel::Settings { uniprocessor: cpus == 1, ..Default::default() };
        settings.x86_retpoline = match retpoline {
            0 => sim::kernel::X86Retpoline::Thunks,
            1 => sim::kernel::X86Retpoline::Lfence,
            _ => sim::kernel::X86Retpoline::Off,
        };
        let mut kernel = Kernel::with_settings(p, settings);
        kernel.set_tracing(true);
        let _ = kernel.init_module(&b, Some(b""));
        let _ = kernel.take_trace();
    }
}

/// A placement that makes a region larger than its layout (sections given far apart) once let
/// `do_init_module` subtract the allocated init region sizes from the module's layout size:
/// an overflow panic in debug builds, a size near 2^64 in `/proc/modules` in release builds.
/// The size the kernel reports is the layout's, whatever the placement.
#[test]
fn a_placement_with_gaps_keeps_the_layout_size() {
    let kernel = "debian-6.1-arm64";
    let image = std::fs::read(fixtures(kernel).join("mp_lib.ko")).expect("mp_lib.ko");
    let mut plain = Kernel::new(Profile::builtin(kernel).expect("profile"));
    plain.init_module(&image, Some(b"")).expect("plain load");
    let want = plain.module("mp_lib").expect("loaded").size;
    let sections: indexmap::IndexMap<String, u64> = [
        ("__ksymtab", 0xffff_8000_11d7_e000),
        (".symtab", 0xffff_8000_0000_0000),
        (".strtab", 0xffff_8000_0000_6258),
    ]
    .into_iter()
    .map(|(n, a)| (n.to_string(), a))
    .collect();
    let mut k = Kernel::new(Profile::builtin(kernel).expect("profile"));
    let name = loader::image::load_placed(&mut k, &image, "", sections, Default::default())
        .expect("placed load");
    assert_eq!(k.module(&name).expect("loaded").size, want);
}

/// Unloading a module frees every byte it allocated, the heap copies of `charp` array elements
/// included (`param_array_free` calls the element ops' `free`).
#[test]
fn an_unload_frees_charp_array_elements() {
    for kernel in KERNELS {
        let image = std::fs::read(fixtures(kernel).join("mp_types.ko")).expect("mp_types.ko");
        let mut k = Kernel::new(Profile::builtin(kernel).expect("profile"));
        let before = k.memory().used();
        k.init_module(&image, Some(b"p_charparr=a,b p_charp=xyz"))
            .expect("load");
        k.delete_module(b"mp_types", 0o4000).expect("unload");
        assert_eq!(
            k.memory().used(),
            before,
            "{kernel}: memory left after unload"
        );
    }
}

/// The module area is allocated first fit, as vmalloc does: memory an unloaded module gave back
/// is used again, so load/unload cycles never run out of address space (a bump allocator ran
/// out after some 32-65 thousand cycles).
#[test]
fn unloaded_module_memory_is_used_again() {
    for kernel in KERNELS {
        let image = std::fs::read(fixtures(kernel).join("mp_lib.ko")).expect("mp_lib.ko");
        let mut k = Kernel::new(Profile::builtin(kernel).expect("profile"));
        let mut bases = std::collections::BTreeSet::new();
        for _ in 0..50 {
            k.init_module(&image, Some(b"")).expect("load");
            bases.insert(k.module("mp_lib").expect("loaded").base);
            k.delete_module(b"mp_lib", 0o4000).expect("unload");
        }
        assert_eq!(bases.len(), 1, "{kernel}: bases {bases:x?}");
        assert_eq!(k.memory().used(), 0, "{kernel}");
    }
}
