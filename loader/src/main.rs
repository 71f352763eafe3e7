//! `modloader`: kmod-like module loading against the simulator or the real kernel.
//!
//! `modloader [--backend sim|kernel] [--kernel PROFILE|DIR] insmod|rmmod|lsmod ARGS...` runs
//! kmod's tool with kmod's own argument syntax. Invoked under the name `insmod`, `rmmod` or
//! `lsmod` (a symlink), the binary is that tool; the backend then comes from the environment:
//! `MODLOADER_BACKEND` (`sim`, the default, or `kernel`) and `MODLOADER_KERNEL` (a profile name
//! or a linux-headers directory, default `debian-6.1-amd64`).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use loader::cli::{Console, Machine};
use loader::kernel_backend::KernelBackend;
use loader::machine_dir::MachineDir;
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
    /// The kernel insmod, rmmod and lsmod talk to [default: sim].
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// For insmod, rmmod and lsmod on the simulator: a profile name (debian-6.1-amd64,
    /// debian-6.1-arm64, debian-6.12-amd64, debian-6.12-arm64) or a Debian linux-headers-*
    /// directory [default: debian-6.1-amd64].
    #[arg(long)]
    kernel: Option<String>,
    /// A simulated machine that lasts across commands: its state is kept in DIR (made, running
    /// --kernel, when missing or empty). For insmod, rmmod, lsmod, shell, explain and scenario
    /// run [env: MODSIM_MACHINE].
    #[arg(long, value_name = "DIR")]
    machine: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// `--machine DIR`, else `MODSIM_MACHINE`.
