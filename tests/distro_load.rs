//! Whole-distribution check: every module Debian ships for the four kernels loads into one
//! simulated kernel of the matching profile, in the dependency order derived from the modules'
//! own exported and undefined symbols (as depmod derives it), with every `__versions` CRC
//! checked against the profile's `Module.symvers` and the exports of the modules loaded before.
//! The few modules the kernel must refuse are listed below with the errno and the log line it
//! gives, and must fail exactly so; any other failure fails the test.
//!
//! Run (after `tests/distro/fetch.sh`; a release build, the 6.12 trees are xz-compressed):
//!     cargo test --release --test distro_load -- --ignored --nocapture

use loader::distro::{load_all, module_dir};
use loader::errno::Errno;
use modsim_tests::{KERNELS, repo};
use sim::profile::Profile;

/// (kernel, module, errno, first log line): the modules the kernel refuses.
const MUST_FAIL: &[(&str, &str, Errno, &str)] = &[
    // drivers/misc/c2port/core.ko is named "core"; a built-in "core" has parameters
    // (modules.builtin.modinfo: core.check_on_panic ...), so /sys/module/core exists and
    // mod_sysfs_init() refuses the name.
    (
        "debian-6.12-amd64",
        "core",
        Errno::EINVAL,
        "core: module is already loaded",
    ),
    (
        "debian-6.12-arm64",
        "core",
        Errno::EINVAL,
        "core: module is already loaded",
    ),
    // ... and its user then lacks the symbols "core" would have exported.
    (
        "debian-6.12-amd64",
        "c2port_duramar2150",
        Errno::ENOENT,
        "c2port_duramar2150: Unknown symbol c2port_device_unregister (err -2)",
    ),
];

#[test]
#[ignore = "needs the Debian trees (tests/distro/fetch.sh) and a release build; see the file's docs"]
fn every_debian_module_loads_in_dependency_order_except_the_ones_the_kernel_refuses() {
    let mut checked = 0;
    for k in KERNELS {
        let profile = Profile::builtin(k).unwrap_or_else(|e| panic!("{e}"));
        let dir = module_dir(&repo().join("target/lab/root").join(k), profile);
        if !dir.is_dir() {
            println!(
                "skipped {k}: {} is missing: run tests/distro/fetch.sh",
                dir.display()
            );
            continue;
        }
        let r = load_all(profile, &dir).unwrap_or_else(|e| panic!("{k}: {e}"));
        let failed: Vec<_> = r.failed().collect();
        println!(
            "{k}: {} modules, {} loaded, {} refused; {} needed symbols checked; depmod {:?}, load {:?}",
            r.outcomes.len(),
            r.loaded(),
            failed.len(),
            r.crcs_checked,
            r.depmod_time,
            r.load_time
        );
        for o in &failed {
            println!(
                "  refused {} ({}): {:?} in {:?}: {:?}",
                o.name, o.rel_path, o.errno, o.step, o.log
            );
        }
        // Every ftrace call site of every Debian module is what ftrace_init_nop() expects
        // after relocation (a wrong relocation or site adjustment would be an "ftrace bug").
        let ftrace_bugs: Vec<&str> = r
            .outcomes
            .iter()
            .filter(|o| o.log.iter().any(|l| l.contains("ftrace bug")))
            .map(|o| o.name.as_str())
            .collect();
        assert!(ftrace_bugs.is_empty(), "{k}: ftrace bug in {ftrace_bugs:?}");
        let expected: Vec<_> = MUST_FAIL.iter().filter(|(kk, ..)| *kk == k).collect();
        for o in &failed {
            let want = expected.iter().find(|(_, m, ..)| *m == o.name);
            let Some((_, _, errno, line)) = want else {
                panic!(
                    "{k}: {} was refused unexpectedly: {:?} {:?}",
                    o.name, o.errno, o.log
                );
            };
            assert_eq!(o.errno, Some(*errno), "{k}: {}", o.name);
            assert_eq!(
                o.log.first().map(String::as_str),
                Some(*line),
                "{k}: {}",
                o.name
            );
        }
        for (_, m, ..) in &expected {
            assert!(
                failed.iter().any(|o| &o.name == m),
                "{k}: {m} should have been refused"
            );
        }
        assert!(
            r.outcomes.len() > 3000,
            "{k}: only {} modules",
            r.outcomes.len()
        );
        checked += 1;
    }
    println!("{checked} kernels checked");
}
