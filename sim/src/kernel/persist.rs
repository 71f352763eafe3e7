//! A machine's state as bytes, and back: what a simulated machine that lasts across processes
//! keeps between them (`loader`'s machine directories).
//!
//! The state is everything a later call can observe: the profile, the settings, the module
//! list (states, references, holders, parameters, sections), module memory with its bytes, the
//! kernel log (with its ring), the taints and the `pr_*_once` sites that already printed, the
//! given kernel symbol addresses. Not kept: init hooks (code, not data), the trace, and calls in
//! progress (a machine with one cannot be saved).
//!
//! Format: the magic `modsim-machine\n\0`, the format number (u32, little-endian), the CRC-32 of
//! the payload, then the payload in `postcard` (serde's compact binary encoding). A restore
//! checks all three, then the state's own invariants: a corrupt, foreign or newer file is an
//! error, never a panic and never a machine in a state no call sequence could reach.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Kernel, MODULE_NAME_LEN, MODULE_REF_BASE, Module, ModuleState, ProfileRef, Settings};
use crate::log::KernelLog;
use crate::memory::Memory;
use crate::profile::Profile;
use crate::taint::TaintState;

/// The first bytes of a saved machine.
pub const MAGIC: &[u8; 16] = b"modsim-machine\n\0";
/// The format this build writes and reads.
pub const FORMAT: u32 = 2;

/// Why a machine could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Not a saved machine (no magic).
    #[error("not a modsim machine state (no 'modsim-machine' header)")]
    NotAMachine,
    /// Written by a newer modsim.
    #[error(
        "machine state format {0}: this modsim reads format {FORMAT} (made by a newer modsim?)"
    )]
    NewerFormat(u32),
    /// An older format this build no longer reads.
    #[error("machine state format {0}: this modsim reads format {FORMAT}")]
    OldFormat(u32),
    /// The bytes are damaged.
    #[error("machine state is corrupt: {0}")]
    Corrupt(String),
    /// The profile it names is not one this build has.
    #[error("machine state names the profile {0}, which this modsim does not have")]
    UnknownProfile(String),
    /// A call is in progress (a module in init, a wait).
    #[error("a module system call is in progress; the machine cannot be saved now")]
    Busy,
}

