//! `modloader`: kmod-like module loading against the simulator or the real kernel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use loader::backend::Backend;
use loader::kernel_backend::KernelBackend;
use loader::scenario::compare::{CompareOptions, compare};
use loader::scenario::{self, Recording, Scenario};
use loader::sim_backend::SimBackend;
use sim::profile::Profile;

#[derive(Parser)]
#[command(
    name = "modloader",
    version,
    about = "Load Linux kernel modules into a simulated kernel or the real one"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run and compare scenario files (JSON Lines of module system calls).
    #[command(subcommand)]
    Scenario(ScenarioCmd),
    /// Compute module dependencies like kmod's depmod and print them (nothing is written).
    Depmod(DepmodArgs),
    /// Show what module files say about themselves, exactly as kmod's modinfo (its options).
    #[command(disable_help_flag = true)]
    Modinfo {
        /// kmod's modinfo arguments: [-F FIELD] [-0] [-a|-d|-l|-p|-n] [-m] [-b ROOT] [-k KVER]
        /// FILE|NAME...
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(clap::Args)]
struct DepmodArgs {
    /// Root directory the modules are under (`ROOT/lib/modules/VERSION`).
    #[arg(short = 'b', long = "basedir", default_value = "/")]
    basedir: PathBuf,
    /// vmlinux's exports from a Module.symvers file: needs nobody provides are then reported.
    #[arg(short = 'E', long = "symvers", conflicts_with = "profile")]
    symvers: Option<PathBuf>,
    /// vmlinux's exports from an embedded kernel profile (e.g. debian-6.1-amd64).
    #[arg(long)]
    profile: Option<String>,
    /// Print the load order (one module path a line, dependencies first) instead of
    /// modules.dep.
    #[arg(long)]
    order: bool,
    /// Do not count weak undefined symbols as dependencies (kmod does).
    #[arg(long)]
    no_weak: bool,
    /// The kernel release (`ROOT/lib/modules/VERSION`), or a path to a module directory.
    version: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// The simulated kernel (no root, no kernel needed).
    Sim,
    /// The running kernel, through the system calls (needs root).
    Kernel,
}

#[derive(Subcommand)]
enum ScenarioCmd {
    /// Run a scenario and print one JSON result per step.
    Run {
        /// Which kernel to run the scenario on.
        #[arg(long, value_enum, default_value = "sim")]
        backend: BackendKind,
        /// The simulated kernel: a profile name (debian-6.1-amd64, debian-6.1-arm64,
        /// debian-6.12-amd64, debian-6.12-arm64) or a Debian linux-headers-* directory.
        #[arg(long, default_value = DEFAULT_PROFILE)]
        kernel: String,
        /// Resolve relative module paths against this directory instead of the scenario's.
        #[arg(long)]
        modules_dir: Option<PathBuf>,
        /// The scenario file.
        file: PathBuf,
    },
    /// Compare recorded results (files, or directories of `<kernel>/<scenario>.jsonl`),
    /// ignoring what legitimately varies between boots.
    Compare {
        /// Leave parameter values out of the comparison.
        #[arg(long)]
        no_params: bool,
        /// The expected results (a file or a directory).
        expected: PathBuf,
        /// The actual results (a file or a directory).
        actual: PathBuf,
    },
}

/// The embedded profile the simulator runs when none is named.
const DEFAULT_PROFILE: &str = "debian-6.1-amd64";

