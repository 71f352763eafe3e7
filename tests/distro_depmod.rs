//! The whole-distribution check: for each of the four Debian kernels, every module Debian ships
//! (`target/lab/root/<kernel>/lib/modules/<release>/`, from `tests/distro/fetch.sh`) is read by
//! `loader`, and its dependencies are compared, module by module, with what kmod's `depmod`
//! writes into `modules.dep` when run on a copy of the same tree. Every difference is printed
//! with its reason, and any difference fails the test.
//!
//! On the way, for every module: the exports read from the `__ksymtab*` entries equal the ones
//! read from the `__ksymtab_<name>` labels and kmod's view of them (the `__crc_<name>` symbols);
//! for a sample, the name, vermagic, `depends` and signature fields equal kmod's `modinfo`; the
//! unresolved symbols against `Module.symvers` equal `depmod -e -E`'s warnings.
//!
//! Skipped, with a message, when a tree is absent (a fresh machine: run `tests/distro/fetch.sh`)
//! or kmod's tools are not installed. `LAB` overrides `target/lab`, as in `tests/lab/lib.sh`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use loader::deps::{self, DepGraph, KernelSymbols, ModuleSymbols, Options};
use loader::file::ModuleFile;
use loader::modinfo::{self, ExportSource, ModuleInfo, Signature};
use modsim_tests::{KERNELS, repo};

/// Every how many modules one is compared with kmod's `modinfo`.
const MODINFO_SAMPLE: usize = 97;

fn lab() -> PathBuf {
    std::env::var_os("LAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/lab"))
}

/// An extracted kernel tree.
struct Tree {
    kernel: &'static str,
    release: String,
    /// `<root>/lib/modules/<release>`.
    dir: PathBuf,
    /// `Module.symvers` of the headers package, when extracted.
    symvers: Option<PathBuf>,
}

fn tree(kernel: &'static str) -> Result<Tree, String> {
    let root = lab().join("root").join(kernel);
    let modules = root.join("lib/modules");
    let releases: Vec<String> = std::fs::read_dir(&modules)
        .map_err(|_| format!("{} is missing", modules.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let [release] = &releases[..] else {
        return Err(format!(
            "{} holds {} releases, expected one",
            modules.display(),
            releases.len()
        ));
    };
    let dir = modules.join(release);
    if !dir.join("modules.order").is_file() {
        return Err(format!("{}/modules.order is missing", dir.display()));
    }
    let symvers = root
        .join("usr/src")
        .join(format!("linux-headers-{release}"))
        .join("Module.symvers");
    Ok(Tree {
        kernel,
        release: release.clone(),
        dir,
        symvers: symvers.is_file().then_some(symvers),
    })
}

/// A kmod tool (`depmod`, `modinfo`) in the usual places.
fn kmod_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/sbin", "/sbin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `<tmp>/<kernel>/lib/modules/<release>/`: the tree's directories as symlinks (depmod only
/// reads them) and its `modules.order`/`modules.builtin*` as copies, so that depmod writes its
/// files there and never into the tree. One directory per process: two test runs at once
/// (a developer's and a helper's) must not remove each other's.
fn copy_for_kmod(t: &Tree) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("distro-depmod-{}", std::process::id()))
        .join(t.kernel);
    let dir = root.join("lib/modules").join(&t.release);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in std::fs::read_dir(&t.dir).unwrap_or_else(|e| panic!("{}: {e}", t.dir.display())) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        let name = e.file_name();
        let n = name.to_string_lossy();
        let src = e.path();
        if n == "build" || n == "source" {
            continue;
        }
        if n.starts_with("modules.") {
            if [
                "modules.order",
                "modules.builtin",
                "modules.builtin.modinfo",
            ]
            .contains(&&*n)
            {
                std::fs::copy(&src, dir.join(&name)).unwrap_or_else(|e| panic!("{n}: {e}"));
            }
        } else {
            std::os::unix::fs::symlink(&src, dir.join(&name))
                .unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }
    root
}