fn machine_dir_arg(cli: Option<PathBuf>) -> Option<PathBuf> {
    cli.or_else(|| {
        std::env::var_os("MODSIM_MACHINE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// The machine in `dir` (made running `kernel` when new), locked for this process.
fn open_machine(dir: &Path, kernel: Option<&str>) -> Result<(MachineDir, SimBackend), String> {
    let profile = match kernel {
        Some(k) => Some(sim_backend(k)?.kernel().profile_ref()),
        None => None,
    };
    let (md, k) = MachineDir::open(dir, profile).map_err(|e| e.to_string())?;
    Ok((md, SimBackend::from_kernel(k)))
}

/// Writes a machine directory's machine back; an error is one line and exit status 1.
fn save_machine(md: &MachineDir, m: &Machine, status: ExitCode) -> ExitCode {
    if let Machine::Sim(b) = m
        && let Err(e) = md.save(b.kernel())
    {
        eprintln!("modloader: {e}");
        return ExitCode::from(1);
    }
    status
}

#[derive(Subcommand)]
enum Command {
    /// Load a module into the simulator and narrate every step of the kernel's load path.
    Explain {
        /// The simulated kernel: a profile name or a linux-headers-* directory [default:
        /// debian-6.1-amd64, or the --machine's].
        #[arg(long)]
        kernel: Option<String>,
        /// Print the trace as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// finit_module flags (1: ignore modversions, 2: ignore vermagic).
        #[arg(long, default_value_t = 0)]
        flags: u32,
        /// The module file (.ko, .ko.xz, .ko.gz, .ko.zst).
        file: PathBuf,
        /// Parameters, `name=value` each, joined with spaces as insmod does.
        params: Vec<String>,
    },
    /// An interactive session on one kernel: insmod, rmmod, lsmod, dmesg, cat and ls of
    /// /proc/modules and /sys/module (reads commands from standard input when it is not a
    /// terminal). Takes the global --backend and --kernel.
    Shell,
    /// Run and compare scenario files (JSON Lines of module system calls).
    #[command(subcommand)]
    Scenario(ScenarioCmd),
    /// Compute module dependencies like kmod's depmod and print them (nothing is written).
    Depmod(DepmodArgs),
    /// Load a module at the section addresses a real boot gave it, with that boot's kernel
    /// symbol addresses, and write each live section's bytes (after relocation, the kernel's
    /// patches and the parameters) to OUT/<section>.bin.
    Image(ImageArgs),
    /// kmod's insmod: `insmod [-f] [-s] [-v] FILE [PARAM[=VALUE]...]` (`insmod -h` for help).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Insmod(ToolArgs),
    /// kmod's rmmod: `rmmod [-f] [-s] [-v] NAME...` (`rmmod -h` for help).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Rmmod(ToolArgs),
    /// kmod's lsmod: the loaded modules (on the simulator: those of this one process).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Lsmod(ToolArgs),
    /// Show what module files say about themselves, exactly as kmod's modinfo (its options).
    #[command(disable_help_flag = true)]
    Modinfo {
        /// kmod's modinfo arguments: [-F FIELD] [-0] [-a|-d|-l|-p|-n] [-m] [-b ROOT] [-k KVER]
        /// FILE|NAME...
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// A kmod tool's arguments, passed on as they are.
#[derive(clap::Args)]
struct ToolArgs {
    /// Options and arguments in kmod's syntax.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// The kmod tools `modloader` can be, by name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Insmod,
    Rmmod,
    Lsmod,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Insmod => "insmod",
            Tool::Rmmod => "rmmod",
            Tool::Lsmod => "lsmod",
        }
    }
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

#[derive(clap::Args)]
struct ImageArgs {
    /// The simulated kernel: a profile name or a linux-headers-* directory.
    #[arg(long, default_value = DEFAULT_PROFILE)]
    kernel: String,
    /// Section addresses, `{"<section>": "0x<address>", ...}` (the content of
    /// /sys/module/<m>/sections/).
    #[arg(long, value_name = "S.json")]
    sections: PathBuf,
    /// Addresses of the symbols the module imports (from the kernel or other modules) and of
    /// the kernel symbols the patches use (ftrace_caller, ftrace_nop_ops ...),
    /// `{"<symbol>": "0x<address>", ...}` (from /proc/kallsyms).
    #[arg(long, value_name = "Y.json")]
    symbols: PathBuf,
    /// The parameter string.
    #[arg(long, default_value = "")]
    params: String,
    /// x86: the return thunk the CPU needs (e.g. __x86_return_thunk, srso_return_thunk);
    /// without it, return thunk jumps become `ret` as on a CPU that needs none.
    #[arg(long, value_name = "SYMBOL")]
    return_thunk: Option<String>,
    /// The kernel command line the real boot had: the options the simulator understands
    /// (spectre_v2=, nospectre_v2, mitigations=off, ...) change the machine-dependent patches.
    #[arg(long, default_value = "", value_name = "ARGS")]
    cmdline: String,
    /// x86: CPUs the machine booted with; with one (QEMU's -smp 1) the kernel runs with its
    /// lock prefixes patched out, and the module's too.
    #[arg(long, default_value_t = 1, value_name = "N")]
    cpus: u32,
    /// The directory to write <section>.bin files to (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// The module file (.ko, .ko.xz, .ko.gz, .ko.zst).
    file: PathBuf,
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
        /// debian-6.12-amd64, debian-6.12-arm64) or a Debian linux-headers-* directory
        /// [default: debian-6.1-amd64, or the --machine's].
        #[arg(long)]
        kernel: Option<String>,
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
    if kernel == "self" {
        return Err("--kernel self derives the kernel from the module being loaded: use it with insmod or explain".into());
    }
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
        "unknown kernel '{kernel}': give one of {}, a linux-headers-* directory, or self",
        Profile::names().join(", ")
    ))
}

/// `--kernel self`: a simulated kernel made from the module `file` itself (its architecture,
/// vermagic and the CRCs it expects), so that it loads with no kernel data.
fn self_backend(file: &Path) -> Result<SimBackend, String> {
    let m = loader::file::ModuleFile::open(file).map_err(|e| e.to_string())?;
    Profile::permissive_for_module(m.data())
        .map(SimBackend::new)
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// A simulated kernel for `kernel`, or for `self` one made from `file`.
fn sim_backend_for(kernel: &str, file: Option<&Path>) -> Result<SimBackend, String> {
    match (kernel, file) {
        ("self", Some(f)) => self_backend(f),
        _ => sim_backend(kernel),
    }
}

/// `modloader explain`, on a fresh kernel or on a machine directory's (which it does not
/// change).
fn explain(
    kernel: &str,
    machine: Option<SimBackend>,
    json: bool,
    flags: u32,
    file: &Path,
    params: &[String],
) -> ExitCode {
    let backend = match machine.map_or_else(|| sim_backend_for(kernel, Some(file)), Ok) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("modloader: {e}");
            return ExitCode::from(2);
        }
    };
    let k = backend.kernel().clone();
    let e = match loader::explain::explain_on(k, file, &params.join(" "), flags) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("modloader: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let r = if json {
        serde_json::to_writer_pretty(&mut out, &e)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        loader::explain::narrate(&e, &mut out)
    };
    if let Err(err) = r
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("modloader: {err}");
    }
    if e.errno.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The kernel the tools use: the running one, or a simulated one (an unknown profile is
/// reported by the tool, after its arguments).
fn machine(kind: BackendKind, kernel: &str) -> Machine {
    match kind {
        BackendKind::Kernel => Machine::Kernel(KernelBackend::new()),
        BackendKind::Sim => match sim_backend(kernel) {
            Ok(b) => Machine::Sim(Box::new(b)),
            Err(e) => Machine::Unavailable(e),
        },
    }
}

/// Runs a kmod tool with its arguments on stdout and stderr.
fn run_tool(tool: Tool, args: &[OsString], machine: &mut Machine) -> ExitCode {
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let mut con = Console::new(tool.name(), &mut out, &mut err);
    let status = match tool {
        Tool::Insmod => loader::cli::insmod::run(args, machine, &mut con),
        Tool::Rmmod => loader::cli::rmmod::run(args, machine, &mut con),
        Tool::Lsmod => loader::cli::lsmod::run(args, machine, &mut con),
    };
    ExitCode::from(status)
}

/// Multi-call mode: the binary invoked as `insmod`, `rmmod`, `lsmod` or `modinfo`; `None` for
/// any other name.
fn multi_call(argv0: &OsString, rest: &[OsString]) -> Option<ExitCode> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    let tool = match name {
        "insmod" => Tool::Insmod,
        "rmmod" => Tool::Rmmod,
        "lsmod" => Tool::Lsmod,
        // modinfo reads files only: no kernel, no backend.
        "modinfo" => {
            return Some(loader::cli::modinfo::main(
                std::iter::once(argv0.clone()).chain(rest.iter().cloned()),
            ));
        }
        _ => return None,
    };
    let kind = match std::env::var("MODLOADER_BACKEND").as_deref() {
        Err(_) | Ok("sim") => BackendKind::Sim,
        Ok("kernel") => BackendKind::Kernel,
        Ok(other) => {
            eprintln!(
                "{}: ERROR: MODLOADER_BACKEND={other}: give sim or kernel",
                tool.name()
            );
            return Some(ExitCode::from(1));
        }
    };
    if let Some(dir) = machine_dir_arg(None) {
        if kind == BackendKind::Kernel {
            eprintln!(
                "{}: ERROR: MODSIM_MACHINE is a simulated machine: not with MODLOADER_BACKEND=kernel",
                tool.name()
            );
            return Some(ExitCode::from(1));
        }
        let kernel = std::env::var("MODLOADER_KERNEL").ok();
        let (md, b) = match open_machine(&dir, kernel.as_deref()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{}: ERROR: {e}", tool.name());
                return Some(ExitCode::from(1));
            }
        };
        let mut m = Machine::Sim(Box::new(b));
        let status = run_tool(tool, rest, &mut m);
        return Some(save_machine(&md, &m, status));
    }
    let kernel = std::env::var("MODLOADER_KERNEL").unwrap_or_else(|_| DEFAULT_PROFILE.into());
    let mut m = machine(kind, &kernel);
    Some(run_tool(tool, rest, &mut m))
}

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let Some((argv0, rest)) = argv.split_first()
        && let Some(code) = multi_call(argv0, rest)
    {
        return code;
    }
    let mut cli = Cli::parse_from(argv);
    let machine_dir = machine_dir_arg(cli.machine.take());
    if machine_dir.is_some() && cli.backend == Some(BackendKind::Kernel) {
        eprintln!(
            "modloader: --machine is a simulated machine; it does not go with --backend kernel"
        );
        return ExitCode::from(2);
    }
    // The machine directory's machine, locked until this process ends.
    let mut held: Option<MachineDir> = None;
    let mut opened: Option<SimBackend> = None;
    if let Some(dir) = &machine_dir
        && matches!(
            cli.command,
            Command::Shell
                | Command::Insmod(_)
                | Command::Rmmod(_)
                | Command::Lsmod(_)
                | Command::Explain { .. }
                | Command::Scenario(ScenarioCmd::Run { .. })
        )
    {
        let kernel = match &cli.command {
            Command::Explain { kernel, .. } => kernel.clone(),
            Command::Scenario(ScenarioCmd::Run { kernel, .. }) => kernel.clone(),
            _ => cli.kernel.take(),
        };
        if kernel.as_deref() == Some("self") {
            eprintln!(
                "modloader: --kernel self makes a kernel for one module; it does not go with --machine"
            );
            return ExitCode::from(2);
        }
        match open_machine(dir, kernel.as_deref()) {
            Ok((md, b)) => {
                held = Some(md);
                opened = Some(b);
            }
            Err(e) => {
                eprintln!("modloader: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if matches!(cli.command, Command::Shell) {
        let kind = cli.backend.unwrap_or(BackendKind::Sim);
        let kernel = cli.kernel.clone().unwrap_or_else(|| DEFAULT_PROFILE.into());
        let mut m = match opened.take() {
            Some(b) => Machine::Sim(Box::new(b)),
            None => machine(kind, &kernel),
        };
        if let Machine::Unavailable(e) = &m {
            eprintln!("modloader: {e}");
            return ExitCode::from(2);
        }
        let name = match &m {
            Machine::Sim(b) => b.kernel().profile().name().to_string(),
            _ => kernel,
        };
        let status = run_shell(&mut m, kind, &name);
        return match &held {
            Some(md) => save_machine(md, &m, status),
            None => status,
        };
    }
    let tool_options = cli.backend.is_some() || cli.kernel.is_some();
    let tool = match &cli.command {
        Command::Insmod(a) => Some((Tool::Insmod, &a.args)),
        Command::Rmmod(a) => Some((Tool::Rmmod, &a.args)),
        Command::Lsmod(a) => Some((Tool::Lsmod, &a.args)),
        _ => None,
    };
    if let (Some((tool, args)), Some(b)) = (tool, opened.take()) {
        let mut m = Machine::Sim(Box::new(b));
        let status = run_tool(tool, args, &mut m);
        return match (&held, tool) {
            (Some(md), Tool::Insmod | Tool::Rmmod) => save_machine(md, &m, status),
            _ => status,
        };
    }
    run_command(cli, tool_options, opened, held.as_ref())
}

/// `modloader shell` on `m`.
fn run_shell(m: &mut Machine, kind: BackendKind, kernel: &str) -> ExitCode {
    {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            println!(
                "modloader shell on {} (help for commands, exit or ^D to leave)",
                if kind == BackendKind::Sim {
                    kernel
                } else {
                    "the running kernel"
                }
            );
            if let Err(e) = loader::shell::run_interactive(m, "modloader> ") {
                eprintln!("modloader: {e}");
                return ExitCode::from(1);
            }
        } else {
            let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
            loader::shell::run_lines(m, &mut stdin.lock(), &mut stdout.lock(), &mut stderr.lock());
        }
        ExitCode::SUCCESS
    }
}

/// Every subcommand but shell, and the tools on a machine directory.
fn run_command(
    cli: Cli,
    tool_options: bool,
    opened: Option<SimBackend>,
    held: Option<&MachineDir>,
) -> ExitCode {
    let tool = match &cli.command {
        Command::Insmod(a) => Some((Tool::Insmod, &a.args)),
        Command::Rmmod(a) => Some((Tool::Rmmod, &a.args)),
        Command::Lsmod(a) => Some((Tool::Lsmod, &a.args)),
        _ => None,
    };
    if let Some((tool, args)) = tool {
        let kind = cli.backend.unwrap_or(BackendKind::Sim);
        if kind == BackendKind::Kernel && cli.kernel.is_some() {
            eprintln!(
                "modloader: --kernel names a simulated kernel; it does not go with --backend kernel"
            );
            return ExitCode::from(2);
        }
        let kernel = cli.kernel.as_deref().unwrap_or(DEFAULT_PROFILE);
        let mut m = if kind == BackendKind::Sim && kernel == "self" && tool == Tool::Insmod {
            // The module file is insmod's first operand.
            let file = args
                .iter()
                .find(|a| !a.to_string_lossy().starts_with('-'))
                .map(PathBuf::from);
            match sim_backend_for(kernel, file.as_deref()) {
                Ok(b) => Machine::Sim(Box::new(b)),
                Err(e) => Machine::Unavailable(e),
            }
        } else {
            machine(kind, kernel)
        };
        return run_tool(tool, args, &mut m);
    }
    if tool_options {
        eprintln!(
            "modloader: --backend and --kernel before the subcommand are for insmod, rmmod and \
             lsmod (scenario run takes its own)"
        );
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Explain {
            kernel,
            json,
            flags,
            file,
            params,
        } => explain(
            kernel.as_deref().unwrap_or(DEFAULT_PROFILE),
            opened,
            json,
            flags,
            &file,
            &params,
        ),
        Command::Scenario(ScenarioCmd::Run {
            backend,
            kernel,
            modules_dir,
            file,
        }) => {
            let m = opened.map(|b| Machine::Sim(Box::new(b)));
            let (status, m) = run(
                backend,
                kernel.as_deref().unwrap_or(DEFAULT_PROFILE),
                m,
                modules_dir.as_deref(),
                &file,
            );
            match (held, m) {
                (Some(md), Some(m)) => save_machine(md, &m, status),
                _ => status,
            }
        }
        Command::Scenario(ScenarioCmd::Compare {
            no_params,
            expected,
            actual,
        }) => compare_paths(&expected, &actual, CompareOptions { params: !no_params }),
        Command::Depmod(args) => depmod(&args),
        Command::Image(args) => image(&args),
        Command::Modinfo { args } => {
            loader::cli::modinfo::main(std::iter::once("modinfo".into()).chain(args))
        }
        // Handled above.
        Command::Insmod(_) | Command::Rmmod(_) | Command::Lsmod(_) | Command::Shell => {
            ExitCode::SUCCESS
        }
    }
}

/// The largest address map (`image --sections/--symbols`) or `Module.symvers` (`depmod -E`)
/// read: Debian's Module.symvers is about 2 MB.
const MAX_TEXT_FILE: u64 = 64 << 20;

/// A text file a command is given, read bounded ([`MAX_TEXT_FILE`]); the error names the file.
fn read_text(p: &Path) -> Result<String, String> {
    let bytes = loader::file::read_limited(p, MAX_TEXT_FILE).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| format!("{}: {e}", p.display()))
}

fn image(args: &ImageArgs) -> ExitCode {
    use loader::image::{live_sections, load_placed, parse_address_map};
    let read_map = |p: &Path| -> Result<indexmap::IndexMap<String, u64>, String> {
        let text = read_text(p)?;
        parse_address_map(&p.display().to_string(), &text).map_err(|e| e.to_string())
    };
    let run = || -> Result<(), String> {
        let sections = read_map(&args.sections)?;
        let symbols = read_map(&args.symbols)?;
        let mut backend = sim_backend(&args.kernel)?;
        let file = loader::file::ModuleFile::open(&args.file).map_err(|e| e.to_string())?;
        let kernel = backend.kernel_mut();
        kernel.settings_mut().x86_return_thunk = args.return_thunk.clone();
        kernel.settings_mut().uniprocessor = args.cpus <= 1;
        kernel.settings_mut().apply_cmdline(&args.cmdline);
        let name = load_placed(kernel, file.data(), &args.params, sections, symbols)
            .map_err(|e| format!("{}: {e}", args.file.display()))?;
        if let Some(m) = kernel.module(&name) {
            for w in &m.placement_mismatches {
                eprintln!("modloader: warning: {name}: {w}");
            }
        }
        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
        for (sec, addr, bytes) in live_sections(kernel, &name) {
            if sec.contains('/') || sec == "." || sec == ".." {
                return Err(format!("section name {sec:?} cannot be a file name"));
            }
            let path = args.out.join(format!("{sec}.bin"));
            std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{sec}\t{addr:#x}\t{}\t{}", bytes.len(), path.display());
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modloader: {e}");
            ExitCode::from(1)
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
        match read_text(p) {
            Ok(text) => d.options.kernel = KernelSymbols::from_symvers(&text),
            Err(e) => {
                eprintln!("modloader: {e}");
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

/// `scenario run`, on `machine` when given (a machine directory's), which it hands back.
fn run(
    kind: BackendKind,
    kernel: &str,
    machine_given: Option<Machine>,
    modules_dir: Option<&Path>,
    file: &Path,
) -> (ExitCode, Option<Machine>) {
    let scenario = match Scenario::load(file, modules_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modloader: {e}");
            return (ExitCode::from(1), machine_given);
        }
    };
    let mut m = machine_given.unwrap_or_else(|| machine(kind, kernel));
    if let Machine::Unavailable(e) = &m {
        eprintln!("modloader: {e}");
        return (ExitCode::from(2), None);
    }
    let status = run_scenario(&mut m, &scenario);
    (status, Some(m))
}

fn run_scenario(m: &mut Machine, scenario: &Scenario) -> ExitCode {
    let stdout = std::io::stdout();
    let mut failed = None;
    let r = scenario::run_machine(m, scenario, |r| {
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
                // The error names the file.
                eprintln!("modloader: {x}");
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
