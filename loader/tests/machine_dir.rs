//! A simulated machine that lasts across processes (`--machine DIR`): what one command does,
//! the next one sees; concurrent processes on one directory are serialized; damaged
//! directories are one-line errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use loader::machine_dir::MachineDir;
use sim::errno::Errno;
use sim::kernel::Kernel;
use sim::profile::Profile;

fn fixtures(kernel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ko")
        .join(kernel)
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("machine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn modloader(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_modloader"))
        .args(args)
        .env_remove("MODSIM_MACHINE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_machine_lasts_across_commands() {
    let m = scratch("readme");
    let m = m.to_str().unwrap();
    let ko = fixtures("debian-6.12-amd64");
    let export = ko.join("mp_export.ko");
    let use_ = ko.join("mp_use.ko");
    let (export, use_) = (export.to_str().unwrap(), use_.to_str().unwrap());
    assert_eq!(
        modloader(&[
            "--machine",
            m,
            "--kernel",
            "debian-6.12-amd64",
            "insmod",
            export
        ])
        .0,
        0
    );
    assert_eq!(modloader(&["--machine", m, "insmod", use_]).0, 0);
    let (code, out, _) = modloader(&["--machine", m, "lsmod"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Module                  Size  Used by\n\
         mp_use                 12288  0\n\
         mp_export              12288  1 mp_use\n"
    );
    // As on the real kernel (kmod's message).
    let (code, _, err) = modloader(&["--machine", m, "rmmod", "mp_export"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "rmmod: ERROR: Module mp_export is in use by: mp_use\n")
    );
    assert_eq!(
        modloader(&["--machine", m, "rmmod", "mp_use", "mp_export"]).0,
        0
    );
    let (_, out, _) = modloader(&["--machine", m, "lsmod"]);
    assert_eq!(out, "Module                  Size  Used by\n");
    // The kernel log and the taints carried over: the once-per-boot lines were printed once.
    let (code, out, _) = modloader(&["--machine", m, "--kernel", "debian-6.12-amd64", "shell"]);
    assert_eq!(code, 0, "{out}");
    // The environment variable names the machine as --machine does; the multi-call tools too.
    let out = Command::new(env!("CARGO_BIN_EXE_modloader"))
        .args(["lsmod"])
        .env("MODSIM_MACHINE", m)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn a_machine_directory_that_cannot_be_used_is_one_line() {
    let base = scratch("bad");
    std::fs::create_dir_all(&base).unwrap();
    let cases: Vec<(PathBuf, &str)> = {
        let foreign = base.join("foreign");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "x").unwrap();
        let corrupt = base.join("corrupt");
        std::fs::create_dir_all(&corrupt).unwrap();
        std::fs::write(
            corrupt.join("state"),
            b"modsim-machine\n\0\x02\0\0\0garbage",
        )
        .unwrap();
        let newer = base.join("newer");
        std::fs::create_dir_all(&newer).unwrap();
        std::fs::write(newer.join("state"), b"modsim-machine\n\0\x09\0\0\0").unwrap();
        let notamachine = base.join("notamachine");
        std::fs::create_dir_all(&notamachine).unwrap();
        std::fs::write(notamachine.join("state"), b"hello").unwrap();
        vec![
            (foreign, "not a modsim machine directory"),
            (corrupt, "corrupt"),
            (newer, "newer modsim"),
            (notamachine, "not a modsim machine state"),
            (base.join("missing"), "give --kernel to make one"),
        ]
    };
    for (dir, what) in cases {
        let (code, out, err) = modloader(&["--machine", dir.to_str().unwrap(), "lsmod"]);
        assert_eq!(code, 1, "{}", dir.display());
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(what), "{}: {err}", dir.display());
    }
    assert!(
        !base.join("missing").exists(),
        "a failed open made the directory"
    );
}

const STRESS_PROCS: usize = 8;
const STRESS_OPS: usize = 1000;

