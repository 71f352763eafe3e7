//! Kernel and module taints: the flags of `kernel/panic.c` (`taint_flags[]`, identical in 6.1
//! and 6.12) and `add_taint()` with its once-per-boot "Disabling lock debugging" line.

use crate::log::KernelLog;

/// A taint flag (bit number of `/proc/sys/kernel/tainted`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Taint {
    ProprietaryModule = 0,
    ForcedModule = 1,
    CpuOutOfSpec = 2,
    ForcedRmmod = 3,
    MachineCheck = 4,
    BadPage = 5,
    User = 6,
    Die = 7,
    OverriddenAcpiTable = 8,
    Warn = 9,
    Crap = 10,
    FirmwareWorkaround = 11,
    OotModule = 12,
    UnsignedModule = 13,
    Softlockup = 14,
    Livepatch = 15,
    Aux = 16,
    Randstruct = 17,
    Test = 18,
}

/// `TAINT_FLAGS_COUNT`.
pub const TAINT_FLAGS_COUNT: u32 = 19;

/// `taint_flags[]`: (letter when set, whether it is a module taint), by bit.
const FLAGS: [(char, bool); TAINT_FLAGS_COUNT as usize] = [
    ('P', true),
    ('F', true),
    ('S', false),
    ('R', false),
    ('M', false),
    ('B', false),
    ('U', false),
    ('D', false),
    ('A', false),
    ('W', false),
    ('C', true),
    ('I', false),
    ('O', true),
    ('E', true),
    ('L', false),
    ('K', true),
    ('X', true),
    ('T', true),
    ('N', true),
];

impl Taint {
    /// The bit in a taint mask.
    pub fn mask(self) -> u64 {
        1 << (self as u32)
    }
}

/// Whether taking the taint makes lockdep unreliable (`LOCKDEP_NOW_UNRELIABLE`) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lockdep {
    StillOk,
    NowUnreliable,
}

/// The letters of a module's taint mask as `/sys/module/<m>/taint` and `/proc/modules` show
/// them (`module_flags_taint()`): every set module taint, in bit order.
pub fn module_flags_taint(taints: u64) -> String {
    FLAGS
        .iter()
        .enumerate()
        .filter(|(bit, (_, module))| *module && taints & (1 << bit) != 0)
        .map(|(_, (c, _))| *c)
        .collect()
}

/// The kernel-wide taint state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TaintState {
    mask: u64,
    debug_locks: bool,
}

impl Default for TaintState {
    fn default() -> Self {
        TaintState {
            mask: 0,
            debug_locks: true,
        }
    }
}

impl TaintState {
    /// `/proc/sys/kernel/tainted`.
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// `test_taint()`.
    pub fn test(&self, t: Taint) -> bool {
        self.mask & t.mask() != 0
    }

    /// Models `add_taint()` in kernel/panic.c: the first taint that makes lockdep unreliable
    /// prints "Disabling lock debugging due to kernel taint" (`__debug_locks_off()` is true
    /// only once).
    pub fn add(&mut self, t: Taint, lockdep: Lockdep, log: &mut KernelLog) {
        if lockdep == Lockdep::NowUnreliable && std::mem::replace(&mut self.debug_locks, false) {
            log.warn("Disabling lock debugging due to kernel taint");
        }
        self.mask |= t.mask();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_letters_are_in_bit_order_and_skip_global_only_taints() {
        let m = Taint::OotModule.mask()
            | Taint::UnsignedModule.mask()
            | Taint::ForcedModule.mask()
            | Taint::ForcedRmmod.mask();
        assert_eq!(module_flags_taint(m), "FOE");
        assert_eq!(
            module_flags_taint(Taint::ProprietaryModule.mask() | Taint::Test.mask()),
            "PN"
        );
    }

    #[test]
    fn lock_debugging_is_disabled_once() {
        let (mut t, mut log) = (TaintState::default(), KernelLog::new());
        t.add(Taint::OotModule, Lockdep::StillOk, &mut log);
        t.add(Taint::ForcedModule, Lockdep::NowUnreliable, &mut log);
        t.add(Taint::ForcedRmmod, Lockdep::NowUnreliable, &mut log);
        assert_eq!(
            log.texts(),
            vec!["Disabling lock debugging due to kernel taint"]
        );
        assert_eq!(t.mask(), 0b1_0000_0000_1010);
    }
}
