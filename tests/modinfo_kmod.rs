//! `modloader modinfo` against kmod's own `modinfo` (Debian's kmod 30): the same arguments give
//! the same standard output, byte for byte, and the same exit status.
//!
//! - Every fixture file of the four kernels (good modules, broken variants, compressed copies,
//!   `VARIANTS.tsv`), each alone and all of a kernel's in one call, with no option, `-F vermagic`,
//!   `-F signer`, `-0` and `-p`.
//! - 50 of Debian's signed 6.1 amd64 modules (every Nth of the sorted list), same options; skipped
//!   with a message when `target/lab/root` has not been fetched.
//! - Lookups by name and alias in a module directory indexed by kmod's own depmod.
//!
//! `.ko.gz` files: Debian's kmod is built without zlib, so it does not take them for module
//! files and answers "not found"; [`Features::DEBIAN_KMOD_30`] is compared with that byte for
//! byte, and the default [`Features::ALL`] (which reads them) with what kmod prints for the
//! `.ko.xz` copy of the same module (the file name aside).
//!
//! Everything is skipped with a message when kmod's modinfo is not installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use loader::cli::modinfo::{Features, run_with};
use modsim_tests::{KERNELS, file_name, fixtures, repo};

/// The option sets every file is run with.
const OPTIONS: [&[&str]; 5] = [
    &[],
    &["-F", "vermagic"],
    &["-F", "signer"],
    &["-0"],
    &["-p"],
];

/// How many Debian modules are compared.
const DEBIAN_SAMPLE: usize = 50;

