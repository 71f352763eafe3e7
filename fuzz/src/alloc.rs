//! A counting global allocator: it keeps the live heap bytes and, while an input runs
//! ([`begin`] … [`end`]), the peak of them above what was live when the input started; a
//! single allocation larger than the input's budget, or a peak above it, aborts the process
//! with a message and a backtrace of the allocation that crossed it. libFuzzer sees the abort
//! as a crash and keeps the input.
//!
//! Only Rust's heap is counted: what C code allocates with `malloc` (liblzma's dictionary,
//! libFuzzer itself) is bounded by libFuzzer's `-rss_limit_mb` instead.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// Heap bytes an input may use beyond what it is given, whatever its size.
pub const FIXED: usize = 32 << 20;
/// Heap bytes allowed per input byte (copies, parsed tables, log lines).
pub const PER_INPUT_BYTE: usize = 16;
/// Heap bytes allowed per byte of simulated memory limit (the simulated module memory itself
/// and a decompressed image, each bounded by that limit, plus a vector's growth slack).
pub const PER_SIM_BYTE: usize = 3;

/// The most heap an input of `input_len` bytes may use on a machine whose simulated memory is
/// limited to `sim_limit` bytes: `FIXED + PER_INPUT_BYTE * input_len + PER_SIM_BYTE *
/// sim_limit`. For an input under 1 MB and a 64 MiB limit that is under 256 MiB.
pub fn budget(input_len: usize, sim_limit: u64) -> usize {
    FIXED
        .saturating_add(PER_INPUT_BYTE.saturating_mul(input_len))
        .saturating_add(
            PER_SIM_BYTE.saturating_mul(usize::try_from(sim_limit).unwrap_or(usize::MAX)),
        )
}

const _: () = assert!(FIXED + PER_INPUT_BYTE * (1 << 20) + PER_SIM_BYTE * (64 << 20) <= 256 << 20);

/// The allocator; installed as the global allocator of every fuzz target.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static BASE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static ARMED: AtomicBool = AtomicBool::new(false);
static TRIPPED: AtomicBool = AtomicBool::new(false);
static RECORD: AtomicUsize = AtomicUsize::new(0);

/// Starts counting for one input with `budget` bytes (see [`budget`]).
pub fn begin(budget: usize) {
    let live = LIVE.load(Relaxed);
    BASE.store(live, Relaxed);
    PEAK.store(live, Relaxed);
    BUDGET.store(budget, Relaxed);
    ARMED.store(true, Relaxed);
}

/// Stops counting; the input's peak heap use above what was live at [`begin`]. With
/// `MODSIM_FUZZ_PEAK` set in the environment, each new largest peak is printed (to calibrate
/// the budget).
pub fn end() -> usize {
    ARMED.store(false, Relaxed);
    let peak = PEAK.load(Relaxed).saturating_sub(BASE.load(Relaxed));
    if peak > RECORD.load(Relaxed) {
        RECORD.store(peak, Relaxed);
        if std::env::var_os("MODSIM_FUZZ_PEAK").is_some() {
            eprintln!(
                "modsim-fuzz: new peak heap use {peak} bytes (budget {})",
                BUDGET.load(Relaxed)
            );
        }
    }
    peak
}

/// The live heap bytes now.
pub fn live() -> usize {
    LIVE.load(Relaxed)
}

/// A fixed buffer that `write!` can format into without allocating.
struct StackBuf {
    buf: [u8; 512],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cold]
fn trip(what: &str, bytes: usize) {
    if TRIPPED.swap(true, Relaxed) {
        return;
    }
    ARMED.store(false, Relaxed);
    let mut m = StackBuf {
        buf: [0; 512],
        len: 0,
    };
    let _ = std::fmt::write(
        &mut m,
        format_args!(
            "\ninvariant: heap allocation bound exceeded: {what} of {bytes} bytes; this input's \
             budget is {} bytes (live at its start: {} bytes)\n",
            BUDGET.load(Relaxed),
            BASE.load(Relaxed)
        ),
    );
    let mut err = std::io::stderr();
    let _ = err.write_all(&m.buf[..m.len]);
    // Counting is off now: the backtrace may allocate.
    let bt = std::backtrace::Backtrace::force_capture();
    let _ = writeln!(err, "the allocation that crossed the bound:\n{bt}");
    std::process::abort();
}

#[inline]
fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    if ARMED.load(Relaxed) {
        PEAK.fetch_max(live, Relaxed);
        let limit = BASE.load(Relaxed).saturating_add(BUDGET.load(Relaxed));
        if live > limit {
            trip("the peak of live heap bytes", live - BASE.load(Relaxed));
        }
    }
}

#[inline]
fn check_single(size: usize) {
    if ARMED.load(Relaxed) && size > BUDGET.load(Relaxed) {
        trip("a single allocation", size);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counting around it touches only atomics (and, once, on the way to `abort`, stderr).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check_single(layout.size());
        // SAFETY: the caller's contract for `GlobalAlloc::alloc` is passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check_single(layout.size());
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check_single(new_size);
        // SAFETY: as for `dealloc`, and the caller's contract for `realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}
