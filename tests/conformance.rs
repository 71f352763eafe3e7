//! Conformance: every recorded scenario, replayed on the simulator, gives what the real kernel
//! gave — errno, the kernel log lines, taints, state, refcount, holders and the `/proc/modules`
//! line (address normalized) — field by field, per kernel and per category (scenario file).
//! Parameter values are compared too unless `MODSIM_CONFORMANCE_NO_PARAMS` is set.

use loader::scenario::compare::{CompareOptions, Difference, compare};
use loader::scenario::{self, Recording, Scenario};
use loader::sim_backend::SimBackend;
use modsim_tests::{Target, file_name, recorded_on, scenario_files, targets};
use sim::kernel::ProfileRef;

/// Runs one scenario on a fresh simulated kernel and compares it with the recording.
fn run_one(
    t: &Target,
    profile: &ProfileRef,
    path: &std::path::Path,
    opts: CompareOptions,
) -> (usize, Vec<Difference>) {
    let kernel = &t.name;
    let scen = Scenario::load(path, Some(&t.fixtures)).unwrap_or_else(|e| panic!("{e}"));
    let rec = Recording::load(&t.recorded.join(file_name(path))).unwrap_or_else(|e| panic!("{e}"));
    let backend = SimBackend::new(profile.clone());
    let mut machine = loader::cli::Machine::Sim(Box::new(backend));
    let got = scenario::run_machine(&mut machine, &scen, |_| {})
        .unwrap_or_else(|e| panic!("{kernel} {}: {e}", file_name(path)));
    (rec.steps.len(), compare(&rec.steps, &got, opts))
}

#[test]
fn the_simulator_matches_every_recorded_step_on_all_four_kernels() {
    // The four pinned kernels, or the set of MODSIM_KERNEL_SET (tests/lab/current.sh).
    let opts = CompareOptions {
        params: std::env::var_os("MODSIM_CONFORMANCE_NO_PARAMS").is_none(),
    };
    let mut total_differ = 0;
    for t in targets() {
        let k = t.name.as_str();
        // Built once per kernel (a set's profiles are parsed from the headers directory).
        let profile = t.profile();
        let (mut agree, mut differ) = (0, 0);
        for f in scenario_files() {
            if !recorded_on(k, &f) {
                continue;
            }
            let (n, diffs) = run_one(&t, &profile, &f, opts);
            let bad: std::collections::BTreeSet<usize> = diffs.iter().map(|d| d.step).collect();
            agree += n - bad.len();
            differ += bad.len();
            println!(
                "{k} {:<22} {} agree, {} differ",
                file_name(&f),
                n - bad.len(),
                bad.len()
            );
            for d in diffs.iter().take(3) {
                println!("    {d}");
            }
        }
        println!("{k}: {agree} agree, {differ} differ");
        total_differ += differ;
    }
    assert_eq!(
        total_differ, 0,
        "the simulator differs from the real kernels (see above)"
    );
}