fn kmod_modinfo() -> Option<PathBuf> {
    ["/usr/sbin/modinfo", "/sbin/modinfo"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn kmod_depmod() -> Option<PathBuf> {
    ["/usr/sbin/depmod", "/sbin/depmod"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// What one run printed.
#[derive(PartialEq, Eq)]
struct Outcome {
    stdout: Vec<u8>,
    /// The exit status; `None` when the process was killed by a signal.
    code: Option<i32>,
}

fn kmod(modinfo: &Path, args: &[OsString]) -> Outcome {
    match Command::new(modinfo).args(args).output() {
        Ok(o) => Outcome {
            stdout: o.stdout,
            code: o.status.code(),
        },
        Err(e) => panic!("running {}: {e}", modinfo.display()),
    }
}

fn ours(args: &[OsString], features: Features) -> Outcome {
    let argv: Vec<OsString> = std::iter::once(OsString::from("modinfo"))
        .chain(args.iter().cloned())
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(&argv, &mut out, &mut err, features);
    Outcome {
        stdout: out,
        code: Some(code),
    }
}

/// The tally of a comparison and its first differences.
#[derive(Default)]
struct Tally {
    identical: usize,
    differ: usize,
    reports: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: &str, want: &Outcome, got: &Outcome) {
        if want == got {
            self.identical += 1;
            return;
        }
        self.differ += 1;
        if self.reports.len() >= 10 {
            return;
        }
        let (w, g) = (
            String::from_utf8_lossy(&want.stdout),
            String::from_utf8_lossy(&got.stdout),
        );
        let mut r = format!(
            "{what}: exit status kmod {:?}, ours {:?}",
            want.code, got.code
        );
        let (wl, gl): (Vec<&str>, Vec<&str>) = (w.split('\n').collect(), g.split('\n').collect());
        if let Some(i) = (0..wl.len().max(gl.len())).find(|&i| wl.get(i) != gl.get(i)) {
            r.push_str(&format!(
                "\n    first difference at line {}:\n    kmod: {:?}\n    ours: {:?}",
                i + 1,
                wl.get(i).copied().unwrap_or("<end>"),
                gl.get(i).copied().unwrap_or("<end>")
            ));
        }
        self.reports.push(r);
    }

    fn finish(&self, label: &str) {
        println!(
            "{label}: {} identical, {} differ",
            self.identical, self.differ
        );
        for r in &self.reports {
            println!("  {r}");
        }
        assert_eq!(
            self.differ, 0,
            "{label}: modinfo output differs from kmod's"
        );
    }
}

fn os(args: &[&str], files: &[&Path]) -> Vec<OsString> {
    args.iter()
        .map(OsString::from)
        .chain(files.iter().map(|f| f.as_os_str().to_owned()))
        .collect()
}

/// Compares every option set on one list of files.
fn compare_files(modinfo: &Path, files: &[&Path], tally: &mut Tally) {
    for opts in OPTIONS {
        let args = os(opts, files);
        let what = format!(
            "modinfo {} {}",
            opts.join(" "),
            files
                .iter()
                .map(|f| file_name(f))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let want = kmod(modinfo, &args);
        let gz = files.iter().any(|f| f.to_string_lossy().ends_with(".gz"));
        tally.check(
            &format!("{what} [Debian features]"),
            &want,
            &ours(&args, Features::DEBIAN_KMOD_30),
        );
        if !gz {
            tally.check(&what, &want, &ours(&args, Features::ALL));
        }
    }
}

/// A `.ko.gz` read with gzip support: what kmod prints for the `.ko.xz` copy, named `.ko.gz`.
fn compare_gzip(modinfo: &Path, gz: &Path, tally: &mut Tally) {
    let gz_name = gz.to_string_lossy().into_owned();
    let Some(stem) = gz_name.strip_suffix(".gz") else {
        return;
    };
    let xz = PathBuf::from(format!("{stem}.xz"));
    assert!(
        xz.exists(),
        "{}: no .ko.xz copy to compare with",
        gz.display()
    );
    let xz_name = xz.to_string_lossy().into_owned();
    for opts in OPTIONS {
        let mut want = kmod(modinfo, &os(opts, &[&xz]));
        want.stdout = String::from_utf8_lossy(&want.stdout)
            .replace(&xz_name, &gz_name)
            .into_bytes();
        let got = ours(&os(opts, &[gz]), Features::ALL);
        let what = format!("modinfo {} {} [gzip]", opts.join(" "), file_name(gz));
        tally.check(&what, &want, &got);
    }
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn fixtures_like_kmod() {
    let Some(modinfo) = kmod_modinfo() else {
        println!("SKIPPED: kmod's modinfo is not installed (/usr/sbin/modinfo)");
        return;
    };
    let mut tally = Tally::default();
    for k in KERNELS {
        let files = sorted_files(&fixtures(k));
        assert!(!files.is_empty(), "no fixtures for {k}");
        for f in &files {
            compare_files(&modinfo, &[f], &mut tally);
            if f.to_string_lossy().ends_with(".ko.gz") {
                compare_gzip(&modinfo, f, &mut tally);
            }
        }
        // All at once: the errors of some do not stop the others; the status is the worst.
        let all: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        compare_files(&modinfo, &all, &mut tally);
        // The fixture directory itself is no module file, and a name nothing indexes.
        compare_files(&modinfo, &[&fixtures(k)], &mut tally);
    }
    tally.finish("fixtures");
}

/// `ROOT/lib/modules/<release>/kernel` of the fetched Debian 6.1 amd64 tree.
fn debian_tree() -> Option<PathBuf> {
    let modules = repo().join("target/lab/root/debian-6.1-amd64/lib/modules");
    let release = sorted_files(&modules).into_iter().next()?;
    let kernel = release.join("kernel");
    kernel.is_dir().then_some(kernel)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for p in sorted_files(dir) {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn debian_modules_like_kmod() {
    let Some(modinfo) = kmod_modinfo() else {
        println!("SKIPPED: kmod's modinfo is not installed (/usr/sbin/modinfo)");
        return;
    };
    let Some(kernel) = debian_tree() else {
        println!(
            "SKIPPED: Debian's module tree is absent (target/lab/root/debian-6.1-amd64/lib/modules/*/kernel)"
        );
        return;
    };
    let mut all = Vec::new();
    walk(&kernel, &mut all);
    all.sort();
    assert!(all.len() >= DEBIAN_SAMPLE, "only {} modules", all.len());
    let step = all.len() / DEBIAN_SAMPLE;
    let sample: Vec<&PathBuf> = all.iter().step_by(step).take(DEBIAN_SAMPLE).collect();
    let mut tally = Tally::default();
    for f in &sample {
        compare_files(&modinfo, &[f], &mut tally);
    }
    // The signature fields one by one, on a few.
    for f in sample.iter().take(5) {
        for field in ["sig_id", "sig_key", "sig_hashalgo", "signature"] {
            let args = os(&["-F", field], &[f]);
            let what = format!("modinfo -F {field} {}", file_name(f));
            tally.check(&what, &kmod(&modinfo, &args), &ours(&args, Features::ALL));
        }
    }
    tally.finish(&format!(
        "Debian 6.1 amd64: {} of {} modules (every {step}th)",
        sample.len(),
        all.len()
    ));
}

/// Module names, aliases, symbols and built-in modules, looked up in indexes kmod's depmod
/// writes for a small module directory.
#[test]
fn lookups_like_kmod() {
    let (Some(modinfo), Some(depmod)) = (kmod_modinfo(), kmod_depmod()) else {
        println!("SKIPPED: kmod's modinfo or depmod is not installed");
        return;
    };
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("modinfo-lookups");
    let _ = std::fs::remove_dir_all(&root);
    let release = "6.1.0-modsim";
    let dir = root.join("lib/modules").join(release);
    let extra = dir.join("kernel/extra");
    std::fs::create_dir_all(&extra).unwrap_or_else(|e| panic!("{}: {e}", extra.display()));
    let src = fixtures("debian-6.1-amd64");
    for m in ["mp_lib", "mp_use", "mp_types", "mp_export"] {
        let to = extra.join(format!("{m}.ko"));
        std::fs::copy(src.join(format!("{m}.ko")), &to)
            .unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    }
    // A compressed module whose file name has a dash (its module name has an underscore).
    std::fs::copy(src.join("mp_types.ko.xz"), extra.join("mp-dash.ko.xz"))
        .unwrap_or_else(|e| panic!("mp-dash.ko.xz: {e}"));
    let mut names = vec![
        "mp_lib",
        "mp-lib",
        "mp_types.ko",
        "mp_dash",
        "mp-dash",
        "symbol:mp_lib_fn",
        "symbol:mp_export_gpl",
        "builtin_one",
        "builtin-two",
        "fake:thing42",
        "fake:other",
        "nosuch",
        "bad]alias",
    ];
    // A few of Debian's modules, for real aliases (patterns) and signatures.
    let debian = debian_tree();
    if let Some(kernel) = &debian {
        for rel in [
            "drivers/net/ethernet/intel/e1000/e1000.ko",
            "drivers/net/ethernet/intel/e1000e/e1000e.ko",
            "drivers/usb/storage/usb-storage.ko",
        ] {
            let from = kernel.join(rel);
            if from.exists() {
                let to = dir.join("kernel").join(rel);
                if let Some(parent) = to.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
            }
        }
        names.extend([
            "e1000",
            "pci:v00008086d0000100Esv00001234sd00005678bc02sc00i00",
            "pci:v00008086d000010D3sv00001234sd00005678bc02sc00i00",
            "usb_storage",
            "usb:v0000p0000d0000dc00dsc00dp00ic08isc06ip50in00",
        ]);
    } else {
        println!("(Debian's module tree is absent: lookups of real aliases skipped)");
    }
    std::fs::write(
        dir.join("modules.builtin"),
        "kernel/fake/builtin_one.ko\nkernel/fake/builtin_two.ko\n",
    )
    .unwrap_or_else(|e| panic!("modules.builtin: {e}"));
    std::fs::write(
        dir.join("modules.builtin.modinfo"),
        "builtin_one.license=GPL\0builtin_one.alias=fake:thing*\0\
         builtin_one.parm=level:how much\0builtin_one.parmtype=level:int\0\
         builtin_two.description=no alias\0",
    )
    .unwrap_or_else(|e| panic!("modules.builtin.modinfo: {e}"));
    let st = Command::new(&depmod)
        .arg("-b")
        .arg(&root)
        .arg(release)
        .output()
        .unwrap_or_else(|e| panic!("running depmod: {e}"));
    assert!(
        st.status.success(),
        "depmod failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let base: Vec<OsString> = [
        "-b".into(),
        root.clone().into_os_string(),
        "-k".into(),
        release.into(),
    ]
    .into_iter()
    .collect();
    let mut tally = Tally::default();
    for opts in [
        &[][..],
        &["-m"],
        &["-F", "filename"],
        &["-F", "name"],
        &["-p"],
        &["-0"],
    ] {
        for name in &names {
            let args: Vec<OsString> = base
                .iter()
                .cloned()
                .chain(opts.iter().map(OsString::from))
                .chain([OsString::from(name)])
                .collect();
            let what = format!("modinfo {} {name}", opts.join(" "));
            tally.check(&what, &kmod(&modinfo, &args), &ours(&args, Features::ALL));
        }
        // All names in one call.
        let args: Vec<OsString> = base
            .iter()
            .cloned()
            .chain(opts.iter().map(OsString::from))
            .chain(names.iter().map(OsString::from))
            .collect();
        let what = format!("modinfo {} <all names>", opts.join(" "));
        tally.check(&what, &kmod(&modinfo, &args), &ours(&args, Features::ALL));
    }
    // Without -b/-k: the running kernel's directory (absent here, or whatever it holds).
    let args = vec![OsString::from("mp_lib")];
    tally.check(
        "modinfo mp_lib",
        &kmod(&modinfo, &args),
        &ours(&args, Features::ALL),
    );
    let _ = std::fs::remove_dir_all(&root);
    tally.finish("lookups");
}

#[test]
fn usage_like_kmod() {
    let Some(modinfo) = kmod_modinfo() else {
        println!("SKIPPED: kmod's modinfo is not installed (/usr/sbin/modinfo)");
        return;
    };
    let lib = fixtures("debian-6.1-amd64").join("mp_lib.ko");
    let lib = lib.to_string_lossy().into_owned();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-h"],
        vec!["--help", "x"],
        vec!["-x", &lib],
        vec!["--bogus", &lib],
        vec!["--f", "x", &lib],
        vec!["-F"],
        vec!["--field"],
        vec!["--author=1", &lib],
        vec![&lib, "-a"],
        vec!["--auth", &lib],
        vec!["-d", "-l", &lib],
        vec!["--field=name", &lib],
        vec!["-0F", "name", &lib],
        vec!["-Fname", &lib],
        vec!["--", "-a"],
        vec!["-n", "--null", &lib],
        vec!["-F", "filename", &lib, "nosuch"],
        vec!["-b", "/nonexistent", &lib, "nosuch"],
    ];
    let mut tally = Tally::default();
    for c in cases {
        let args: Vec<OsString> = c.iter().map(OsString::from).collect();
        let what = format!("modinfo {}", c.join(" "));
        tally.check(&what, &kmod(&modinfo, &args), &ours(&args, Features::ALL));
    }
    tally.finish("usage");
}
