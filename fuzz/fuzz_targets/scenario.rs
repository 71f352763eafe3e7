//! `scenario`: the loader's text formats — scenario files (`Scenario::parse`, `Scenario::load`),
//! result and recording files (`Recording::parse`, `Recording::load`), and the address maps of
//! `modloader image` (`loader::image::parse_address_map`) — and running a parsed scenario on
//! the simulator (`scenario::run` on a `SimBackend`).
//!
//! Input: `[b0][text...]`
//! - b0: bits 0-1 what the text is read as: a scenario, a recording, an address map, all
//!   three; bit 2 read from a file (the commands' way) as well; bit 3 run the scenario (when
//!   its files are fixture names and its `len`s small); bits 4-5 the kernel it runs on.
//!
//! Invariants: what parses prints back (serde) to text that parses to the same value; a
//! file reads like its text; a recording compared with itself has no differences and
//! normalizing is idempotent; an address map prints back to itself; a scenario runs the same
//! twice, its results are numbered and named after its steps, and they compare equal to
//! themselves.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use loader::scenario::compare::{CompareOptions, compare, normalize};
use loader::scenario::{Recording, Scenario, Step, StepResult};
use loader::sim_backend::SimBackend;
use modsim_fuzz::{Input, alloc};
use sim::kernel::{Kernel, Settings};

const LIMIT: u64 = 64 << 20;

fuzz_target!(init: init(), |data: &[u8]| run(data));

/// Per kernel, a scratch copy of its fixture directory (scenarios open files read-write).
fn fixture_dirs() -> &'static Vec<PathBuf> {
    static D: OnceLock<Vec<PathBuf>> = OnceLock::new();
    D.get_or_init(|| {
        modsim_fuzz::KERNELS
            .iter()
            .map(|k| {
                let src = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/fixtures/ko")
                    .join(k);
                let dst = modsim_fuzz::scratch_dir().join("ko").join(k);
                std::fs::create_dir_all(&dst).unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
                for e in std::fs::read_dir(&src).into_iter().flatten().flatten() {
                    let _ = std::fs::copy(e.path(), dst.join(e.file_name()));
                }
                dst
            })
            .collect()
    })
}

fn init() {
    modsim_fuzz::init();
    fixture_dirs();
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let b0 = inp.u8();
    let text = String::from_utf8_lossy(inp.rest()).into_owned();
    alloc::begin(modsim_fuzz::budget(data.len(), LIMIT));
    let what = b0 & 3;
    let via_file = b0 & 4 != 0;
    if what == 0 || what == 3 {
        scenario(&text, via_file, (b0 & 8 != 0).then_some((b0 >> 4) & 3));
    }
    if what == 1 || what == 3 {
        recording(&text, via_file);
    }
    if what == 2 || what == 3 {
        address_map(&text);
    }
    alloc::end();
}

