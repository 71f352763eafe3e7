//! depmod's work: from a set of module files, which module provides which symbol, what each
//! module depends on, an order to load them in, and the `modules.dep` text.
//!
//! The rules are kmod's (`tools/depmod.c`, kmod 30), so that the result can be compared with
//! what kmod's `depmod` writes:
//!
//! - A module's *needs* are its undefined symbols, in symbol table order, then the `__versions`
//!   entries that name no undefined symbol (`module_layout`). A need that another module exports
//!   makes that module a dependency; weak needs count too, as in kmod (the kernel binds a weak
//!   symbol when its provider is loaded), unless [`Options::weak_dependencies`] is off.
//! - When several modules export a symbol, the last one in module order provides it (kmod's
//!   symbol hash keeps the last entry); every such symbol is listed in
//!   [`DepGraph::duplicates`]. A module's exports also override vmlinux's.
//! - Symbols of vmlinux ([`KernelSymbols::Known`]) create no dependency. Only when they are
//!   known is a need that nobody provides reported as unresolved, as `depmod -e -E` does.
//! - Modules are ordered by `modules.order` (unlisted ones after, by path); dependencies in a
//!   `modules.dep` line are ordered by kmod's topological sort, users before what they use.
//!
//! Unlike kmod, a dependency cycle is no failure: it is reported in [`DepGraph::cycles`] and
//! the modules on it still get an order and their `modules.dep` lines.
//!
//! Where this reads exports differently from kmod: kmod takes a module's exports from its
//! `__crc_<name>` symbols (or, without any, from every string of `__ksymtab_strings`); this
//! takes them from the `__ksymtab*` entries themselves (see [`crate::modinfo`]), which is what
//! the kernel exports.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::file::ModuleFile;
use crate::modinfo::{self, ModuleInfo, UndefinedSymbol};

/// The file name endings of module files depmod looks at.
pub const MODULE_EXTENSIONS: [&str; 4] = [".ko", ".ko.gz", ".ko.xz", ".ko.zst"];

/// A failure to scan a module directory.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// A directory or file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A directory nests deeper than [`MAX_DEPTH`] (a symlink loop, most likely).
    #[error("{}: directories nest too deep", path.display())]
    TooDeep {
        /// The directory.
        path: PathBuf,
    },
}

/// How deep [`scan`] descends.
pub const MAX_DEPTH: usize = 64;

/// A module as depmod sees it: where it is, its name, what it exports and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSymbols {
    /// The file.
    pub path: PathBuf,
    /// The path as `modules.dep` writes it: relative to the module directory when inside it,
    /// else as given.
    pub rel_path: String,
    /// The module name from the file name, as kmod makes it: up to the first `.`, with `-` as
    /// `_`.
    pub name: String,
    /// The exported symbol names (see [`crate::modinfo::ModuleInfo::exports`]).
    pub exports: Vec<String>,
    /// The needed symbols: undefined symbols, then `__versions` entries naming none of them.
    pub needs: Vec<UndefinedSymbol>,
    /// Why the module could not be read, if it could not (then it exports and needs nothing).
    pub error: Option<String>,
}

