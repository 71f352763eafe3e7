//! Concurrent loads of the same module, replayed on the simulator and compared with what the
//! real kernels did (tests/concurrency/recorded/<kernel>.jsonl, made by
//! tests/concurrency/record.sh; the format is in tests/concurrency/README.md).
//!
//! A case's first load (A) is started and stopped in its init (`Progress::InInit`), as the
//! real `mp_hold` sleeps in `msleep`; the processes the guest started while A was COMING make
//! their calls then; A's init returns its `init_ret`; the waiting calls go on; the processes
//! that ran after everything else run last. Errnos, whether a call waited, `/proc/modules`
//! while COMING and after, the instance's parameters after and the kernel log are compared.
//! The `going` processes (a load racing A's failure path) start while A's module is GOING,
//! between `finish_init_steps` and `free_failed`.

use serde_json::Value;
use sim::kernel::{FileKey, InitEnd, Kernel, Progress, SysResult};
use sim::profile::Profile;

fn recorded(kernel: &str) -> Vec<Value> {
    let path = modsim_tests::repo().join(format!("tests/concurrency/recorded/{kernel}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn address_zeroed(line: &str) -> String {
    line.split(' ')
        .map(|w| if w.starts_with("0x") { "0x0" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn errno_name(r: &SysResult) -> Option<String> {
    r.as_ref().err().map(|e| e.errno.name().to_string())
}

/// Start one process's call.
fn start(k: &mut Kernel, p: &Value, image: &[u8]) -> Progress {
    let args = p["args"].as_str().unwrap_or("").as_bytes();
    match p["call"].as_str().unwrap() {
        "init_module" => k.start_init_module(image, Some(args)),
        "finit_module" => {
            let ino = p["ino"]
                .as_u64()
                .expect("a finit_module has the file's inode");
            let key = FileKey { dev: 0, ino };
            k.start_finit_module_bytes(image.to_vec(), Some(args), 0, Some(key))
        }
        "delete_module" => {
            let name = p["name"].as_str().unwrap().as_bytes();
            let flags = p["flags"].as_u64().unwrap() as u32;
            Progress::Done(k.delete_module(name, flags))
        }
        other => panic!("unknown call {other}"),
    }
}

fn init_ret(p: &Value) -> i32 {
    p["args"]
        .as_str()
        .unwrap_or("")
        .split(' ')
        .find_map(|a| a.strip_prefix("init_ret="))
        .map_or(0, |v| v.parse().unwrap())
}

fn replay(kernel: &str) -> usize {
    let profile = Profile::builtin(kernel).unwrap();
    let image = std::fs::read(modsim_tests::fixtures(kernel).join("mp_hold.ko")).unwrap();
    let cases = recorded(kernel);
    let meta = &cases[0]["meta"];
    assert_eq!(meta["kernel"], kernel);
    let mut k = Kernel::new(profile);
    // The warmup: the once-per-boot lines.
    k.init_module(&image, Some(b"")).unwrap();
    let warmup: Vec<String> = k.take_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        serde_json::json!(warmup),
        meta["warmup_log"],
        "{kernel}: warmup"
    );
    k.delete_module(b"mp_hold", 0o4000).unwrap();
    k.take_log();

    let mut compared = 0;
    for case in &cases[1..] {
        let name = case["case"].as_str().unwrap();
        let procs = case["procs"].as_array().unwrap();
        let a = &procs[0];
        assert_eq!(a["when"], "start");
        let at = |what: &str| format!("{kernel} {name}: {what}");

        let pending = match start(&mut k, a, &image) {
            Progress::InInit(p) => p,
            other => panic!("{}", at(&format!("A is not in init: {other:?}"))),
        };
        let line = k
            .module("mp_hold")
            .map(|m| address_zeroed(&m.proc_modules_line()));
        assert_eq!(
            line.as_deref(),
            case["coming"]["proc_modules"].as_str(),
            "{}",
            at("/proc/modules while COMING")
        );
        // The processes forked while A was in init.
        let mut results: Vec<(usize, SysResult, bool)> = Vec::new();
        let mut waiting = Vec::new();
        for (i, p) in procs.iter().enumerate().skip(1) {
            match p["when"].as_str().unwrap() {
                "loading" => match start(&mut k, p, &image) {
                    Progress::Done(r) => results.push((i, r, false)),
                    Progress::Waiting(w) => waiting.push((i, w)),
                    Progress::InInit(_) => panic!("{}", at("a second instance in init")),
                },
                "after" | "going" => {}
                other => panic!("{}", at(&format!("unknown when {other}"))),
            }
        }
        let ra = match k.finish_init_steps(pending, init_ret(a)) {
            InitEnd::Done(r) => r,
            InitEnd::Going(failed) => {
                let line = k.module("mp_hold").map(|m| m.proc_modules_line());
                assert!(
                    line.is_some_and(|l| l.contains(" Unloading ")),
                    "{}",
                    at("GOING")
                );
                for (i, p) in procs.iter().enumerate() {
                    if p["when"] == "going" {
                        assert_eq!(p["saw"], "Unloading", "{}", at("what B saw"));
                        let progress = start(&mut k, p, &image);
                        let r = k.run_to_end(progress);
                        results.push((i, r, false));
                    }
                }
                k.free_failed(failed)
            }
        };
        results.push((0, ra, false));
        for (i, w) in waiting {
            assert!(
                k.is_ready(&w),
                "{}",
                at("a waiter is not ready after A's init")
            );
            match k.resume(w) {
                Progress::Done(r) => results.push((i, r, true)),
                other => panic!("{}", at(&format!("resume gave {other:?}"))),
            }
        }
        for (i, p) in procs.iter().enumerate() {
            if p["when"] == "after" {
                let progress = start(&mut k, p, &image);
                let r = k.run_to_end(progress);
                results.push((i, r, false));
            }
        }
        for (i, r, waited) in &results {
            let p = &procs[*i];
            assert_eq!(
                errno_name(r).as_deref(),
                p["errno"].as_str(),
                "{}",
                at(&format!("{}'s {}", p["who"], p["call"]))
            );
            if let Some(w) = p["waited"].as_bool() {
                assert_eq!(*waited, w, "{}", at(&format!("{} waited", p["who"])));
            }
            compared += 1;
        }
        // The state after.
        let after = &case["after"];
        let m = k.module("mp_hold").cloned();
        assert_eq!(
            m.as_ref()
                .map(|m| address_zeroed(&m.proc_modules_line()))
                .as_deref(),
            after["proc_modules"].as_str(),
            "{}",
            at("/proc/modules after")
        );
        if let Some(m) = &m {
            for p in ["hold_ms", "init_ret"] {
                let v = m
                    .params
                    .iter()
                    .find(|(n, _)| n == p)
                    .map(|(_, v)| v.as_str());
                assert_eq!(v, after[p].as_str(), "{}", at(p));
            }
        }
        let log: Vec<String> = k.take_log().into_iter().map(|l| l.text).collect();
        assert_eq!(serde_json::json!(log), case["log"], "{}", at("kernel log"));
        if m.is_some() {
            k.delete_module(b"mp_hold", 0o4000).unwrap();
        }
        assert_eq!(k.memory().used(), 0, "{}", at("memory after the cleanup"));
        k.take_log();
    }
    compared
}

#[test]
fn concurrent_loads_match_the_real_kernels() {
    let mut total = 0;
    for kernel in modsim_tests::KERNELS {
        total += replay(kernel);
    }
    // 19 cases, 2-4 calls each, on four kernels, less the two racing calls each.
    assert!(total >= 4 * 40, "only {total} calls compared");
}
