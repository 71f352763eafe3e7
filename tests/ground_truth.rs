//! The committed ground truth is complete and well-formed: every scenario was recorded on every
//! kernel, by the runner the issue demands, with one result per step, and enough of them.

use loader::scenario::{Recording, Scenario, Step};
use modsim_tests::{KERNELS, file_name, fixtures, recorded, recorded_on, scenario_files};

#[test]
fn every_scenario_parses_and_names_only_existing_fixtures() {
    let files = scenario_files();
    assert!(files.len() >= 10, "only {} scenario files", files.len());
    for k in KERNELS {
        for f in &files {
            let s = Scenario::load(f, Some(&fixtures(k))).unwrap_or_else(|e| panic!("{e}"));
            for step in &s.steps {
                let file = match step {
                    Step::FinitModule { file, .. } | Step::InitModule { file, .. } => file,
                    _ => continue,
                };
                let p = s.resolve(file);
                assert!(
                    p.exists(),
                    "{}: {k}: {} does not exist",
                    file_name(f),
                    p.display()
                );
            }
        }
    }
}

#[test]
fn every_kernel_has_every_scenario_recorded_with_one_result_per_step() {
    for k in KERNELS {
        let mut total = 0;
        for f in scenario_files() {
            if !recorded_on(k, &f) {
                continue;
            }
            let scenario = Scenario::load(&f, None).unwrap_or_else(|e| panic!("{e}"));
            let path = recorded(k).join(file_name(&f));
            let rec = Recording::load(&path).unwrap_or_else(|e| panic!("{k}: {e}"));
            let meta = rec
                .meta
                .unwrap_or_else(|| panic!("{}: no meta line", path.display()));
            assert_eq!(meta.kernel, k, "{}", path.display());
            assert_eq!(meta.scenario, file_name(&f), "{}", path.display());
            assert!(
                meta.uname.ends_with(k.rsplit('-').next().unwrap_or("")),
                "{}: uname {}",
                path.display(),
                meta.uname
            );
            assert_eq!(
                rec.steps.len(),
                scenario.steps.len(),
                "{}: step count",
                path.display()
            );
            for (i, (step, r)) in scenario.steps.iter().zip(&rec.steps).enumerate() {
                assert_eq!(r.step, i + 1, "{}", path.display());
                assert_eq!(r.op, step.op(), "{} step {}", path.display(), i + 1);
            }
            total += rec.steps.len();
        }
        println!("{k}: {total} recorded steps");
        assert!(total >= 200, "{k}: only {total} recorded steps");
    }
}

#[test]
fn amd64_ground_truth_was_recorded_by_modloader_with_the_kernel_backend() {
    for k in KERNELS.iter().filter(|k| k.ends_with("amd64")) {
        for f in scenario_files() {
            if !recorded_on(k, &f) {
                continue;
            }
            let path = recorded(k).join(file_name(&f));
            let rec = Recording::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let runner = rec.meta.map(|m| m.runner).unwrap_or_default();
            assert!(
                runner.starts_with("modloader ") && runner.contains("kernel backend"),
                "{}: runner {runner:?}",
                path.display()
            );
        }
    }
}

#[test]
fn ground_truth_covers_every_category() {
    // Each (scenario, errno) pair below is a category the issue names; it must occur on every
    // kernel, so that a scenario that silently stopped exercising it is noticed.
    let want: &[(&str, &str)] = &[
        ("elf.jsonl", "ENOEXEC"),
        ("versions.jsonl", "ENOEXEC"),
        ("symbols.jsonl", "ENOENT"),
        ("symbols.jsonl", "EWOULDBLOCK"),
        ("lifecycle.jsonl", "EEXIST"),
        ("lifecycle.jsonl", "ENODEV"),
        ("lifecycle.jsonl", "EBUSY"),
        ("finit.jsonl", "EBADF"),
        ("finit.jsonl", "ETXTBSY"),
        ("finit.jsonl", "EFAULT"),
        ("params_numeric.jsonl", "EINVAL"),
        ("params_string.jsonl", "ENOSPC"),
        ("blacklist.jsonl", "EPERM"),
        ("permissions.jsonl", "EPERM"),
        ("capability.jsonl", "EPERM"),
        ("builtin.jsonl", "EINVAL"),
        ("sig_enforce.jsonl", "EKEYREJECTED"),
    ];
    for k in KERNELS {
        for (scenario, errno) in want {
            let rec =
                Recording::load(&recorded(k).join(scenario)).unwrap_or_else(|e| panic!("{e}"));
            let want = if *errno == "EWOULDBLOCK" {
                "EAGAIN"
            } else {
                errno
            };
            assert!(
                rec.steps.iter().any(|r| r.errno.as_deref() == Some(want)),
                "{k}: {scenario} has no step failing with {want}"
            );
        }
        let params = Recording::load(&recorded(k).join("params_grammar.jsonl"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            params.steps.iter().any(|r| r
                .modules
                .get("mp_types")
                .is_some_and(|m| !m.params.is_empty())),
            "{k}: no parameter values recorded"
        );
        let taints =
            Recording::load(&recorded(k).join("taints.jsonl")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            taints.steps.iter().any(|r| r.kernel_tainted != 0),
            "{k}: no taint recorded"
        );
    }
}