/// A simulated kernel for `--kernel NAME|DIR`, or a message for a person.
fn sim_backend(kernel: &str) -> Result<SimBackend, String> {
    if Profile::names().contains(&kernel) {
        return SimBackend::builtin(kernel).map_err(|e| format!("profile {kernel}: {e}"));
    }
    let path = Path::new(kernel);
    if path.is_dir() {
        return Profile::from_headers_dir(path)
            .map(SimBackend::new)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    Err(format!(
        "unknown kernel '{kernel}': give one of {} or a linux-headers-* directory",
        Profile::names().join(", ")
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Scenario(ScenarioCmd::Run {
            backend,
            kernel,
            modules_dir,
            file,
        }) => run(backend, &kernel, modules_dir.as_deref(), &file),
        Command::Scenario(ScenarioCmd::Compare {
            no_params,
            expected,
            actual,
        }) => compare_paths(&expected, &actual, CompareOptions { params: !no_params }),
        Command::Depmod(args) => depmod(&args),
        Command::Modinfo { args } => {
            loader::cli::modinfo::main(std::iter::once("modinfo".into()).chain(args))
        }
    }
}

fn depmod(args: &DepmodArgs) -> ExitCode {
    use loader::deps::{Depmod, KernelSymbols};
    let dir = if args.version.contains('/') {
        PathBuf::from(&args.version)
    } else {
        args.basedir.join("lib/modules").join(&args.version)
    };
    let mut d = Depmod::new(dir);
    d.options.weak_dependencies = !args.no_weak;
    if let Some(p) = &args.symvers {
        match std::fs::read_to_string(p) {
            Ok(text) => d.options.kernel = KernelSymbols::from_symvers(&text),
            Err(e) => {
                eprintln!("modloader: {}: {e}", p.display());
                return ExitCode::from(1);
            }
        }
    } else if let Some(name) = &args.profile {
        match sim::profile::Profile::builtin(name) {
            Ok(p) => d.options.kernel = KernelSymbols::from_profile(p),
            Err(e) => {
                eprintln!("modloader: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let g = match d.run() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("modloader: {e}");
            return ExitCode::from(1);
        }
    };
    let mods = g.modules();
    let path = |i: usize| mods.get(i).map_or("?", |m| m.rel_path.as_str());
    for m in mods {
        if let Some(e) = &m.error {
            eprintln!("depmod: cannot read {e}");
        }
    }
    for dup in g.duplicates() {
        let who: Vec<&str> = dup.modules.iter().map(|&i| path(i)).collect();
        let kernel = if dup.in_kernel { "vmlinux and " } else { "" };
        eprintln!(
            "depmod: {} is exported by {kernel}{}",
            dup.symbol,
            who.join(", ")
        );
    }
    for u in g.unresolved() {
        eprintln!(
            "depmod: WARNING: {} needs unknown symbol {}",
            path(u.module),
            u.symbol
        );
    }
    for c in g.cycles() {
        let names: Vec<&str> = c
            .iter()
            .filter_map(|&i| mods.get(i))
            .map(|m| m.name.as_str())
            .collect();
        eprintln!("depmod: ERROR: cycle between {}", names.join(", "));
    }
    let out = if args.order {
        g.load_order()
            .iter()
            .map(|&i| format!("{}\n", path(i)))
            .collect()
    } else {
        g.modules_dep()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        // `modloader depmod ... | head`: the reader is gone, which is no error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("modloader: {e}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn run(kind: BackendKind, kernel: &str, modules_dir: Option<&Path>, file: &Path) -> ExitCode {
    let scenario = match Scenario::load(file, modules_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modloader: {e}");
            return ExitCode::from(1);
        }
    };
    let mut backend: Box<dyn Backend> = match kind {
        BackendKind::Kernel => Box::new(KernelBackend::new()),
        BackendKind::Sim => match sim_backend(kernel) {
            Ok(b) => Box::new(b),
            Err(e) => {
                eprintln!("modloader: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let stdout = std::io::stdout();
    let mut failed = None;
    let r = scenario::run(backend.as_mut(), &scenario, |r| {
        let mut out = stdout.lock();
        let line = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            failed.get_or_insert(e);
        }
    });
    if let Some(e) = failed {
        // A reader that went away (`| head`) is not an error worth a message.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("modloader: writing results: {e}");
        }
        return ExitCode::from(1);
    }
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modloader: {e}");
            ExitCode::from(1)
        }
    }
}

/// The `.jsonl` files under `dir`, as paths relative to it, sorted.
fn result_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                stack.push(r);
            } else if r.extension().is_some_and(|x| x == "jsonl") {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn compare_paths(expected: &Path, actual: &Path, opts: CompareOptions) -> ExitCode {
    let pairs: Vec<(PathBuf, PathBuf, String)> = if expected.is_dir() {
        match result_files(expected) {
            Ok(files) => files
                .into_iter()
                .map(|r| (expected.join(&r), actual.join(&r), r.display().to_string()))
                .collect(),
            Err(e) => {
                eprintln!("modloader: {}: {e}", expected.display());
                return ExitCode::from(1);
            }
        }
    } else {
        vec![(
            expected.to_path_buf(),
            actual.to_path_buf(),
            expected.display().to_string(),
        )]
    };
    let (mut agree, mut differ, mut files_bad) = (0usize, 0usize, 0usize);
    for (e, a, label) in &pairs {
        let (e, a) = match (Recording::load(e), Recording::load(a)) {
            (Ok(e), Ok(a)) => (e, a),
            (Err(x), _) | (_, Err(x)) => {
                println!("{label}: {x}");
                files_bad += 1;
                continue;
            }
        };
        let diffs = compare(&e.steps, &a.steps, opts);
        let bad: std::collections::BTreeSet<usize> = diffs.iter().map(|d| d.step).collect();
        differ += bad.len();
        agree += e.steps.len().saturating_sub(bad.len());
        if diffs.is_empty() {
            println!("{label}: {} steps agree", e.steps.len());
        } else {
            println!(
                "{label}: {} steps agree, {} differ",
                e.steps.len().saturating_sub(bad.len()),
                bad.len()
            );
            for d in diffs.iter().take(5) {
                println!("  {d}");
            }
        }
    }
    println!("total: {agree} agree, {differ} differ, {files_bad} files unreadable or missing");
    if differ == 0 && files_bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