/// `modules.dep` lines: module → its dependencies, in file order.
fn parse_modules_dep(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let (m, d) = l.split_once(':')?;
            Some((
                m.to_owned(),
                d.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect()
}

/// What one module looks like to us and to kmod, for explaining differences.
struct Seen {
    symbols: ModuleSymbols,
    /// Our exports (`__ksymtab*` entries).
    exports: BTreeSet<String>,
    /// kmod's idea of the exports: the `__crc_<name>` symbols (what `kmod_elf_get_symbols`
    /// reads when there are any).
    crc_exports: BTreeSet<String>,
}

/// Per-tree results of reading every module once.
#[derive(Default)]
struct Reading {
    seen: Vec<Option<Seen>>,
    /// Modules whose two export readings, or kmod's view, disagree, with why.
    export_mismatches: Vec<String>,
    modinfo_mismatches: Vec<String>,
    modinfo_compared: usize,
    signed: usize,
    unreadable: Vec<String>,
}

/// kmod's `modinfo` of a file: field → values (continuation lines joined).
fn kmod_modinfo(modinfo: &Path, file: &Path) -> BTreeMap<String, Vec<String>> {
    let out = Command::new(modinfo)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", modinfo.display()));
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(cont) = line.strip_prefix('\t') {
            if let Some(v) = last
                .as_ref()
                .and_then(|k| fields.get_mut(k))
                .and_then(|v| v.last_mut())
            {
                v.push_str(cont.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields
                .entry(k.to_owned())
                .or_default()
                .push(v.trim().to_owned());
            last = Some(k.to_owned());
        }
    }
    fields
}

/// Our modinfo fields that kmod's `modinfo` prints, in its words.
fn our_modinfo(info: &ModuleInfo) -> BTreeMap<String, Vec<String>> {
    let mut f: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in ["name", "vermagic", "depends", "license", "alias"] {
        let v: Vec<String> = info.values(key).map(|v| v.trim().to_owned()).collect();
        if !v.is_empty() {
            f.insert(key.to_owned(), v);
        }
    }
    if let Some(s) = &info.signature {
        f.insert("sig_id".into(), vec![s.id_type.to_owned()]);
        f.insert("signer".into(), vec![s.signer.clone().unwrap_or_default()]);
        f.insert("sig_key".into(), vec![Signature::hex(&s.key_id)]);
        f.insert(
            "sig_hashalgo".into(),
            vec![s.hash_algo.unwrap_or("unknown").to_owned()],
        );
        f.insert("signature".into(), vec![Signature::hex(&s.signature)]);
    }
    f
}

/// Reads every module of the tree once, on two threads: the graph input, the export
/// cross-checks and the modinfo sample.
fn read_tree(t: &Tree, paths: &[PathBuf], modinfo_tool: Option<&Path>) -> Reading {
    let next = AtomicUsize::new(0);
    let result = Mutex::new(Reading {
        seen: (0..paths.len()).map(|_| None).collect(),
        ..Reading::default()
    });
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    let rel = p.strip_prefix(&t.dir).unwrap_or(p).display().to_string();
                    let file = match ModuleFile::open(p) {
                        Ok(f) => f,
                        Err(e) => {
                            let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
                            r.unreadable.push(e.to_string());
                            r.seen[i] = Some(Seen {
                                symbols: ModuleSymbols::unreadable(p, &t.dir, e.to_string()),
                                exports: BTreeSet::new(),
                                crc_exports: BTreeSet::new(),
                            });
                            continue;
                        }
                    };
                    let info = match modinfo::read(file.data()) {
                        Ok(info) => info,
                        Err(e) => {
                            let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
                            r.unreadable.push(format!("{rel}: {e}"));
                            r.seen[i] = Some(Seen {
                                symbols: ModuleSymbols::unreadable(p, &t.dir, e.to_string()),
                                exports: BTreeSet::new(),
                                crc_exports: BTreeSet::new(),
                            });
                            continue;
                        }
                    };
                    let mut mismatches = Vec::new();
                    match modinfo::read_exports(file.data(), ExportSource::SymbolNames) {
                        Ok(by_label) if by_label == info.exports => {}
                        Ok(by_label) => mismatches.push(format!(
                            "{rel}: exports from __ksymtab entries {:?} != from __ksymtab_ labels {:?}",
                            info.exports, by_label
                        )),
                        Err(e) => mismatches.push(format!("{rel}: labels: {e}")),
                    }
                    let exports: BTreeSet<String> =
                        info.exports.iter().map(|e| e.name.clone()).collect();
                    let crc_exports: BTreeSet<String> =
                        info.export_crcs.iter().map(|c| c.name.clone()).collect();
                    if exports != crc_exports {
                        mismatches.push(format!(
                            "{rel}: exports without __crc_ symbol {:?}, __crc_ without export {:?}",
                            exports.difference(&crc_exports).collect::<Vec<_>>(),
                            crc_exports.difference(&exports).collect::<Vec<_>>()
                        ));
                    }
                    let mut modinfo_diff = Vec::new();
                    let mut compared = false;
                    if let Some(tool) = modinfo_tool.filter(|_| i.checked_rem(MODINFO_SAMPLE) == Some(0)) {
                        compared = true;
                        let theirs = kmod_modinfo(tool, p);
                        for (k, ours) in our_modinfo(&info) {
                            let t = theirs.get(&k).cloned().unwrap_or_default();
                            if t != ours {
                                modinfo_diff.push(format!("{rel}: {k}: ours {ours:?}, kmod {t:?}"));
                            }
                        }
                        for k in ["sig_id", "signer", "sig_key", "sig_hashalgo", "signature"] {
                            if theirs.contains_key(k) && info.signature.is_none() {
                                modinfo_diff.push(format!("{rel}: kmod shows {k}, we read no signature"));
                            }
                        }
                    }
                    let seen = Seen {
                        symbols: ModuleSymbols::from_info(p, &t.dir, &info),
                        exports,
                        crc_exports,
                    };
                    let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
                    r.export_mismatches.extend(mismatches);
                    r.modinfo_mismatches.extend(modinfo_diff);
                    r.modinfo_compared += usize::from(compared);
                    r.signed += usize::from(info.signature.is_some());
                    r.seen[i] = Some(seen);
                }
            });
        }
    });
    result.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Why module `m` depends on `dep` for one side and not the other.
