//! The whole-distribution load: every module of a kernel's module tree, in the dependency
//! order depmod derives from the modules' own symbols, into one simulated kernel.
//!
//! Each module goes in as `insmod` would give it to that kernel: a plain `.ko` through
//! `finit_module(fd, "", 0)`, a `.ko.xz` through `finit_module(fd, "", MODULE_INIT_COMPRESSED_FILE)`
//! (the kernel decompresses it). The result says, per module, what the kernel answered and
//! which log lines it printed; every `__versions` CRC is checked on the way, against the
//! profile's `Module.symvers` exports and the exports of the modules loaded before.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sim::kernel::{Kernel, MODULE_INIT_COMPRESSED_FILE, Settings};
use sim::profile::Profile;

use crate::deps::{DepGraph, Depmod, DepsError};
use crate::errno::Errno;

/// What happened to one module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The module's name (from its file name, as kmod makes it).
    pub name: String,
    /// Its path relative to the module directory.
    pub rel_path: String,
    /// `None` if it loaded, else the errno.
    pub errno: Option<Errno>,
    /// The load step that failed.
    pub step: Option<&'static str>,
    /// The kernel log lines the load printed.
    pub log: Vec<String>,
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The profile's name.
    pub kernel: String,
    /// Every module, in load order.
    pub outcomes: Vec<Outcome>,
    /// Modules depmod found in a dependency cycle (loaded in file order).
    pub cycles: usize,
    /// Symbols no module and not vmlinux provides, as depmod saw them.
    pub unresolved: usize,
    /// Time to read the tree and order it.
    pub depmod_time: Duration,
    /// Time to load everything.
    pub load_time: Duration,
    /// `__versions` entries checked against an exporter (vmlinux or a loaded module).
    pub crcs_checked: usize,
}

impl Report {
    /// How many modules loaded.
    pub fn loaded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.errno.is_none()).count()
    }

    /// The modules that did not load.
    pub fn failed(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.errno.is_some())
    }
}

/// An error before any module was loaded.
#[derive(Debug, thiserror::Error)]
pub enum DistroError {
    /// The profile is unknown.
    #[error("profile: {0}")]
    Profile(#[from] sim::profile::ProfileError),
    /// The module tree could not be read.
    #[error("{0}")]
    Deps(#[from] DepsError),
    /// A module file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The module directory of `kernel` under an extracted root ([`sim::profile::modules_dir`]).
pub fn module_dir(root: &Path, profile: &Profile) -> PathBuf {
    sim::profile::modules_dir(root, profile.release())
}

/// Loads every module under `dir` into one fresh simulated kernel running `profile`, in
/// dependency order. The kernel gets enough memory for the whole distribution (the limit is a
/// simulation setting, not a property of the modules).
pub fn load_all(profile: &'static Profile, dir: &Path) -> Result<Report, DistroError> {
    let t0 = Instant::now();
    let graph: DepGraph = Depmod::new(dir).run()?;
    let depmod_time = t0.elapsed();
    let settings = Settings {
        memory_limit: 8 << 30,
        ..Settings::default()
    };
    let mut kernel = Kernel::with_settings(profile, settings);
    let t1 = Instant::now();
    let mut outcomes = Vec::with_capacity(graph.load_order().len());
    let mut crcs_checked = 0;
    for &i in graph.load_order() {
        let Some(m) = graph.modules().get(i) else {
            continue;
        };
        let bytes = std::fs::read(&m.path).map_err(|source| DistroError::Io {
            path: m.path.clone(),
            source,
        })?;
        let flags = if m.path.extension().is_some_and(|x| x == "xz") {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        let r = kernel.finit_module_bytes(bytes, Some(b""), flags);
        let log: Vec<String> = kernel.take_log().into_iter().map(|l| l.text).collect();
        if r.is_ok() {
            crcs_checked += m.needs.len();
        }
        outcomes.push(Outcome {
            name: m.name.clone(),
            rel_path: m.rel_path.clone(),
            errno: r.as_ref().err().map(|e| e.errno),
            step: r.err().map(|e| e.step),
            log,
        });
    }
    Ok(Report {
        kernel: profile.name().to_string(),
        outcomes,
        cycles: graph.cycles().iter().map(Vec::len).sum(),
        unresolved: graph.unresolved().len(),
        depmod_time,
        load_time: t1.elapsed(),
        crcs_checked,
    })
}