impl ModuleSymbols {
    /// Reads the module file at `path`; `base` is the module directory `rel_path` is relative
    /// to. Never fails: an unreadable module has no symbols and says why in
    /// [`ModuleSymbols::error`].
    pub fn read(path: &Path, base: &Path) -> ModuleSymbols {
        let info = ModuleFile::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| modinfo::read(f.data()).map_err(|e| format!("{}: {e}", path.display())));
        match info {
            Ok(info) => ModuleSymbols::from_info(path, base, &info),
            Err(e) => ModuleSymbols::unreadable(path, base, e),
        }
    }

    /// The module at `path` (`base` as for [`ModuleSymbols::read`]) from what
    /// [`modinfo::read`] found in it.
    pub fn from_info(path: &Path, base: &Path, info: &ModuleInfo) -> ModuleSymbols {
        let undefined: HashSet<&str> = info.undefined.iter().map(|u| u.name.as_str()).collect();
        let mut needs = info.undefined.clone();
        needs.extend(
            info.versions
                .iter()
                .filter(|v| !undefined.contains(v.name.as_str()))
                .map(|v| UndefinedSymbol {
                    name: v.name.clone(),
                    weak: false,
                }),
        );
        ModuleSymbols {
            path: path.to_path_buf(),
            rel_path: rel_path(path, base),
            name: module_name(path),
            exports: info.exports.iter().map(|e| e.name.clone()).collect(),
            needs,
            error: None,
        }
    }

    /// A module that could not be read, and why: it exports and needs nothing.
    pub fn unreadable(path: &Path, base: &Path, error: String) -> ModuleSymbols {
        ModuleSymbols {
            path: path.to_path_buf(),
            rel_path: rel_path(path, base),
            name: module_name(path),
            exports: Vec::new(),
            needs: Vec::new(),
            error: Some(error),
        }
    }
}

/// The module name kmod derives from a path: the file name up to its first `.`, `-` as `_`.
pub fn module_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    file.split('.').next().unwrap_or_default().replace('-', "_")
}

/// `path` relative to `base` if it is inside it, else `path` as it is.
fn rel_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The path without its compression suffix (`x.ko.xz` → `x.ko`), as `modules.order` names it.
fn uncompressed(rel: &str) -> &str {
    for ext in [".gz", ".xz", ".zst"] {
        if let Some(s) = rel.strip_suffix(ext).filter(|s| s.ends_with(".ko")) {
            return s;
        }
    }
    rel
}

/// The module files under `dir`, as depmod finds them: recursively, skipping `build` and
/// `source`, every file ending in one of [`MODULE_EXTENSIONS`], sorted by path. Of several
/// files with the same module name, one under `updates/` wins, else the first by path.
///
/// Fails when a directory cannot be read.
pub fn scan(dir: &Path) -> Result<Vec<PathBuf>, DepsError> {
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(DepsError::TooDeep { path: d });
        }
        let io = |source| DepsError::Io {
            path: d.clone(),
            source,
        };
        for e in std::fs::read_dir(&d).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let p = e.path();
            // Like depmod, follow symlinks: stat, not lstat.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if depth == 0 && (name == "build" || name == "source") {
                    continue;
                }
                stack.push((p, depth + 1));
            } else if meta.is_file()
                && MODULE_EXTENSIONS
                    .iter()
                    .any(|x| name.len() > x.len() && name.ends_with(x))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut chosen: HashMap<String, usize> = HashMap::new();
    let mut keep = vec![true; files.len()];
    for (i, f) in files.iter().enumerate() {
        let name = module_name(f);
        let in_updates = f.strip_prefix(dir).is_ok_and(|r| r.starts_with("updates"));
        match chosen.get(&name) {
            None => {
                chosen.insert(name, i);
            }
            Some(&j) => {
                let j_updates = files
                    .get(j)
                    .and_then(|p| p.strip_prefix(dir).ok())
                    .is_some_and(|r| r.starts_with("updates"));
                if in_updates && !j_updates {
                    if let Some(k) = keep.get_mut(j) {
                        *k = false;
                    }
                    chosen.insert(name, i);
                } else if let Some(k) = keep.get_mut(i) {
                    *k = false;
                }
            }
        }
    }
    let mut keep = keep.into_iter();
    files.retain(|_| keep.next().unwrap_or(false));
    Ok(files)
}

