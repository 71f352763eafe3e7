//! Eight threads share one simulated machine ([`sim::shared::SharedKernel`]), each making 10⁴
//! module system calls, among them loads of the same module whose init is held (the init hook
//! yields the processor for a while, as `mp_hold`'s `msleep` does): every outcome must be one
//! the real kernel's rules allow (tests/concurrency/ has the real kernels' answers), and the
//! machine's invariants hold throughout and at the end.

use std::cell::Cell;
use std::sync::Arc;

use modsim_tests::fixtures;
use sim::errno::Errno;
use sim::kernel::{FileKey, Kernel, MODULE_REF_BASE, ModuleState};
use sim::profile::Profile;
use sim::shared::SharedKernel;

const THREADS: usize = 8;
const OPS: usize = 10_000;
const O_NONBLOCK: u32 = 0o4000;

thread_local! {
    /// What this thread's next held init returns, and how many times it yields first.
    static INIT: Cell<(i32, u32)> = const { Cell::new((0, 0)) };
}

/// xorshift64*: the test's own reproducible choices (seed per thread).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the machine must look like whenever no call is half-way through a step.
fn check_invariants(k: &Kernel) {
    let mods: Vec<_> = k.modules().collect();
    for (i, m) in mods.iter().enumerate() {
        assert!(
            !mods[..i].iter().any(|o| o.name == m.name),
            "{} listed twice",
            m.name
        );
        // GOING: a failed init's module, between the two steps of its failure path.
        assert!(
            matches!(
                m.state,
                ModuleState::Live | ModuleState::Coming | ModuleState::Going
            ),
            "{} is {:?} between calls",
            m.name,
            m.state
        );
        let in_init = i64::from(m.state == ModuleState::Coming);
        assert_eq!(
            m.refcnt,
            MODULE_REF_BASE + in_init + m.users.len() as i64,
            "{}'s references",
            m.name
        );
        for u in &m.users {
            let user = mods
                .iter()
                .find(|o| &o.name == u)
                .expect("a user is loaded");
            assert!(user.uses.contains(&m.name), "{u} uses {}", m.name);
        }
    }
    assert!(k.memory().used() <= k.memory().limit());
}

fn run(kernel: &str) {
    let profile = Profile::builtin(kernel).unwrap();
    let ko = |name: &str| Arc::new(std::fs::read(fixtures(kernel).join(name)).unwrap());
    let (hold, lib, export, use_) = (
        ko("mp_hold.ko"),
        ko("mp_lib.ko"),
        ko("mp_export.ko"),
        ko("mp_use.ko"),
    );
    let mut k = Kernel::new(profile);
    k.set_init_hook(
        "mp_hold",
        Arc::new(|_| {
            let (ret, yields) = INIT.with(Cell::get);
            for _ in 0..yields {
                std::thread::yield_now();
            }
            ret
        }),
    );
    // mp_export stays loaded, so that mp_use never waits for an exporter in init (the
    // simulator gives up at once where the kernel waits up to 30 s: see the note).
    k.init_module(&export, Some(b"")).unwrap();
    let shared = Arc::new(SharedKernel::new(k));
    let is_6_12 = kernel.contains("6.12");
    let files = [FileKey { dev: 8, ino: 1 }, FileKey { dev: 8, ino: 2 }];

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = Arc::clone(&shared);
            let (hold, lib, use_) = (Arc::clone(&hold), Arc::clone(&lib), Arc::clone(&use_));
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678_9abc_def1));
                let mut seen = std::collections::BTreeMap::<String, usize>::new();
                for _ in 0..OPS {
                    let fails = rng.below(4) == 0;
                    INIT.with(|c| c.set((if fails { -19 } else { 0 }, rng.below(50) as u32)));
                    let (what, r) = match rng.below(10) {
                        0..=2 => ("init mp_hold", shared.init_module(&hold, Some(b""))),
                        3..=4 => {
                            let f = files[rng.below(2) as usize];
                            let r = shared.finit_module_bytes(hold.to_vec(), Some(b""), 0, Some(f));
                            ("finit mp_hold", r)
                        }
                        5..=6 => (
                            "delete mp_hold",
                            shared.delete_module(b"mp_hold", O_NONBLOCK),
                        ),
                        7 => ("init mp_lib", shared.init_module(&lib, Some(b""))),
                        8 => ("init mp_use", shared.init_module(&use_, Some(b""))),
                        _ => {
                            let name: &[u8] = if rng.below(2) == 0 {
                                b"mp_use"
                            } else {
                                b"mp_lib"
                            };
                            (
                                "delete mp_use/mp_lib",
                                shared.delete_module(name, O_NONBLOCK),
                            )
                        }
                    };
                    let e = r.as_ref().err().map(|e| e.errno);
                    // The real kernels' rules (tests/concurrency/recorded/):
                    let allowed = match what {
                        // A same-name load waits for one in init, then EEXIST (it went live) or
                        // EBUSY (it failed); a load that ran init itself fails with init's
                        // ENODEV; on 6.12 a finit of the same file returns the first one's
                        // result, ENODEV included.
                        "init mp_hold" => {
                            matches!(e, None | Some(Errno::EEXIST | Errno::EBUSY))
                                || (fails && e == Some(Errno::ENODEV))
                        }
                        "finit mp_hold" => {
                            matches!(e, None | Some(Errno::EEXIST | Errno::EBUSY))
                                || ((fails || is_6_12) && e == Some(Errno::ENODEV))
                        }
                        // Not loaded, or in init ("Doing init or already dying?").
                        "delete mp_hold" => matches!(e, None | Some(Errno::ENOENT | Errno::EBUSY)),
                        // Another thread's load of it: live (EEXIST), or in init, waited for,
                        // and gone again by the time this one looked (EBUSY).
                        "init mp_lib" | "init mp_use" => {
                            matches!(e, None | Some(Errno::EEXIST | Errno::EBUSY))
                        }
                        // mp_lib and mp_use are used by nobody (no EWOULDBLOCK); another
                        // thread may have one in init (EBUSY).
                        _ => matches!(e, None | Some(Errno::ENOENT | Errno::EBUSY)),
                    };
                    assert!(allowed, "{what}: {r:?}");
                    *seen
                        .entry(format!(
                            "{what}: {}",
                            e.map_or("ok".to_string(), |e| e.name().to_string())
                        ))
                        .or_default() += 1;
                    if rng.below(64) == 0 {
                        check_invariants(&shared.lock());
                    }
                }
                seen
            })
        })
        .collect();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for t in threads {
        for (k, n) in t.join().expect("a thread failed") {
            *seen.entry(k).or_default() += n;
        }
    }
    // The interleavings the test is about happened: waits that ended both ways.
    for outcome in [
        "init mp_hold: EEXIST",
        "init mp_hold: EBUSY",
        "delete mp_hold: EBUSY",
        "init mp_hold: ok",
    ] {
        assert!(
            seen.contains_key(outcome),
            "{kernel}: never {outcome}: {seen:#?}"
        );
    }
    let mut k = Arc::into_inner(shared).unwrap().into_inner();
    check_invariants(&k);
    for name in ["mp_use", "mp_hold", "mp_lib", "mp_export"] {
        let _ = k.delete_module(name.as_bytes(), O_NONBLOCK);
    }
    assert_eq!(k.modules().count(), 0);
    assert_eq!(
        k.memory().used(),
        0,
        "{kernel}: module memory left after every unload"
    );
}

#[test]
fn eight_threads_share_one_kernel_with_held_inits() {
    for kernel in ["debian-6.1-amd64", "debian-6.12-arm64"] {
        run(kernel);
    }
}
