//! Benchmark (not a test): reading and dependency-ordering a whole Debian module tree with
//! `loader::deps`, and loading the whole tree into one simulated kernel in that order
//! (`loader::distro::load_all`: depmod, then every module through `finit_module`), against
//! kmod's `depmod` on the same tree, in the same run.
//!
//!     cargo bench -p loader --bench depmod [-- KERNEL] [--rounds N]
//!
//! KERNEL defaults to `debian-6.1-amd64`; the tree is `$LAB/root/KERNEL` (`LAB` defaults to
//! `target/lab` in the workspace; `tests/distro/fetch.sh` makes it). The two sides run
//! alternately, each timed from start to end (ours: scan, read and parse every module, build
//! the graph, produce the `modules.dep` text; kmod: `depmod -b COPY RELEASE`, which also writes
//! its index files); the medians and their ratio are printed. Ours runs twice per round: with
//! one thread per core and with one thread (kmod's depmod uses one).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use loader::deps::{self, DepGraph, Depmod};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// kmod's depmod, if installed.
fn kmod_depmod() -> Option<PathBuf> {
    ["/usr/sbin/depmod", "/sbin/depmod"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A copy of the module directory for kmod to write into: subdirectories as symlinks, the
/// `modules.order`/`modules.builtin*` files copied.
fn copy_tree(dir: &Path, release: &str, root: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(root);
    let to = root.join("lib/modules").join(release);
    std::fs::create_dir_all(&to)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_string_lossy();
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
                std::fs::copy(e.path(), to.join(&name))?;
            }
        } else {
            std::os::unix::fs::symlink(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

fn ours(dir: &Path, threads: usize) -> (DepGraph, usize) {
    let mut d = Depmod::new(dir);
    d.threads = threads;
    match d.run() {
        Ok(g) => {
            let n = g.modules_dep().len();
            (g, n)
        }
        Err(e) => panic!("{e}"),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kernel = "debian-6.1-amd64".to_owned();
    let mut rounds = 5usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().and_then(|n| n.parse().ok()).unwrap_or(rounds),
            "--bench" => {} // passed by cargo bench
            k if !k.starts_with('-') => kernel = k.to_owned(),
            _ => {}
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lab = std::env::var_os("LAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/lab"));
    let modules = lab.join("root").join(&kernel).join("lib/modules");
    let release = std::fs::read_dir(&modules)
        .ok()
        .and_then(|mut rd| rd.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let Some(release) = release else {
        println!(
            "skipped: {} is missing: run tests/distro/fetch.sh",
            modules.display()
        );
        return ExitCode::SUCCESS;
    };
    let dir = modules.join(&release);
    let Some(kmod) = kmod_depmod() else {
        println!("skipped: kmod's depmod is not installed");
        return ExitCode::SUCCESS;
    };
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bench-depmod")
        .join(&kernel);
    if let Err(e) = copy_tree(&dir, &release, &copy) {
        eprintln!("{}: {e}", copy.display());
        return ExitCode::from(1);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Phases of one run of ours, for the record.
    let t = Instant::now();
    let paths = deps::scan(&dir).unwrap_or_else(|e| panic!("{e}"));
    let t_scan = t.elapsed();
    let t = Instant::now();
    let mut mods = deps::read_modules(&paths, &dir, threads);
    let t_read = t.elapsed();
    let t = Instant::now();
    let order = std::fs::read_to_string(dir.join("modules.order")).unwrap_or_default();
    deps::sort_by_modules_order(&mut mods, &order);
    let g = DepGraph::build(mods, &deps::Options::default());
    let t_build = t.elapsed();
    let t = Instant::now();
    let text = g.modules_dep();
    let t_text = t.elapsed();
    let bytes: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{kernel} ({release}): {} modules, {:.0} MiB on disk, {} modules.dep lines",
        paths.len(),
        bytes as f64 / f64::from(1 << 20),
        text.lines().count()
    );
    println!(
        "ours, phases ({threads} threads): scan {}, read+parse {}, order+graph {}, modules.dep text {}",
        ms(t_scan),
        ms(t_read),
        ms(t_build),
        ms(t_text)
    );

    let profile = sim::profile::Profile::builtin(&kernel).ok();
    let (mut ours_n, mut ours_1, mut theirs, mut loads) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        let t = Instant::now();
        let (_, n1) = ours(&dir, threads);
        let a = t.elapsed();
        let t = Instant::now();
        let (_, n2) = ours(&dir, 1);
        let b = t.elapsed();
        assert_eq!(n1, n2);
        let t = Instant::now();
        let st = Command::new(&kmod)
            .arg("-b")
            .arg(&copy)
            .arg(&release)
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", kmod.display()));
        let c = t.elapsed();
        assert!(st.success(), "kmod depmod failed");
        let t = Instant::now();
        let loaded =
            profile.map(|p| loader::distro::load_all(p, &dir).unwrap_or_else(|e| panic!("{e}")));
        let d = t.elapsed();
        if round == 0 {
            if let Some(r) = &loaded {
                println!(
                    "simulated load: {} of {} modules loaded",
                    r.loaded(),
                    r.outcomes.len()
                );
            }
            continue; // warm-up: page cache
        }
        println!(
            "round {round}: ours {} ({threads} threads), ours {} (1 thread), kmod {}, simulated whole-distribution load {}",
            ms(a),
            ms(b),
            ms(c),
            ms(d)
        );
        loads.push(d);
        ours_n.push(a);
        ours_1.push(b);
        theirs.push(c);
    }
    let (a, b, c) = (median(ours_n), median(ours_1), median(theirs));
    println!(
        "median of {rounds}: ours {} ({threads} threads), ours {} (1 thread), kmod depmod {}",
        ms(a),
        ms(b),
        ms(c)
    );
    println!(
        "ratio kmod/ours: {:.2}x ({threads} threads), {:.2}x (1 thread)",
        c.as_secs_f64() / a.as_secs_f64(),
        c.as_secs_f64() / b.as_secs_f64()
    );
    if profile.is_some() {
        let d = median(loads);
        println!(
            "simulated whole-distribution load (depmod order + every module through the simulator): {}; ratio load/kmod depmod: {:.2}x",
            ms(d),
            d.as_secs_f64() / c.as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}