/// Reads the modules at `paths` (relative paths computed against `base`) on `threads` threads
/// (at least one), keeping the order of `paths`.
pub fn read_modules(paths: &[PathBuf], base: &Path, threads: usize) -> Vec<ModuleSymbols> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<ModuleSymbols>>> = Mutex::new(vec![None; paths.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    done.push((i, ModuleSymbols::read(p, base)));
                }
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                for (i, m) in done {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(m);
                    }
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Puts modules in depmod's order: those listed in `modules.order` (text) in its order, then
/// the others by relative path.
pub fn sort_by_modules_order(modules: &mut [ModuleSymbols], modules_order: &str) {
    let mut rank: HashMap<&str, usize> = HashMap::new();
    for (i, line) in modules_order.lines().enumerate() {
        rank.entry(line).or_insert(i);
    }
    modules.sort_by_cached_key(|m| {
        let r = rank
            .get(uncompressed(&m.rel_path))
            .copied()
            .unwrap_or(usize::MAX);
        (r, m.rel_path.clone())
    });
}

/// What is known of the symbols vmlinux exports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KernelSymbols {
    /// Nothing: no need is reported as unresolved (plain `depmod`).
    #[default]
    Unknown,
    /// These names (`depmod -E Module.symvers` or a profile's export table).
    Known(HashSet<String>),
}

impl KernelSymbols {
    /// The names, plus the ones kmod's depmod always counts as the kernel's (`__this_module`,
    /// `_GLOBAL_OFFSET_TABLE_`, `TOC.`).
    pub fn from_names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> KernelSymbols {
        let mut set: HashSet<String> = names.into_iter().map(Into::into).collect();
        for fake in ["__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."] {
            set.insert(fake.to_owned());
        }
        KernelSymbols::Known(set)
    }

    /// The vmlinux symbols of a `Module.symvers` text (`crc<TAB>symbol<TAB>vmlinux<TAB>...`
    /// lines; lines of other modules are skipped, as kmod does).
    pub fn from_symvers(text: &str) -> KernelSymbols {
        KernelSymbols::from_names(text.lines().filter_map(|l| {
            let mut f = l.split(['\t', ' ']).filter(|s| !s.is_empty());
            let (_crc, sym, whence) = (f.next()?, f.next()?, f.next()?);
            (whence == "vmlinux").then_some(sym)
        }))
    }

    /// The export table of a kernel profile.
    pub fn from_profile(profile: &sim::profile::Profile) -> KernelSymbols {
        KernelSymbols::from_names(profile.exports().keys().cloned())
    }

    fn contains(&self, name: &str) -> bool {
        match self {
            KernelSymbols::Unknown => false,
            KernelSymbols::Known(s) => s.contains(name),
        }
    }
}

/// Choices for [`DepGraph::build`].
#[derive(Clone, Debug)]
pub struct Options {
    /// vmlinux's symbols.
    pub kernel: KernelSymbols,
    /// Whether a weak need makes its provider a dependency (kmod: yes).
    pub weak_dependencies: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kernel: KernelSymbols::Unknown,
            weak_dependencies: true,
        }
    }
}

/// A symbol exported by more than one module (or by a module and vmlinux).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateExport {
    /// The symbol.
    pub symbol: String,
    /// The exporting modules (indices into [`DepGraph::modules`]) in module order; the last one
    /// provides the symbol.
    pub modules: Vec<usize>,
    /// vmlinux exports it too.
    pub in_kernel: bool,
}

/// A direct dependency: the module depended on, and the first need that made it one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The index of the module depended on.
    pub module: usize,
    /// The first symbol that module provides to the depending one.
    pub symbol: String,
}

/// A need nobody provides (reported only when vmlinux's symbols are known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The needing module's index.
    pub module: usize,
    /// The symbol.
    pub symbol: String,
}

/// The dependency graph of a set of modules.
#[derive(Clone, Debug)]
pub struct DepGraph {
    modules: Vec<ModuleSymbols>,
    providers: HashMap<String, usize>,
    duplicates: Vec<DuplicateExport>,
    deps: Vec<Vec<Dependency>>,
    unresolved: Vec<Unresolved>,
    /// kmod's `dep_sort_idx`: position in a topological order with users before their
    /// dependencies.
    sort_idx: Vec<usize>,
    load_order: Vec<usize>,
    cycles: Vec<Vec<usize>>,
}