#[derive(Serialize, Deserialize)]
enum SavedProfile {
    /// One of the embedded profiles, by name.
    Builtin(String),
    /// Any other profile, in the embedded profiles' format (gzip'd JSON).
    Inline(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct State {
    profile: SavedProfile,
    settings: Settings,
    modules: Vec<Module>,
    log: KernelLog,
    taint: TaintState,
    memory: Memory,
    once: Vec<String>,
    default_init_return: i32,
    next_module_addr: u64,
    given_symbols: indexmap::IndexMap<String, u64>,
    last_unloaded: Option<(String, String)>,
}

impl Kernel {
    /// The machine's state as bytes ([`Kernel::restore`] reads them back). Fails with
    /// [`PersistError::Busy`] while a call is in progress.
    pub fn save(&self) -> Result<Vec<u8>, PersistError> {
        if !self.idem.is_empty()
            || !self.idem_done.is_empty()
            || self.modules.iter().any(|m| m.state != ModuleState::Live)
        {
            return Err(PersistError::Busy);
        }
        let profile = match self.profile {
            ProfileRef::Static(p) => SavedProfile::Builtin(p.name().to_string()),
            ProfileRef::Shared(ref p) => SavedProfile::Inline(p.to_json_gz()),
        };
        let mut once: Vec<String> = self.once.iter().cloned().collect();
        once.sort();
        let state = State {
            profile,
            settings: self.settings.clone(),
            modules: self.modules.clone(),
            log: self.log.clone(),
            taint: self.taint.clone(),
            memory: self.memory.clone(),
            once,
            default_init_return: self.default_init_return,
            next_module_addr: self.next_module_addr,
            given_symbols: self.given_symbols.clone(),
            last_unloaded: self.last_unloaded.clone(),
        };
        let payload =
            postcard::to_stdvec(&state).map_err(|e| PersistError::Corrupt(e.to_string()))?;
        let mut out = Vec::with_capacity(payload.len() + 24);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// A machine from the bytes of [`Kernel::save`]. Fails with a [`PersistError`] for bytes
    /// that are not a saved machine, are damaged, come from another format, or describe a
    /// state no sequence of calls could reach.
    pub fn restore(bytes: &[u8]) -> Result<Kernel, PersistError> {
        let corrupt = |m: &str| PersistError::Corrupt(m.to_string());
        let rest = bytes.strip_prefix(MAGIC).ok_or(PersistError::NotAMachine)?;
        let (format, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated"))?;
        let format = u32::from_le_bytes(*format);
        if format > FORMAT {
            return Err(PersistError::NewerFormat(format));
        }
        if format < FORMAT {
            return Err(PersistError::OldFormat(format));
        }
        let (crc, payload) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated"))?;
        if crc32fast::hash(payload) != u32::from_le_bytes(*crc) {
            return Err(corrupt("checksum mismatch"));
        }
        let state: State =
            postcard::from_bytes(payload).map_err(|e| PersistError::Corrupt(e.to_string()))?;
        let profile: ProfileRef = match state.profile {
            SavedProfile::Builtin(name) => Profile::builtin(&name)
                .map_err(|_| PersistError::UnknownProfile(name))?
                .into(),
            SavedProfile::Inline(gz) => Profile::from_json_gz(&gz)
                .map_err(|e| PersistError::Corrupt(format!("profile: {e}")))?
                .into(),
        };
        check(&state.modules, &state.memory, &state.settings)?;
        let mut k = Kernel::with_settings(profile, state.settings);
        k.modules = state.modules;
        k.log = state.log;
        k.taint = state.taint;
        k.memory = state.memory;
        k.once = state.once.into_iter().collect::<HashSet<String>>();
        k.default_init_return = state.default_init_return;
        k.next_module_addr = state.next_module_addr;
        k.longest_symbol_name = (k.longest_symbol_name).max(
            state
                .given_symbols
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0),
        );
        k.given_symbols = state.given_symbols;
        k.last_unloaded = state.last_unloaded;
        // The export index: oldest module first, as the loads built it.
        let modules = k.modules.clone();
        for m in modules.iter().rev() {
            k.index_exports(m);
        }
        Ok(k)
    }
}

/// The invariants a saved machine must satisfy (see [`Kernel::restore`]).
fn check(modules: &[Module], memory: &Memory, settings: &Settings) -> Result<(), PersistError> {
    let bad = |m: String| Err(PersistError::Corrupt(m));
    let mut names: HashMap<&str, &Module> = HashMap::new();
    for m in modules {
        if m.name.is_empty() || m.name.len() >= MODULE_NAME_LEN {
            return bad(format!("module name {:?}", m.name));
        }
        if m.state != ModuleState::Live {
            return bad(format!("module {} is {:?}", m.name, m.state));
        }
        if names.insert(&m.name, m).is_some() {
            return bad(format!("module {} listed twice", m.name));
        }
    }
    for m in modules {
        if m.refcnt != MODULE_REF_BASE + m.users.len() as i64 {
            return bad(format!(
                "module {}: {} references for {} users",
                m.name,
                m.refcnt,
                m.users.len()
            ));
        }
        for u in &m.users {
            if !names
                .get(u.as_str())
                .is_some_and(|user| user.uses.contains(&m.name))
            {
                return bad(format!("module {}: user {u} does not use it", m.name));
            }
        }
        for t in &m.uses {
            if !names
                .get(t.as_str())
                .is_some_and(|target| target.users.contains(&m.name))
            {
                return bad(format!(
                    "module {}: uses {t}, which does not list it",
                    m.name
                ));
            }
        }
        for base in &m.regions {
            if memory.region_at(*base).is_none_or(|r| r.base != *base) {
                return bad(format!("module {}: no memory region at {base:#x}", m.name));
            }
        }
    }
    let mut used = 0u64;
    let mut end = 0u64;
    for r in memory.regions() {
        if r.base < end {
            return bad(format!("memory regions overlap at {:#x}", r.base));
        }
        end = r.end();
        used = used.saturating_add(r.bytes.len() as u64);
    }
    if used != memory.used() || used > memory.limit() || memory.limit() != settings.memory_limit {
        return bad(format!(
            "memory: {used} bytes in regions, {} counted, limit {}",
            memory.used(),
            memory.limit()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::elf_check::tests::{fixture, profile};

    /// Everything a later call can observe.
    fn observable(k: &Kernel) -> String {
        let mut s = k.proc_modules();
        for m in k.modules() {
            s += &format!("{:?}{:?}{:?}{}\n", m.params, m.users, m.sections, m.taints);
        }
        for r in k.memory().regions() {
            s += &format!("{:#x} {:?} {}\n", r.base, r.kind, crc32fast::hash(&r.bytes));
        }
        s += &format!("{:#x} {:?}\n", k.tainted(), k.log());
        s
    }

    #[test]
    fn a_saved_machine_goes_on_as_the_original_would() {
        for kernel in ["debian-6.1-amd64", "debian-6.12-arm64"] {
            let mut k = Kernel::new(profile(kernel));
            k.init_module(&fixture(kernel, "mp_export.ko"), Some(b""))
                .unwrap();
            k.init_module(&fixture(kernel, "mp_use.ko"), Some(b""))
                .unwrap();
            k.init_module(&fixture(kernel, "mp_types.ko"), Some(b"p_int=5 p_charp=hi"))
                .unwrap();
            let _ = k.init_module(&fixture(kernel, "mp_unknown.ko"), Some(b""));
            let mut back = Kernel::restore(&k.save().unwrap()).unwrap();
            assert_eq!(observable(&back), observable(&k), "{kernel}");
            // The same calls from here give the same results and the same state.
            for (name, flags) in [
                ("mp_export", 0o4000),
                ("mp_use", 0o4000),
                ("mp_export", 0o4000),
            ] {
                let a = k.delete_module(name.as_bytes(), flags);
                let b = back.delete_module(name.as_bytes(), flags);
                assert_eq!(a, b, "{kernel}: rmmod {name}");
            }
            let ko = fixture(kernel, "mp_lib.ko");
            assert_eq!(
                k.init_module(&ko, Some(b"")),
                back.init_module(&ko, Some(b""))
            );
            assert_eq!(observable(&back), observable(&k), "{kernel}");
        }
    }

    #[test]
    fn a_headers_profile_is_saved_with_the_machine() {
        let p = Profile::from_json_gz(&profile("debian-6.12-amd64").to_json_gz()).unwrap();
        let k = Kernel::new(p);
        let back = Kernel::restore(&k.save().unwrap()).unwrap();
        assert_eq!(back.profile(), k.profile());
    }

    #[test]
    fn damaged_or_foreign_state_is_an_error() {
        let kernel = "debian-6.12-amd64";
        let mut k = Kernel::new(profile(kernel));
        k.init_module(&fixture(kernel, "mp_types.ko"), Some(b""))
            .unwrap();
        let good = k.save().unwrap();
        assert!(matches!(
            Kernel::restore(b"hello"),
            Err(PersistError::NotAMachine)
        ));
        let mut newer = good.clone();
        newer[16] = 3;
        assert!(matches!(
            Kernel::restore(&newer),
            Err(PersistError::NewerFormat(3))
        ));
        for cut in [17, 24, good.len() / 2, good.len() - 1] {
            assert!(matches!(
                Kernel::restore(&good[..cut]),
                Err(PersistError::Corrupt(_))
            ));
        }
        let mut flipped = good.clone();
        let at = good.len() - 100;
        flipped[at] ^= 0x40;
        assert!(matches!(
            Kernel::restore(&flipped),
            Err(PersistError::Corrupt(_))
        ));
        // A consistent encoding of an impossible state (a checksum made to match).
        let mut st: State = postcard::from_bytes(&good[24..]).unwrap();
        st.modules[0].refcnt += 1;
        let payload = postcard::to_stdvec(&st).unwrap();
        let mut forged = good[..20].to_vec();
        forged.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        forged.extend_from_slice(&payload);
        let e = Kernel::restore(&forged).unwrap_err();
        assert!(e.to_string().contains("references"), "{e}");
    }

    #[test]
    fn a_machine_in_the_middle_of_a_call_is_not_saved() {
        let kernel = "debian-6.1-amd64";
        let mut k = Kernel::new(profile(kernel));
        let p = k.start_init_module(&fixture(kernel, "mp_hold.ko"), Some(b""));
        assert!(matches!(k.save(), Err(PersistError::Busy)));
        k.run_to_end(p).unwrap();
        k.save().unwrap();
    }
}