fn write_scratch(name: &str, text: &str) -> PathBuf {
    let p = modsim_fuzz::scratch_dir().join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

fn scenario(text: &str, via_file: bool, run_on: Option<u8>) {
    let path = Path::new("fuzz.jsonl");
    let Ok(s) = Scenario::parse(text, path, Path::new("/nonexistent")) else {
        if via_file {
            let p = write_scratch("fuzz.jsonl", text);
            assert!(
                Scenario::load(&p, None).is_err(),
                "invariant: Scenario::load accepts a file whose text does not parse"
            );
        }
        return;
    };
    let printed: Vec<String> = s
        .steps
        .iter()
        .map(|st| serde_json::to_string(st).expect("a step serializes"))
        .collect();
    let back = Scenario::parse(&printed.join("\n"), path, Path::new("/nonexistent"))
        .unwrap_or_else(|e| panic!("invariant: a printed scenario does not parse: {e}"));
    assert_eq!(
        back.steps, s.steps,
        "invariant: a scenario printed and parsed again changed"
    );
    assert_eq!(
        s.boot_append().is_some(),
        matches!(s.steps.first(), Some(Step::Boot { .. }))
    );
    if via_file {
        let p = write_scratch("fuzz.jsonl", text);
        let l = Scenario::load(&p, None).expect("invariant: Scenario::load refuses its text");
        assert_eq!(
            l.steps, s.steps,
            "invariant: a scenario file reads unlike its text"
        );
    }
    if let Some(k) = run_on {
        run_scenario(s, k);
    }
}

/// Files are fixture names (no path), `len`s at most 1 MiB, and at most 16 steps.
fn runnable(s: &Scenario) -> bool {
    s.steps.len() <= 16
        && s.steps.iter().all(|st| match st {
            Step::FinitModule { file, .. } => !file.contains('/'),
            Step::InitModule { file, len, .. } => {
                !file.contains('/') && len.is_none_or(|l| l <= 1 << 20)
            }
            _ => true,
        })
}

fn run_once(s: &Scenario, k: u8) -> Vec<StepResult> {
    let kernel = Kernel::with_settings(
        modsim_fuzz::profile(k),
        Settings {
            memory_limit: LIMIT,
            ..Settings::default()
        },
    );
    let mut b = SimBackend::from_kernel(kernel);
    loader::scenario::run(&mut b, s, |_| {})
        .unwrap_or_else(|e| panic!("invariant: a scenario failed outside its steps: {e}"))
}

fn run_scenario(mut s: Scenario, k: u8) {
    if !runnable(&s) {
        return;
    }
    s.base = fixture_dirs()[usize::from(k)].clone();
    let a = run_once(&s, k);
    assert_eq!(a.len(), s.steps.len(), "invariant: one result per step");
    for (i, (r, st)) in a.iter().zip(&s.steps).enumerate() {
        assert!(
            r.step == i + 1 && r.op == st.op(),
            "invariant: result {} is numbered {} and named {}",
            i + 1,
            r.step,
            r.op
        );
    }
    let b = run_once(&s, k);
    assert_eq!(a, b, "invariant: the same scenario ran differently twice");
    let d = compare(&a, &b, CompareOptions::default());
    assert!(
        d.is_empty(),
        "invariant: equal results compare different: {d:?}"
    );
}

fn recording(text: &str, via_file: bool) {
    let path = Path::new("fuzz.jsonl");
    let Ok(r) = Recording::parse(text, path) else {
        return;
    };
    let mut lines = Vec::new();
    if let Some(m) = &r.meta {
        lines.push(serde_json::json!({ "meta": m }).to_string());
    }
    for st in &r.steps {
        lines.push(serde_json::to_string(st).expect("a result serializes"));
    }
    let back = Recording::parse(&lines.join("\n"), path)
        .unwrap_or_else(|e| panic!("invariant: a printed recording does not parse: {e}"));
    assert!(
        back.meta == r.meta && back.steps == r.steps,
        "invariant: a recording printed and parsed again changed"
    );
    let d = compare(&r.steps, &r.steps, CompareOptions::default());
    assert!(
        d.is_empty(),
        "invariant: a recording compared with itself differs: {d:?}"
    );
    for st in &r.steps {
        let n = normalize(st);
        assert_eq!(normalize(&n), n, "invariant: normalize is not idempotent");
    }
    if via_file {
        let p = write_scratch("fuzz.rec.jsonl", text);
        let l = Recording::load(&p).expect("invariant: Recording::load refuses its text");
        assert!(l.meta == r.meta && l.steps == r.steps);
    }
}

fn address_map(text: &str) {
    let Ok(m) = loader::image::parse_address_map("fuzz.json", text) else {
        return;
    };
    let printed: IndexMap<&String, String> =
        m.iter().map(|(k, v)| (k, format!("{v:#x}"))).collect();
    let json = serde_json::to_string(&printed).expect("a map serializes");
    let back = loader::image::parse_address_map("fuzz.json", &json)
        .unwrap_or_else(|e| panic!("invariant: a printed address map does not parse: {e}"));
    assert_eq!(
        back, m,
        "invariant: an address map printed and parsed again changed"
    );
}