fn explain(by_rel: &HashMap<&str, &Seen>, m: &str, dep: &str, ours: bool) -> String {
    let (Some(sm), Some(sd)) = (by_rel.get(m), by_rel.get(dep)) else {
        return format!("{dep} is not a module we read");
    };
    let linking: Vec<String> = sm
        .symbols
        .needs
        .iter()
        .filter(|n| {
            if ours {
                sd.exports.contains(&n.name)
            } else {
                sd.crc_exports.contains(&n.name)
            }
        })
        .map(|n| {
            let mut why = n.name.clone();
            if n.weak {
                why.push_str(" (weak)");
            }
            if ours && !sd.crc_exports.contains(&n.name) {
                why.push_str(": no __crc_ symbol, which is where kmod looks for exports");
            }
            if !ours && !sd.exports.contains(&n.name) {
                why.push_str(": a __crc_ symbol but no __ksymtab entry");
            }
            why
        })
        .collect();
    if linking.is_empty() {
        "no needed symbol links them (provider chosen differently among duplicate exports?)".into()
    } else {
        format!("through {}", linking.join(", "))
    }
}

#[test]
fn our_dependencies_equal_kmods_on_the_debian_trees() {
    let Some(depmod) = kmod_tool("depmod") else {
        println!("skipped: kmod's depmod is not installed (apt-get install kmod)");
        return;
    };
    let modinfo_tool = kmod_tool("modinfo");
    let mut checked = 0;
    let mut failures = Vec::new();
    for kernel in KERNELS {
        let t = match tree(kernel) {
            Ok(t) => t,
            Err(why) => {
                println!("skipped {kernel}: {why}: run tests/distro/fetch.sh");
                continue;
            }
        };
        checked += 1;

        // kmod's depmod on a copy.
        let copy = copy_for_kmod(&t);
        let out = Command::new(&depmod)
            .arg("-b")
            .arg(&copy)
            .arg(&t.release)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", depmod.display()));
        assert!(
            out.status.success(),
            "{kernel}: kmod depmod failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kmod_dep_text = std::fs::read_to_string(
            copy.join("lib/modules")
                .join(&t.release)
                .join("modules.dep"),
        )
        .unwrap_or_else(|e| panic!("{kernel}: kmod's modules.dep: {e}"));
        let _ = std::fs::remove_dir_all(copy.parent().unwrap_or(&copy));

        // Ours, reading every module once.
        let paths = deps::scan(&t.dir).unwrap_or_else(|e| panic!("{e}"));
        let reading = read_tree(&t, &paths, modinfo_tool.as_deref());
        let seen: Vec<Seen> = reading.seen.into_iter().flatten().collect();
        assert_eq!(seen.len(), paths.len());
        let mut modules: Vec<ModuleSymbols> = seen.iter().map(|s| s.symbols.clone()).collect();
        let order =
            std::fs::read_to_string(t.dir.join("modules.order")).unwrap_or_else(|e| panic!("{e}"));
        deps::sort_by_modules_order(&mut modules, &order);
        let graph = DepGraph::build(modules, &Options::default());
        let our_dep_text = graph.modules_dep();

        // Module by module.
        let ours = parse_modules_dep(&our_dep_text);
        let theirs: BTreeMap<String, Vec<String>> =
            parse_modules_dep(&kmod_dep_text).into_iter().collect();
        let by_rel: HashMap<&str, &Seen> = seen
            .iter()
            .map(|s| (s.symbols.rel_path.as_str(), s))
            .collect();
        let (mut same, mut same_set, mut with_deps) = (0, 0, 0);
        let mut diffs = Vec::new();
        for (m, d) in &ours {
            with_deps += usize::from(!d.is_empty());
            match theirs.get(m) {
                None => diffs.push(format!("{m}: only in our modules.dep")),
                Some(k) if k == d => same += 1,
                Some(k) => {
                    let a: BTreeSet<&String> = d.iter().collect();
                    let b: BTreeSet<&String> = k.iter().collect();
                    if a == b {
                        same_set += 1;
                        diffs.push(format!(
                            "{m}: same dependencies in another order: ours {d:?}, kmod {k:?}"
                        ));
                        continue;
                    }
                    for x in a.difference(&b) {
                        diffs.push(format!(
                            "{m}: only we depend on {x}: {}",
                            explain(&by_rel, m, x, true)
                        ));
                    }
                    for x in b.difference(&a) {
                        diffs.push(format!(
                            "{m}: only kmod depends on {x}: {}",
                            explain(&by_rel, m, x, false)
                        ));
                    }
                }
            }
        }
        let our_names: BTreeSet<&str> = ours.iter().map(|(m, _)| m.as_str()).collect();
        for m in theirs.keys().filter(|m| !our_names.contains(m.as_str())) {
            diffs.push(format!("{m}: only in kmod's modules.dep"));
        }

        // Unresolved symbols against Module.symvers, ours and kmod's (`-n`: nothing written).
        let mut unresolved_note = String::from("no Module.symvers");
        if let Some(symvers) = &t.symvers {
            let text = std::fs::read_to_string(symvers).unwrap_or_else(|e| panic!("{e}"));
            let g = DepGraph::build(
                graph.modules().to_vec(),
                &Options {
                    kernel: KernelSymbols::from_symvers(&text),
                    ..Options::default()
                },
            );
            let our_unresolved: BTreeSet<String> = g
                .unresolved()
                .iter()
                .map(|u| {
                    format!(
                        "{} needs unknown symbol {}",
                        g.modules()[u.module].rel_path,
                        u.symbol
                    )
                })
                .collect();
            let out = Command::new(&depmod)
                .args(["-n", "-e", "-E"])
                .arg(symvers)
                .arg("-b")
                .arg(&copy)
                .arg(&t.release)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            let prefix = format!("{}/", copy.join("lib/modules").join(&t.release).display());
            let kmod_unresolved: BTreeSet<String> = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter_map(|l| l.strip_prefix("depmod: WARNING: "))
                .filter(|l| l.contains(" needs unknown symbol "))
                .map(|l| l.replace(&prefix, ""))
                .collect();
            for u in our_unresolved.symmetric_difference(&kmod_unresolved) {
                let who = if our_unresolved.contains(u) {
                    "we"
                } else {
                    "kmod"
                };
                diffs.push(format!("unresolved only as {who} see it: {u}"));
            }
            unresolved_note = format!(
                "{} unresolved against Module.symvers (kmod: {})",
                our_unresolved.len(),
                kmod_unresolved.len()
            );
        }

        println!(
            "{kernel} ({}): {} modules (kmod {}), {with_deps} with dependencies; {same} lines \
             identical, {same_set} same set in another order, {} other differences; \
             modules.dep text {}; {} duplicate exports, {} cycles; {unresolved_note}; \
             exports: {} modules disagree between entries/labels/__crc_; \
             {} signed; modinfo: {} compared, {} differ; {} unreadable",
            t.release,
            ours.len(),
            theirs.len(),
            diffs.len().saturating_sub(same_set),
            if our_dep_text == kmod_dep_text {
                "identical"
            } else {
                "differs"
            },
            graph.duplicates().len(),
            graph.cycles().len(),
            reading.export_mismatches.len(),
            reading.signed,
            reading.modinfo_compared,
            reading.modinfo_mismatches.len(),
            reading.unreadable.len(),
        );
        for d in diffs
            .iter()
            .chain(&reading.export_mismatches)
            .chain(&reading.modinfo_mismatches)
            .chain(&reading.unreadable)
        {
            println!("  {kernel}: {d}");
            failures.push(format!("{kernel}: {d}"));
        }
        if reading.modinfo_compared > 0 {
            assert!(reading.signed > 0, "{kernel}: Debian's modules are signed");
        }
    }
    if checked == 0 {
        println!(
            "skipped: no Debian kernel tree under {}: run tests/distro/fetch.sh",
            lab().display()
        );
    }
    assert!(
        failures.is_empty(),
        "{} differences (listed above)",
        failures.len()
    );
}

/// A signature block damaged anywhere is read without a panic (a sample of Debian's signed
/// modules, every byte of the block flipped).
#[test]
fn damaged_signatures_of_debian_modules_never_panic() {
    let Ok(t) = tree("debian-6.1-amd64") else {
        println!("skipped: debian-6.1-amd64 is absent: run tests/distro/fetch.sh");
        return;
    };
    let paths = deps::scan(&t.dir).unwrap_or_else(|e| panic!("{e}"));
    let Some(small) = paths
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.len(), p)))
        .min()
        .map(|(_, p)| p)
    else {
        panic!("{}: no modules", t.dir.display());
    };
    let data = std::fs::read(small).unwrap_or_else(|e| panic!("{e}"));
    let info = modinfo::read(&data).unwrap_or_else(|e| panic!("{e}"));
    let sig = info
        .signature
        .unwrap_or_else(|| panic!("{}: unsigned", small.display()));
    for at in sig.signed_len..data.len() {
        let mut bad = data.clone();
        bad[at] ^= 0x5a;
        let _ = modinfo::read(&bad);
    }
}
