//! kmod's tools (insmod, rmmod, lsmod) on the simulated kernels: through the library, several
//! runs against one machine; through the `modloader` binary, its subcommands and its
//! multi-call mode (a symlink named like the tool).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use loader::backend::MODULE_INIT_COMPRESSED_FILE;
use loader::cli::{Console, Machine};
use loader::file::Compression;
use loader::insert::{InsertOptions, Method, insert_module};
use loader::sim_backend::SimBackend;

const PROFILES: [&str; 4] = [
    "debian-6.1-amd64",
    "debian-6.1-arm64",
    "debian-6.12-amd64",
    "debian-6.12-arm64",
];

fn fixtures(profile: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ko")
        .join(profile)
}

fn fixture(profile: &str, name: &str) -> String {
    fixtures(profile).join(name).to_string_lossy().into_owned()
}

fn sim(profile: &str) -> Machine {
    Machine::Sim(Box::new(SimBackend::builtin(profile).unwrap()))
}

/// One tool run against `m` through the library: (exit status, stdout, stderr).
fn tool(m: &mut Machine, name: &str, args: &[&str]) -> (u8, String, String) {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = {
        let mut con = Console::new(name, &mut out, &mut err);
        match name {
            "insmod" => loader::cli::insmod::run(&args, m, &mut con),
            "rmmod" => loader::cli::rmmod::run(&args, m, &mut con),
            "lsmod" => loader::cli::lsmod::run(&args, m, &mut con),
            _ => panic!("no tool {name}"),
        }
    };
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn ok(r: (u8, String, String)) -> String {
    assert_eq!(r.0, 0, "stderr: {}", r.2);
    assert_eq!(r.2, "");
    r.1
}

fn params(m: &Machine, module: &str) -> indexmap::IndexMap<String, String> {
    m.backend().unwrap().modules().unwrap()[module]
        .params
        .clone()
}

fn size(m: &Machine, module: &str) -> String {
    let t = m.backend().unwrap().modules().unwrap();
    t[module]
        .proc_modules
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn insmod_with_parameters_then_lsmod_on_every_profile() {
    for p in PROFILES {
        let mut m = sim(p);
        ok(tool(
            &mut m,
            "insmod",
            &[
                &fixture(p, "mp_types.ko"),
                "p_int=5",
                "p_charp=hello world",
                "p_string=\"a b\"",
                "p_intarr=9,8",
                "p_bool",
            ],
        ));
        let v = params(&m, "mp_types");
        assert_eq!(v["p_int"], "5", "{p}");
        assert_eq!(v["p_charp"], "hello world", "{p}");
        assert_eq!(v["p_string"], "a b", "{p}");
        assert_eq!(v["p_intarr"], "9,8", "{p}");
        assert_eq!(v["p_bool"], "Y", "{p}");
        let out = ok(tool(&mut m, "lsmod", &[]));
        assert_eq!(
            out,
            format!(
                "Module                  Size  Used by\nmp_types {:>19}  0\n",
                size(&m, "mp_types")
            ),
            "{p}"
        );
        // A value the kernel cannot read back is refused before any system call.
        let r = tool(&mut m, "insmod", &[&fixture(p, "mp_lib.ko"), "p=odd\""]);
        assert_eq!(r.0, 1);
        assert!(
            r.2.starts_with("insmod: ERROR: could not gather module options: parameter 'p=odd\"'"),
            "{}",
            r.2
        );
        assert_eq!(r.2.lines().count(), 1);
        // Loaded again: the kernel's EEXIST in strerror's words.
        let r = tool(&mut m, "insmod", &[&fixture(p, "mp_types.ko")]);
        assert_eq!(r.0, 1);
        assert_eq!(
            r.2,
            format!(
                "insmod: ERROR: could not insert module {}: File exists\n",
                fixture(p, "mp_types.ko")
            )
        );
    }
}

#[test]
fn holders_and_rmmod_checks() {
    for p in PROFILES {
        let mut m = sim(p);
        ok(tool(&mut m, "insmod", &[&fixture(p, "mp_export.ko")]));
        ok(tool(&mut m, "insmod", &[&fixture(p, "mp_use.ko")]));
        let out = ok(tool(&mut m, "lsmod", &[]));
        assert_eq!(
            out,
            format!(
                "Module                  Size  Used by\n\
                 mp_use {:>21}  0\n\
                 mp_export {:>18}  1 mp_use\n",
                size(&m, "mp_use"),
                size(&m, "mp_export")
            ),
            "{p}"
        );
        let r = tool(&mut m, "rmmod", &["mp_export"]);
        assert_eq!(
            r,
            (
                1,
                String::new(),
                "rmmod: ERROR: Module mp_export is in use by: mp_use\n".into()
            ),
            "{p}"
        );
        // Forced: no checks, delete_module(O_NONBLOCK|O_TRUNC), which the kernel still refuses
        // while another module uses it.
        let r = tool(&mut m, "rmmod", &["-f", "mp_export"]);
        assert_eq!(r.0, 1);
        assert_eq!(
            r.2,
            "rmmod: ERROR: could not remove 'mp_export': Resource temporarily unavailable\n\
             rmmod: ERROR: could not remove module mp_export: Resource temporarily unavailable\n"
        );
        // Several names: each is tried; one failure makes the status 1.
        let r = tool(&mut m, "rmmod", &["mp_nothing", "mp-use"]);
        assert_eq!(
            r,
            (
                1,
                String::new(),
                "rmmod: ERROR: Module mp_nothing is not currently loaded\n".into()
            )
        );
        // By path: the module of the file name.
        ok(tool(&mut m, "rmmod", &[&fixture(p, "mp_export.ko")]));
        assert_eq!(
            ok(tool(&mut m, "lsmod", &[])),
            "Module                  Size  Used by\n"
        );
        let r = tool(&mut m, "rmmod", &["mp_export"]);
        assert_eq!(
            r.2,
            "rmmod: ERROR: Module mp_export is not currently loaded\n"
        );
        // A builtin module, by modules.builtin.
        let builtin = match &m {
            Machine::Sim(s) => s
                .kernel()
                .profile()
                .builtin_modules()
                .next()
                .unwrap()
                .to_string(),
            _ => unreachable!(),
        };
        let r = tool(&mut m, "rmmod", &[&builtin]);
        assert_eq!(
            r,
            (
                1,
                String::new(),
                format!("rmmod: ERROR: Module {builtin} is builtin.\n")
            )
        );
        let r = tool(&mut m, "rmmod", &[]);
        assert_eq!(
            r,
            (
                1,
                String::new(),
                "rmmod: ERROR: missing module name.\n".into()
            )
        );
        // Builtin code with parameters has a /sys/module directory but no initstate, holders
        // or refcnt: libkmod takes it for a module still coming.
        let r = tool(&mut m, "rmmod", &["printk"]);
        assert_eq!(
            r.2,
            "rmmod: ERROR: could not open '/sys/module/printk/holders': No such file or directory\n\
             rmmod: ERROR: Module unloading is not supported\n"
        );
    }
}

#[test]
fn compressed_fixtures_decompress_where_libkmod_would() {
    for p in PROFILES {
        let kernel_xz = p.contains("6.12");
        for (ext, kind) in [
            ("xz", Compression::Xz),
            ("gz", Compression::Gzip),
            ("zst", Compression::Zstd),
        ] {
            for base in ["mp_types", "mp_lib"] {
                let mut m = sim(p);
                let (kc, warn) = m.kernel_compression();
                assert_eq!(
                    kc,
                    if kernel_xz {
                        Compression::Xz
                    } else {
                        Compression::None
                    }
                );
                assert!(warn.is_none());
                let opts = InsertOptions {
                    kernel_compression: kc,
                    ..InsertOptions::default()
                };
                let path = fixtures(p).join(format!("{base}.ko.{ext}"));
                let params = loader::params::build_str([("p_int", "77")]).unwrap();
                let params = if base == "mp_types" {
                    params
                } else {
                    c"".into()
                };
                let done = insert_module(m.backend_mut().unwrap(), &path, &params, &opts)
                    .unwrap_or_else(|e| panic!("{p} {}: {e}", path.display()));
                assert_eq!(done.compression, kind);
                if kernel_xz && kind == Compression::Xz {
                    assert_eq!(
                        done.method,
                        Method::Finit {
                            flags: MODULE_INIT_COMPRESSED_FILE
                        },
                        "{p} {ext}: in-kernel decompression"
                    );
                } else {
                    let plain = std::fs::read(fixtures(p).join(format!("{base}.ko"))).unwrap();
                    assert_eq!(
                        done.method,
                        Method::Init {
                            len: plain.len(),
                            stripped: false
                        },
                        "{p} {ext}: userspace decompression"
                    );
                }
                let t = m.backend().unwrap().modules().unwrap();
                assert_eq!(t[base].initstate, "live");
                if base == "mp_types" {
                    assert_eq!(t[base].params["p_int"], "77");
                }
            }
        }
    }
}

#[test]
fn plain_files_go_through_finit_module() {
    for p in PROFILES {
        let mut m = sim(p);
        let opts = InsertOptions {
            kernel_compression: m.kernel_compression().0,
            ..InsertOptions::default()
        };
        let done = insert_module(
            m.backend_mut().unwrap(),
            &fixtures(p).join("mp_lib.ko"),
            c"",
            &opts,
        )
        .unwrap();
        assert_eq!(done.method, Method::Finit { flags: 0 });
    }
}

/// gzip-compresses a fixture into a temporary file (to reach `init_module` with force flags).
fn gzipped(dir: &Path, profile: &str, name: &str) -> PathBuf {
    use std::io::Write;
    let bytes = std::fs::read(fixtures(profile).join(name)).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&bytes).unwrap();
    let path = dir.join(format!("{profile}-{name}.gz"));
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    path
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("modloader-tools-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn force_flags_on_the_broken_variants() {
    let dir = temp_dir("force");
    for p in PROFILES {
        let vermagic = fixture(p, "bad_vermagic_flags.ko");
        let crc = fixture(p, "bad_crc.ko");
        let mut m = sim(p);
        let r = tool(&mut m, "insmod", &[&vermagic]);
        assert_eq!(
            r.2,
            format!("insmod: ERROR: could not insert module {vermagic}: Invalid module format\n"),
            "{p}"
        );
        let r = tool(&mut m, "insmod", &[&crc]);
        assert_eq!(
            r.2,
            format!("insmod: ERROR: could not insert module {crc}: Invalid parameters\n"),
            "{p}"
        );
        // Only the matching force flag helps.
        let r = tool(&mut m, "insmod", &["--force-vermagic", &crc]);
        assert_eq!(r.0, 1, "{p}");
        let r = tool(&mut m, "insmod", &["--force-modversion", &vermagic]);
        assert_eq!(r.0, 1, "{p}");
        // finit_module with MODULE_INIT_IGNORE_VERMAGIC | MODULE_INIT_IGNORE_MODVERSIONS.
        ok(tool(&mut m, "insmod", &["-f", &vermagic]));
        ok(tool(&mut m, "insmod", &["--force-modversion", &crc]));
        let t = m.backend().unwrap().modules().unwrap();
        assert!(t["mp_lib"].taint.contains('F'), "{p}: {:?}", t["mp_lib"]);
        assert!(
            t["mp_types"].taint.contains('F'),
            "{p}: {:?}",
            t["mp_types"]
        );

        // init_module (a gzip file, decompressed in userspace): the image is stripped.
        let mut m = sim(p);
        let gz_vermagic = gzipped(&dir, p, "bad_vermagic_flags.ko");
        let gz_crc = gzipped(&dir, p, "bad_crc.ko");
        let g = gz_vermagic.to_string_lossy().into_owned();
        let r = tool(&mut m, "insmod", &[&g]);
        assert_eq!(
            r.2,
            format!("insmod: ERROR: could not insert module {g}: Invalid module format\n")
        );
        let kc = m.kernel_compression().0;
        for (path, opts) in [
            (
                &gz_vermagic,
                InsertOptions {
                    force_vermagic: true,
                    force_modversion: false,
                    kernel_compression: kc,
                },
            ),
            (
                &gz_crc,
                InsertOptions {
                    force_vermagic: false,
                    force_modversion: true,
                    kernel_compression: kc,
                },
            ),
        ] {
            let done = insert_module(m.backend_mut().unwrap(), path, c"", &opts)
                .unwrap_or_else(|e| panic!("{p} {}: {e}", path.display()));
            assert!(
                matches!(done.method, Method::Init { stripped: true, .. }),
                "{p}: {done:?}"
            );
        }
        let t = m.backend().unwrap().modules().unwrap();
        assert!(
            t.contains_key("mp_lib") && t.contains_key("mp_types"),
            "{p}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn modloader(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_modloader"))
        .args(args)
        .output()
        .unwrap()
}

/// Exactly one line on stderr, nothing on stdout, status 1.
fn one_error_line(o: &std::process::Output, expected: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(o.stdout.is_empty());
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, format!("{expected}\n"));
}

#[test]
fn errors_are_one_clear_line() {
    let dir = temp_dir("errors");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "just some text, not a module\n").unwrap();
    let p = "debian-6.1-amd64";
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["insmod".into(), "/nonexistent/x.ko".into()],
            "insmod: ERROR: could not load module /nonexistent/x.ko: No such file or directory"
                .into(),
        ),
        (
            vec!["insmod".into(), dir.to_string_lossy().into()],
            format!(
                "insmod: ERROR: could not insert module {}: Is a directory",
                dir.display()
            ),
        ),
        (
            vec!["insmod".into(), text.to_string_lossy().into()],
            format!(
                "insmod: ERROR: could not insert module {}: Invalid module format",
                text.display()
            ),
        ),
        (
            vec!["insmod".into(), fixture(p, "empty.ko")],
            format!(
                "insmod: ERROR: could not insert module {}: Invalid parameters",
                fixture(p, "empty.ko")
            ),
        ),
        (
            vec!["insmod".into(), fixture(p, "bad_otherarch.ko")],
            format!(
                "insmod: ERROR: could not insert module {}: Invalid module format",
                fixture(p, "bad_otherarch.ko")
            ),
        ),
        (
            vec![
                "--kernel".into(),
                "debian-9-sparc".into(),
                "insmod".into(),
                fixture(p, "mp_lib.ko"),
            ],
            "insmod: ERROR: unknown kernel 'debian-9-sparc': give one of debian-6.1-amd64, \
             debian-6.1-arm64, debian-6.12-amd64, debian-6.12-arm64, a linux-headers-* \
             directory, or self"
                .into(),
        ),
        (
            vec!["insmod".into()],
            "insmod: ERROR: missing filename.".into(),
        ),
        (
            vec!["insmod".into(), "-x".into()],
            "insmod: invalid option -- 'x'".into(),
        ),
        (
            vec!["rmmod".into(), "mp_lib".into()],
            "rmmod: ERROR: Module mp_lib is not currently loaded".into(),
        ),
        (
            vec!["lsmod".into(), "extra".into()],
            "lsmod: ERROR: too many arguments provided.".into(),
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        one_error_line(&modloader(&args), &expected);
    }
    // The other architecture's module on every profile.
    for (p, other) in [
        ("debian-6.1-amd64", "debian-6.1-arm64"),
        ("debian-6.12-arm64", "debian-6.12-amd64"),
    ] {
        let f = fixture(other, "mp_lib.ko");
        one_error_line(
            &modloader(&["--kernel", p, "insmod", &f]),
            &format!("insmod: ERROR: could not insert module {f}: Invalid module format"),
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn subcommands_of_the_binary() {
    let p = "debian-6.12-amd64";
    let o = modloader(&[
        "--kernel",
        p,
        "insmod",
        &fixture(p, "mp_types.ko.xz"),
        "p_int=1",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let o = modloader(&["lsmod"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, b"Module                  Size  Used by\n");
    let o = modloader(&["insmod", "-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Usage:\n\tinsmod [options] filename"));
    // The scenario and depmod subcommands take no tool options.
    let o = modloader(&["--backend", "sim", "depmod", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2));
}

#[cfg(unix)]
#[test]
fn multi_call_through_symlinks() {
    let dir = temp_dir("multicall");
    let exe = Path::new(env!("CARGO_BIN_EXE_modloader"));
    for name in ["insmod", "rmmod", "lsmod", "modinfo"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(exe, &link).unwrap();
    }
    let run = |name: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(dir.join(name));
        c.args(args)
            .env_remove("MODLOADER_BACKEND")
            .env_remove("MODLOADER_KERNEL");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run("lsmod", &[], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, b"Module                  Size  Used by\n");
    one_error_line(&run("insmod", &[], &[]), "insmod: ERROR: missing filename.");
    one_error_line(
        &run("rmmod", &["mp_lib"], &[]),
        "rmmod: ERROR: Module mp_lib is not currently loaded",
    );
    // kmod's syntax, not modloader's: no subcommand, options anywhere.
    let p = "debian-6.12-arm64";
    let o = run(
        "insmod",
        &[&fixture(p, "mp_types.ko"), "p_charp=x y", "-v"],
        &[("MODLOADER_KERNEL", p)],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run("insmod", &["--version"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("modloader version "));
    one_error_line(
        &run("lsmod", &[], &[("MODLOADER_BACKEND", "vm")]),
        "lsmod: ERROR: MODLOADER_BACKEND=vm: give sim or kernel",
    );
    one_error_line(
        &run("lsmod", &[], &[("MODLOADER_KERNEL", "nope")]),
        "lsmod: ERROR: unknown kernel 'nope': give one of debian-6.1-amd64, debian-6.1-arm64, \
         debian-6.12-amd64, debian-6.12-arm64, a linux-headers-* directory, or self",
    );
    // The modinfo hook answers, without panicking.
    let o = run("modinfo", &["x"], &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `--kernel self` makes a kernel from the module itself: a module whose CRCs no Debian kernel
/// accepts loads there, while the real profile refuses it.
#[test]
fn kernel_self_loads_a_module_no_profile_accepts() {
    let bin = env!("CARGO_BIN_EXE_modloader");
    let ko = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ko/debian-6.1-arm64/bad_crc.ko");
    let run = |kernel: &str| {
        std::process::Command::new(bin)
            .args(["--kernel", kernel, "insmod"])
            .arg(&ko)
            .output()
            .map(|o| {
                (
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                )
            })
            .unwrap_or((None, String::new()))
    };
    assert_eq!(run("self"), (Some(0), String::new()));
    let (code, err) = run("debian-6.1-arm64");
    assert_eq!(code, Some(1));
    assert!(err.contains("could not insert module"), "{err}");
    let out = std::process::Command::new(bin)
        .args(["--kernel", "self", "lsmod"])
        .output()
        .map(|o| o.status.code())
        .unwrap_or(None);
    assert_eq!(out, Some(1));
}