/// One of the stress test's processes (run by `eight_processes_share_one_machine_directory`).
#[test]
#[ignore = "a child process of eight_processes_share_one_machine_directory"]
fn stress_child() {
    let Some(dir) = std::env::var_os("MODSIM_STRESS_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let seed: u64 = std::env::var("MODSIM_STRESS_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let kernel = "debian-6.1-amd64";
    let ko = |n: &str| std::fs::read(fixtures(kernel).join(n)).unwrap();
    let (export, use_, lib) = (ko("mp_export.ko"), ko("mp_use.ko"), ko("mp_lib.ko"));
    let mut rng = seed | 1;
    let mut counts = [0i64; 3];
    for _ in 0..STRESS_OPS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let (md, mut k) = MachineDir::open(&dir, None).expect("the machine opens");
        let loaded = |k: &Kernel, n: &str| k.module(n).is_some();
        let (had_export, had_use, had_lib) = (
            loaded(&k, "mp_export"),
            loaded(&k, "mp_use"),
            loaded(&k, "mp_lib"),
        );
        let op = rng % 6;
        let (r, want, slot, delta) = match op {
            0 => (
                k.init_module(&export, Some(b"")),
                if had_export {
                    Some(Errno::EEXIST)
                } else {
                    None
                },
                0,
                1,
            ),
            1 => (
                k.init_module(&use_, Some(b"")),
                if had_use {
                    Some(Errno::EEXIST)
                } else if !had_export {
                    Some(Errno::ENOENT)
                } else {
                    None
                },
                1,
                1,
            ),
            2 => (
                k.init_module(&lib, Some(b"")),
                if had_lib { Some(Errno::EEXIST) } else { None },
                2,
                1,
            ),
            3 => (
                k.delete_module(b"mp_export", 0o4000),
                if !had_export {
                    Some(Errno::ENOENT)
                } else if had_use {
                    Some(Errno::EWOULDBLOCK)
                } else {
                    None
                },
                0,
                -1,
            ),
            4 => (
                k.delete_module(b"mp_use", 0o4000),
                if had_use { None } else { Some(Errno::ENOENT) },
                1,
                -1,
            ),
            _ => (
                k.delete_module(b"mp_lib", 0o4000),
                if had_lib { None } else { Some(Errno::ENOENT) },
                2,
                -1,
            ),
        };
        assert_eq!(r.as_ref().err().map(|e| e.errno), want, "op {op}: {r:?}");
        if r.is_ok() {
            counts[slot] += delta;
        }
        md.save(&k).expect("the machine saves");
    }
    std::fs::write(
        dir.join(format!("counts-{seed}")),
        format!("{} {} {}", counts[0], counts[1], counts[2]),
    )
    .unwrap();
}

#[test]
fn eight_processes_share_one_machine_directory() {
    let dir = scratch("stress");
    let profile = Profile::builtin("debian-6.1-amd64").unwrap();
    drop(MachineDir::open(&dir, Some(profile.into())).unwrap());
    let children: Vec<_> = (0..STRESS_PROCS)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "stress_child",
                    "--ignored",
                    "--test-threads",
                    "1",
                ])
                .env("MODSIM_STRESS_DIR", &dir)
                .env("MODSIM_STRESS_SEED", (0x5eed_0000 + i * 7919).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a process failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing lost: what the processes loaded less what they unloaded is what is loaded.
    let mut net = [0i64; 3];
    for i in 0..STRESS_PROCS {
        let text = std::fs::read_to_string(dir.join(format!("counts-{}", 0x5eed_0000 + i * 7919)))
            .expect("every process reported");
        for (n, v) in net.iter_mut().zip(text.split(' ')) {
            *n += v.parse::<i64>().unwrap();
        }
    }
    let (_md, k) = MachineDir::open(&dir, None).unwrap();
    for (n, name) in net.iter().zip(["mp_export", "mp_use", "mp_lib"]) {
        assert_eq!(*n, i64::from(k.module(name).is_some()), "{name}");
    }
    // The machine is as consistent as a saved one must be (Kernel::restore checked it).
    drop(_md);
    std::fs::remove_dir_all(&dir).ok();
}