impl DepGraph {
    /// Computes the graph of `modules`, which are in depmod's order (see
    /// [`sort_by_modules_order`]).
    pub fn build(modules: Vec<ModuleSymbols>, opts: &Options) -> DepGraph {
        let n = modules.len();
        // Symbol → provider, last one wins; and who else exports it.
        let mut providers: HashMap<String, usize> = HashMap::new();
        let mut dup_map: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, m) in modules.iter().enumerate() {
            for e in &m.exports {
                if let Some(prev) = providers.insert(e.clone(), i).filter(|&p| p != i) {
                    let v = dup_map.entry(e.as_str()).or_insert_with(|| vec![prev]);
                    v.push(i);
                }
            }
        }
        let mut duplicates: Vec<DuplicateExport> = dup_map
            .into_iter()
            .map(|(s, mods)| DuplicateExport {
                symbol: s.to_owned(),
                modules: mods,
                in_kernel: opts.kernel.contains(s),
            })
            .collect();
        for (s, &i) in &providers {
            if opts.kernel.contains(s) && !duplicates.iter().any(|d| &d.symbol == s) {
                duplicates.push(DuplicateExport {
                    symbol: s.clone(),
                    modules: vec![i],
                    in_kernel: true,
                });
            }
        }
        duplicates.sort_by(|a, b| a.symbol.cmp(&b.symbol));

