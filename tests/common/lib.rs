//! Shared helpers for the integration tests in `tests/`: where the fixtures, scenarios and
//! recordings live, and the list of target kernels.

use std::path::{Path, PathBuf};

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
