//! Shared helpers for the integration tests in `tests/`: where the fixtures, scenarios and
//! recordings live, and the list of target kernels.

use std::path::{Path, PathBuf};

use sim::kernel::ProfileRef;
use sim::profile::Profile;

/// The four target kernels (tests/lab/kernels.env).
pub const KERNELS: [&str; 4] = [
    "debian-6.1-amd64",
    "debian-6.1-arm64",
    "debian-6.12-amd64",
    "debian-6.12-arm64",
];

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/ko/<kernel>/`: the committed modules built for `kernel`.
pub fn fixtures(kernel: &str) -> PathBuf {
    repo().join("tests/fixtures/ko").join(kernel)
}

/// `tests/conformance/scenarios/`.
pub fn scenarios_dir() -> PathBuf {
    repo().join("tests/conformance/scenarios")
}

/// `tests/conformance/recorded/<kernel>/`.
pub fn recorded(kernel: &str) -> PathBuf {
    repo().join("tests/conformance/recorded").join(kernel)
}

/// The scenario files, sorted by name.
pub fn scenario_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
    v.sort();
    v
}

/// The file name of a path as a `String`.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether the scenario `file` is recorded on `kernel`: `tools*.jsonl` run modloader's own kmod
/// tools, which only the amd64 guests have.
pub fn recorded_on(kernel: &str, file: &Path) -> bool {
    !(file_name(file).starts_with("tools") && kernel.ends_with("arm64"))
}

/// A kernel the comparison tests (`conformance.rs`, `memdump.rs`) check the simulator against:
/// one of the four pinned kernels (embedded profile, committed fixtures, recordings and memory
/// captures), or one of a set that `tests/lab/current.sh` fetched, built fixtures for and
/// recorded in a scratch directory, named by `MODSIM_KERNEL_SET` (see [`targets`]).
#[derive(Debug, Clone)]
pub struct Target {
    /// `debian-6.1-amd64`, `trixie-6.12-arm64`, ...
    pub name: String,
    /// The kernel's `linux-headers-*` directory, whose profile the simulator runs (a kernel of
    /// a set); `None`: the embedded profile `name`.
    pub headers: Option<PathBuf>,
    /// The modules built for it (`<file>.ko` ...).
    pub fixtures: PathBuf,
    /// Its recorded scenario results (`<scenario>.jsonl`).
    pub recorded: PathBuf,
    /// The directory of its memory captures (`<name>.json`, `<name>+<suffix>.json`).
    pub memdump: PathBuf,
    /// Its `struct module` member table (`tests/lab/struct-module.sh`).
    pub struct_module: PathBuf,
}

impl Target {
    /// The profile the simulator runs for this kernel.
    pub fn profile(&self) -> ProfileRef {
        match &self.headers {
            Some(h) => Profile::from_headers_dir(h)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", self.name, h.display()))
                .into(),
            None => Profile::builtin(&self.name)
                .unwrap_or_else(|e| panic!("{}: {e}", self.name))
                .into(),
        }
    }
}

/// The directory of the pinned kernels' memory captures: `$MODSIM_MEMDUMP_DIR` (a fresh
/// recording: `tests/memdump/record.sh --out DIR`, as CI does), else the committed ones.
pub fn memdump_dir() -> PathBuf {
    std::env::var_os("MODSIM_MEMDUMP_DIR")
        .map_or_else(|| repo().join("tests/fixtures/memdump"), PathBuf::from)
}

/// The kernels to compare with: the four pinned ones, or, when `MODSIM_KERNEL_SET` names a
/// directory written by `tests/lab/current.sh`, the kernels of its `kernels.tsv` (first column)
/// with that directory's `headers/<k>` (a link to the headers), `ko/<k>/`, `recorded/<k>/`,
/// `memdump/` and `struct_module/<k>.tsv`. `MODSIM_MEMDUMP_DIR` overrides the captures'
/// directory in both cases.
pub fn targets() -> Vec<Target> {
    let memdump_override = std::env::var_os("MODSIM_MEMDUMP_DIR").map(PathBuf::from);
    let Some(set) = std::env::var_os("MODSIM_KERNEL_SET").map(PathBuf::from) else {
        return KERNELS
            .iter()
            .map(|k| Target {
                name: k.to_string(),
                headers: None,
                fixtures: fixtures(k),
                recorded: recorded(k),
                memdump: memdump_dir(),
                struct_module: repo()
                    .join("tests/fixtures/memdump/struct_module")
                    .join(format!("{k}.tsv")),
            })
            .collect();
    };
    let list = set.join("kernels.tsv");
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("MODSIM_KERNEL_SET: {}: {e}", list.display()));
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!names.is_empty(), "{}: no kernels", list.display());
    names
        .into_iter()
        .map(|k| Target {
            name: k.to_string(),
            headers: Some(set.join("headers").join(k)),
            fixtures: set.join("ko").join(k),
            recorded: set.join("recorded").join(k),
            memdump: memdump_override
                .clone()
                .unwrap_or_else(|| set.join("memdump")),
            struct_module: set.join("struct_module").join(format!("{k}.tsv")),
        })
        .collect()
}