        // Direct dependencies, in the order their first need appears (kmod's append order).
        let mut deps: Vec<Vec<Dependency>> = Vec::with_capacity(n);
        let mut unresolved = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            let mut d: Vec<Dependency> = Vec::new();
            for need in &m.needs {
                if need.weak && !opts.weak_dependencies {
                    continue;
                }
                match providers.get(&need.name) {
                    Some(&p) if p != i => {
                        if !d.iter().any(|x| x.module == p) {
                            d.push(Dependency {
                                module: p,
                                symbol: need.name.clone(),
                            });
                        }
                    }
                    Some(_) => {}
                    None => {
                        if !need.weak
                            && matches!(opts.kernel, KernelSymbols::Known(_))
                            && !opts.kernel.contains(&need.name)
                        {
                            unresolved.push(Unresolved {
                                module: i,
                                symbol: need.name.clone(),
                            });
                        }
                    }
                }
            }
            deps.push(d);
        }

        let (sort_idx, cycles) = kmod_sort(&deps);
        let load_order = load_order(&deps);
        DepGraph {
            modules,
            providers,
            duplicates,
            deps,
            unresolved,
            sort_idx,
            load_order,
            cycles,
        }
    }

    /// The modules, in depmod's order.
    pub fn modules(&self) -> &[ModuleSymbols] {
        &self.modules
    }

    /// The index of the module with this name.
    pub fn find(&self, name: &str) -> Option<usize> {
        let name = name.replace('-', "_");
        self.modules.iter().position(|m| m.name == name)
    }

    /// The module that provides `symbol`, if a module does.
    pub fn provider(&self, symbol: &str) -> Option<usize> {
        self.providers.get(symbol).copied()
    }

    /// The symbol → providing module map.
    pub fn providers(&self) -> &HashMap<String, usize> {
        &self.providers
    }

    /// Symbols exported more than once, by name.
    pub fn duplicates(&self) -> &[DuplicateExport] {
        &self.duplicates
    }

    /// A module's direct dependencies, in the order of its first need of each.
    pub fn direct_dependencies(&self, module: usize) -> &[Dependency] {
        self.deps.get(module).map_or(&[], Vec::as_slice)
    }

    /// All of a module's dependencies, direct and indirect, as `modules.dep` lists them: each
    /// before the ones it uses (load them from the end).
    pub fn all_dependencies(&self, module: usize) -> Vec<usize> {
        let mut seen = vec![false; self.modules.len()];
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self
            .direct_dependencies(module)
            .iter()
            .map(|d| d.module)
            .collect();
        while let Some(m) = stack.pop() {
            match seen.get_mut(m) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            if m != module {
                out.push(m);
            }
            stack.extend(self.direct_dependencies(m).iter().map(|d| d.module));
        }
        out.sort_by_key(|&m| self.sort_idx.get(m).copied().unwrap_or(usize::MAX));
        out
    }

    /// Needs that neither a module nor vmlinux provides (empty when vmlinux's symbols are
    /// unknown), in module order.
    pub fn unresolved(&self) -> &[Unresolved] {
        &self.unresolved
    }

    /// The dependency cycles: each a set of modules (in module order) that depend on each
    /// other; empty when there are none.
    pub fn cycles(&self) -> &[Vec<usize>] {
        &self.cycles
    }

    /// Every module once, each after its dependencies: modules in module order, each preceded
    /// by its not yet listed dependencies (depth first). On a cycle, the module reached first
    /// comes after the others.
    pub fn load_order(&self) -> &[usize] {
        &self.load_order
    }

    /// The `modules.dep` text, as kmod's depmod writes it.
    pub fn modules_dep(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.modules.iter().enumerate() {
            out.push_str(&m.rel_path);
            out.push(':');
            if !self.direct_dependencies(i).is_empty() {
                for d in self.all_dependencies(i) {
                    if let Some(dm) = self.modules.get(d) {
                        out.push(' ');
                        out.push_str(&dm.rel_path);
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

/// kmod's `depmod_calculate_dependencies`: Kahn's algorithm with a stack, starting from the
/// modules nobody uses in module order, numbering users before their dependencies. Modules on
/// or below a cycle, which kmod cannot number, are numbered after the rest in reverse of
/// Tarjan's order (so still users first). Also returns the cycles (strongly connected
/// components with more than one module).
fn kmod_sort(deps: &[Vec<Dependency>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let n = deps.len();
    let mut users = vec![0usize; n];
    for d in deps {
        for x in d {
            if let Some(u) = users.get_mut(x.module) {
                *u += 1;
            }
        }
    }
    let mut roots: Vec<usize> = (0..n)
        .filter(|&i| users.get(i).is_some_and(|&u| u == 0))
        .collect();
    let mut sort_idx = vec![usize::MAX; n];
    let mut sorted = 0;
    while let Some(src) = roots.pop() {
        if let Some(s) = sort_idx.get_mut(src) {
            *s = sorted;
        }
        sorted += 1;
        for x in deps.get(src).map_or(&[][..], Vec::as_slice) {
            if let Some(u) = users.get_mut(x.module) {
                *u = u.saturating_sub(1);
                if *u == 0 {
                    roots.push(x.module);
                }
            }
        }
    }
    let mut cycles = Vec::new();
    if sorted < n {
        let left: Vec<bool> = sort_idx.iter().map(|&s| s == usize::MAX).collect();
        let sccs = tarjan(deps, &left);
        // Tarjan emits dependencies first; number users first.
        for scc in sccs.iter().rev() {
            for &m in scc {
                if let Some(s) = sort_idx.get_mut(m) {
                    *s = sorted;
                }
                sorted += 1;
            }
        }
        for mut scc in sccs {
            let self_loop = scc.len() == 1
                && scc
                    .first()
                    .is_some_and(|&m| deps.get(m).is_some_and(|d| d.iter().any(|x| x.module == m)));
            if scc.len() > 1 || self_loop {
                scc.sort_unstable();
                cycles.push(scc);
            }
        }
        cycles.sort();
    }
    (sort_idx, cycles)
}

/// Tarjan's strongly connected components of the subgraph of the nodes with `include` set,
/// iteratively; components come out dependencies first.
fn tarjan(deps: &[Vec<Dependency>], include: &[bool]) -> Vec<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let n = deps.len();
    let mut index = vec![NONE; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    let mut counter = 0;
    let edges = |v: usize| deps.get(v).map_or(&[][..], Vec::as_slice);
    let inc = |v: usize| include.get(v).copied().unwrap_or(false);
    for root in 0..n {
        if !inc(root) || index.get(root).is_some_and(|&i| i != NONE) {
            continue;
        }
        // (node, next edge to look at)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            if *ei == 0 && index.get(v) == Some(&NONE) {
                if let (Some(iv), Some(lv), Some(os)) =
                    (index.get_mut(v), low.get_mut(v), on_stack.get_mut(v))
                {
                    *iv = counter;
                    *lv = counter;
                    *os = true;
                }
                counter += 1;
                stack.push(v);
            }
            if let Some(e) = edges(v).get(*ei) {
                *ei += 1;
                let w = e.module;
                if !inc(w) {
                    continue;
                }
                match index.get(w) {
                    Some(&NONE) => call.push((w, 0)),
                    Some(&iw) if on_stack.get(w).copied().unwrap_or(false) => {
                        if let Some(lv) = low.get_mut(v) {
                            *lv = (*lv).min(iw);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            // v is finished.
            call.pop();
            let lv = low.get(v).copied().unwrap_or(0);
            if let Some(lp) = call.last().and_then(|&(parent, _)| low.get_mut(parent)) {
                *lp = (*lp).min(lv);
            }
            if Some(&lv) == index.get(v) {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    if let Some(os) = on_stack.get_mut(w) {
                        *os = false;
                    }
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
        }
    }
    out
}

/// Depth-first post-order over the modules in module order: each module after its
/// dependencies, each once.
fn load_order(deps: &[Vec<Dependency>]) -> Vec<usize> {
    let n = deps.len();
    let mut state = vec![0u8; n]; // 0 new, 1 in progress, 2 done
    let mut out = Vec::with_capacity(n);
    for root in 0..n {
        if state.get(root) != Some(&0) {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        if let Some(s) = state.get_mut(root) {
            *s = 1;
        }
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            if let Some(e) = deps.get(v).and_then(|d| d.get(*ei)) {
                *ei += 1;
                if let Some(s) = state.get_mut(e.module).filter(|s| **s == 0) {
                    *s = 1;
                    call.push((e.module, 0));
                }
                continue;
            }
            call.pop();
            if let Some(s) = state.get_mut(v) {
                *s = 2;
            }
            out.push(v);
        }
    }
    out
}

/// Everything needed to run depmod over one module directory.
#[derive(Clone, Debug)]
pub struct Depmod {
    /// The module directory (`<root>/lib/modules/<release>`).
    pub dir: PathBuf,
    /// How many threads read modules (at least one).
    pub threads: usize,
    /// Graph options.
    pub options: Options,
}

impl Depmod {
    /// depmod over `dir` with default options and one reading thread per core.
    pub fn new(dir: impl Into<PathBuf>) -> Depmod {
        Depmod {
            dir: dir.into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            options: Options::default(),
        }
    }

    /// Scans the directory, reads every module, orders them by `modules.order` (when there is
    /// one) and builds the graph.
    ///
    /// Fails only when the directory cannot be scanned or `modules.order` exists but cannot be
    /// read; unreadable modules are in the graph with their [`ModuleSymbols::error`].
    pub fn run(&self) -> Result<DepGraph, DepsError> {
        let paths = scan(&self.dir)?;
        let mut modules = read_modules(&paths, &self.dir, self.threads);
        let order_path = self.dir.join("modules.order");
        let order = match std::fs::read_to_string(&order_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(DepsError::Io {
                    path: order_path,
                    source,
                });
            }
        };
        sort_by_modules_order(&mut modules, &order);
        Ok(DepGraph::build(modules, &self.options))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn m(name: &str, exports: &[&str], needs: &[&str]) -> ModuleSymbols {
        ModuleSymbols {
            path: PathBuf::from(format!("/m/{name}.ko")),
            rel_path: format!("{name}.ko"),
            name: name.to_owned(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
            needs: needs
                .iter()
                .map(|s| UndefinedSymbol {
                    name: s.trim_start_matches('~').to_owned(),
                    weak: s.starts_with('~'),
                })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn names_like_kmod() {
        assert_eq!(
            module_name(Path::new("/a/snd-hda-intel.ko.xz")),
            "snd_hda_intel"
        );
        assert_eq!(module_name(Path::new("x.y.ko")), "x");
        assert_eq!(uncompressed("a/b-c.ko.zst"), "a/b-c.ko");
        assert_eq!(uncompressed("a/b.ko"), "a/b.ko");
    }

    #[test]
    fn chain_orders_dependencies_first() {
        // a uses b, b uses c; a also uses c directly.
        let g = DepGraph::build(
            vec![
                m("a", &[], &["fb", "fc", "printk"]),
                m("b", &["fb"], &["fc"]),
                m("c", &["fc"], &[]),
            ],
            &Options::default(),
        );
        assert_eq!(g.modules_dep(), "a.ko: b.ko c.ko\nb.ko: c.ko\nc.ko:\n");
        assert_eq!(g.load_order(), [2, 1, 0]);
        assert!(g.cycles().is_empty());
        assert!(
            g.unresolved().is_empty(),
            "unknown kernel symbols: nothing unresolved"
        );
    }

    #[test]
    fn last_exporter_wins_and_duplicates_are_noted() {
        let g = DepGraph::build(
            vec![
                m("a", &["s"], &[]),
                m("b", &["s"], &[]),
                m("u", &[], &["s"]),
            ],
            &Options::default(),
        );
        assert_eq!(g.provider("s"), Some(1));
        assert_eq!(g.duplicates().len(), 1);
        assert_eq!(g.duplicates()[0].modules, [0, 1]);
        assert_eq!(g.direct_dependencies(2)[0].module, 1);
    }

    #[test]
    fn weak_needs_follow_the_option() {
        let mods = vec![m("p", &["w"], &[]), m("u", &[], &["~w"])];
        let g = DepGraph::build(mods.clone(), &Options::default());
        assert_eq!(g.direct_dependencies(1).len(), 1);
        let g = DepGraph::build(
            mods,
            &Options {
                weak_dependencies: false,
                ..Options::default()
            },
        );
        assert!(g.direct_dependencies(1).is_empty());
    }

    #[test]
    fn unresolved_only_with_known_kernel_symbols() {
        let opts = Options {
            kernel: KernelSymbols::from_names(["printk"]),
            ..Options::default()
        };
        let g = DepGraph::build(
            vec![m(
                "a",
                &[],
                &["printk", "nope", "~weaknope", "__this_module"],
            )],
            &opts,
        );
        assert_eq!(
            g.unresolved(),
            [Unresolved {
                module: 0,
                symbol: "nope".into()
            }]
        );
    }

    #[test]
    fn cycles_are_reported_and_still_ordered() {
        // x uses a; a and b use each other; b uses c.
        let g = DepGraph::build(
            vec![
                m("x", &[], &["fa"]),
                m("a", &["fa"], &["fb"]),
                m("b", &["fb"], &["fa", "fc"]),
                m("c", &["fc"], &[]),
            ],
            &Options::default(),
        );
        assert_eq!(g.cycles(), [vec![1, 2]]);
        let order = g.load_order();
        assert_eq!(order.len(), 4);
        let pos = |i| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(3) < pos(2) && pos(2) < pos(0) && pos(1) < pos(0));
        // Every line is there, c after a and b.
        let dep = g.modules_dep();
        assert_eq!(dep.lines().count(), 4);
        assert!(dep.starts_with("x.ko: "), "{dep}");
        assert!(dep.lines().next().unwrap().ends_with("c.ko"), "{dep}");
    }

    #[test]
    fn kernel_symbols_from_symvers() {
        let k = KernelSymbols::from_symvers(
            "0x1\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x2\tusb_x\tdrivers/usb/core/usbcore\tEXPORT_SYMBOL_GPL\t\n",
        );
        assert!(k.contains("printk"));
        assert!(!k.contains("usb_x"));
        assert!(k.contains("__this_module"));
    }

    #[test]
    fn modules_order_sorts_and_unlisted_go_last() {
        let mut mods = vec![m("z", &[], &[]), m("b", &[], &[]), m("a", &[], &[])];
        mods[1].rel_path = "k/b.ko.xz".into();
        sort_by_modules_order(&mut mods, "k/b.ko\nz.ko\n");
        let names: Vec<&str> = mods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["b", "z", "a"]);
    }
}

/// Tests on the committed fixture modules (`tests/fixtures/ko/<kernel>/`).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod fixture_tests {
    use super::*;

    #[test]
    fn fixture_dependencies() {
        for k in sim::profile::Profile::names() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/ko")
                .join(k);
            let mut d = Depmod::new(&dir);
            d.options.kernel =
                KernelSymbols::from_profile(sim::profile::Profile::builtin(k).unwrap());
            let g = d.run().unwrap();
            let idx = |rel: &str| {
                g.modules()
                    .iter()
                    .position(|m| m.rel_path == rel)
                    .unwrap_or_else(|| panic!("{k}: no {rel}"))
            };
            let deps_of = |rel: &str| -> Vec<&str> {
                g.all_dependencies(idx(rel))
                    .into_iter()
                    .map(|i| g.modules()[i].rel_path.as_str())
                    .collect()
            };
            // Of mp_lib.ko, .ko.gz, .ko.xz, .ko.zst only the first by path is kept.
            assert_eq!(g.modules().iter().filter(|m| m.name == "mp_lib").count(), 1);
            assert_eq!(deps_of("mp_use_ns.ko"), ["mp_export.ko"], "{k}");
            assert_eq!(deps_of("mp_lib.ko"), Vec::<&str>::new(), "{k}");
            // mp_export_dup comes after mp_export (no modules.order: by path), so it provides
            // the symbol both export; the GPL one only mp_export has.
            assert_eq!(g.provider("mp_export_plain"), Some(idx("mp_export_dup.ko")));
            assert_eq!(g.provider("mp_export_gpl"), Some(idx("mp_export.ko")));
            assert_eq!(
                deps_of("mp_use.ko"),
                ["mp_export_dup.ko", "mp_export.ko"],
                "{k}"
            );
            let dup = g
                .duplicates()
                .iter()
                .find(|d| d.symbol == "mp_export_plain")
                .unwrap();
            assert_eq!(dup.modules, [idx("mp_export.ko"), idx("mp_export_dup.ko")]);
            assert!(!dup.in_kernel);
            // Only the undefined, non-weak symbol is unresolved (bad_otherarch is a module of
            // the other architecture, which needs that one's symbols).
            let unresolved: Vec<(&str, &str)> = g
                .unresolved()
                .iter()
                .map(|u| (g.modules()[u.module].rel_path.as_str(), u.symbol.as_str()))
                .filter(|(m, _)| *m != "bad_otherarch.ko")
                .collect();
            assert_eq!(unresolved, [("mp_unknown.ko", "mp_no_such_symbol")], "{k}");
            for bad in [
                "empty.ko",
                "bad_magic.ko",
                "bad_shoff.ko",
                "bad_truncated.ko",
            ] {
                assert!(g.modules()[idx(bad)].error.is_some(), "{k} {bad}");
            }
            assert!(g.cycles().is_empty());
            assert_eq!(g.load_order().len(), g.modules().len());
            let pos = |rel| g.load_order().iter().position(|&i| i == idx(rel)).unwrap();
            assert!(pos("mp_export.ko") < pos("mp_use.ko"));
            assert_eq!(g.modules_dep().lines().count(), g.modules().len());
        }
    }
}
