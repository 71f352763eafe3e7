//! `modinfo`: fuzzed bytes as a module file, through the loader's file opening
//! (`ModuleFile::from_bytes`, `ModuleFile::open_with_limit`) and module reader
//! (`loader::modinfo::read`, `read_exports`), and through the `modinfo` command
//! (`loader::cli::modinfo::run_with`) on a file, or on depmod's index files under `-b ROOT`.
//!
//! Input: `[b0][data...]`
//! - b0: bits 0-1 the mode: 0 in memory, 1 a file and the `modinfo` command on it, 2 an
//!   index file and `modinfo -b ROOT -k fuzz NAME`, 3 both 0 and 1; bits 2-3 the size limit
//!   (1 GiB, 1 MiB, 64 KiB, 4 KiB); bits 4-5 the file name's ending (`.ko`, `.ko.xz`,
//!   `.ko.zst`, `.ko.gz`); bits 6-7 the command's options (none, `-0`, `-F KEY` with the
//!   first `.modinfo` key, `-p`).
//! - mode 2: `[name length][name][index data...]`; b0's bits 4-6 say which index file the
//!   data are (`INDEXES`), bit 7 adds `-m`, bit 2 gives kmod 30's features.
//!
//! Invariants: `ModuleFile` only gives ELF data within the limit, with the compression its
//! magic says, the same from a file as from memory; `read` takes its exports from the
//! entries exactly as `read_exports(Entries)` does and finds a signature only inside the
//! data; the command exits 0 or 1, and where it and the library both read a file, `-F KEY`
//! prints the values the library has for that key.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use loader::file::{Compression, ModuleFile};
use loader::modinfo::{ExportSource, ModuleInfo, read, read_exports};
use modsim_fuzz::{Input, alloc};

const LIMITS: [u64; 4] = [1 << 30, 1 << 20, 64 << 10, 4 << 10];
const ENDINGS: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];
const INDEXES: [&[&str]; 8] = [
    &["modules.dep.bin"],
    &["modules.alias.bin"],
    &["modules.symbols.bin"],
    &["modules.builtin.bin"],
    &["modules.builtin.alias.bin"],
    &["modules.builtin.modinfo"],
    &["modules.dep.bin", "modules.alias.bin"],
    &["modules.builtin.bin", "modules.builtin.modinfo"],
];

fuzz_target!(init: modsim_fuzz::init(), |data: &[u8]| run(data));

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let b0 = inp.u8();
    let limit = LIMITS[usize::from((b0 >> 2) & 3)];
    // The file modes write the data out: a 64 MiB simulated limit stands for the 1 GiB here,
    // as nothing allocated is larger than the (decompressed) data — but for the window of a
    // zstd frame, which the `modinfo` command's decoder allocates as the frame declares it,
    // up to libzstd's default limit (2^27), as kmod's does (a 1 KB file may ask for 64 MiB).
    const ZSTD_WINDOW_LIMIT: usize = 1 << 27;
    alloc::begin(modsim_fuzz::budget(data.len(), limit.min(64 << 20)) + ZSTD_WINDOW_LIMIT);
    match b0 & 3 {
        0 => in_memory(inp.rest(), limit),
        1 => {
            file_and_command(b0, inp.rest(), limit);
        }
        2 => index(b0, &mut inp),
        _ => {
            let rest = inp.rest();
            in_memory(rest, limit);
            file_and_command(b0, rest, limit);
        }
    }
    alloc::end();
}

/// The library's reading of `image`, with its invariants checked.
fn library(image: &[u8]) -> Option<ModuleInfo> {
    let info = read(image).ok()?;
    let exports = read_exports(image, ExportSource::Entries)
        .expect("invariant: read_exports(Entries) fails where read succeeded");
    assert_eq!(
        exports, info.exports,
        "invariant: modinfo::read and read_exports(Entries) find other exports"
    );
    let _ = read_exports(image, ExportSource::SymbolNames);
    let _ = info.depends();
    if let Some(sig) = &info.signature {
        assert!(
            sig.signed_len <= image.len()
                && sig.signature.len() <= image.len()
                && sig.key_id.len() <= image.len(),
            "invariant: modinfo::read: a signature larger than the file"
        );
    }
    Some(info)
}

fn in_memory(data: &[u8], limit: u64) {
    let _ = library(data);
    if let Ok(mf) = opened(
        ModuleFile::from_bytes("fuzz.ko", data.to_vec(), limit),
        data,
        limit,
    ) {
        let _ = library(mf.data());
    }
}

/// `ModuleFile`'s invariants on a result for `data`.
fn opened(
    r: Result<ModuleFile, loader::file::FileError>,
    data: &[u8],
    limit: u64,
) -> Result<ModuleFile, loader::file::FileError> {
    if let Ok(mf) = &r {
        assert!(
            mf.data().starts_with(b"\x7fELF"),
            "invariant: ModuleFile: data that are not ELF"
        );
        assert!(
            mf.data().len() as u64 <= limit,
            "invariant: ModuleFile: {} bytes over the limit {limit}",
            mf.data().len()
        );
        assert_eq!(Some(mf.compression()), Compression::detect(data));
        if mf.compression() == Compression::None {
            assert_eq!(mf.data(), data, "invariant: ModuleFile changed plain data");
        }
    }
    r
}

fn file_and_command(b0: u8, data: &[u8], limit: u64) {
    let dir = modsim_fuzz::scratch_dir();
    let path = dir.join(format!("fuzz{}", ENDINGS[usize::from((b0 >> 4) & 3)]));
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let from_file = ModuleFile::open_with_limit(&path, limit);
    let from_memory = ModuleFile::from_bytes(&path, data.to_vec(), limit);
    match (&from_file, &from_memory) {
        // A file is bounded before it is looked at; bytes in memory only by what they give.
        (Err(loader::file::FileError::TooLarge { .. }), _) if data.len() as u64 > limit => {}
        (Ok(a), Ok(b)) => assert!(
            a.data() == b.data() && a.compression() == b.compression(),
            "invariant: ModuleFile reads a file and the same bytes in memory differently"
        ),
        (Err(a), Err(b)) => assert_eq!(
            a.to_string(),
            b.to_string(),
            "invariant: ModuleFile fails differently on a file and on its bytes"
        ),
        (a, b) => panic!(
            "invariant: ModuleFile: from the file {:?}, from memory {:?}",
            a.as_ref().map(|m| m.data().len()),
            b.as_ref().map(|m| m.data().len())
        ),
    }
    let info = opened(from_file, data, limit)
        .ok()
        .and_then(|mf| library(mf.data()));

    // The command, as a user runs it on the file.
    let key = info
        .as_ref()
        .and_then(|i| i.modinfo.first())
        .map(|e| e.key.clone())
        .filter(|k| {
            !k.is_empty()
                && !k.starts_with('-')
                && !["parm", "parmtype", "filename", "name"].contains(&k.as_str())
                && !k.starts_with("sig")
                && !k.contains('\u{fffd}')
        });
    let mut args: Vec<OsString> = vec!["modinfo".into()];
    match (b0 >> 6, &key) {
        (1, _) => args.push("-0".into()),
        (2, Some(k)) => {
            args.push("-0".into());
            args.push("-F".into());
            args.push(k.into());
        }
        (3, _) => args.push("-p".into()),
        _ => {}
    }
    args.push(path.clone().into_os_string());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = loader::cli::modinfo::run(&args, &mut out, &mut err);
    assert!(code == 0 || code == 1, "invariant: modinfo exited {code}");
    if let (0, 2, Some(k), Some(info)) = (code, b0 >> 6, &key, &info) {
        // Only when the command read the same image (its ELF reader refuses more).
        let want: Vec<u8> = info
            .values(k)
            .flat_map(|v| v.bytes().chain(std::iter::once(0)))
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want),
            "invariant: modinfo -F {k} and loader::modinfo disagree"
        );
    }
}

fn index(b0: u8, inp: &mut Input<'_>) {
    let n = usize::from(inp.u8() % 32);
    let name: Vec<u8> = inp
        .take(n)
        .iter()
        .map(|&b| if b == b'/' || b == 0 { b'_' } else { b })
        .collect();
    let data = inp.rest();
    let root = modsim_fuzz::scratch_dir().join("root");
    let dir = root.join("lib/modules/fuzz");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for f in INDEXES[usize::from((b0 >> 4) & 7)] {
        std::fs::write(dir.join(f), data).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let mut args: Vec<OsString> = vec![
        "modinfo".into(),
        "-b".into(),
        root.clone().into_os_string(),
        "-k".into(),
        "fuzz".into(),
    ];
    if b0 & 0x80 != 0 {
        args.push("-m".into());
    }
    args.push(OsString::from_vec(if name.is_empty() {
        b"x".to_vec()
    } else {
        name
    }));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let features = if b0 & 4 != 0 {
        loader::cli::modinfo::Features::DEBIAN_KMOD_30
    } else {
        loader::cli::modinfo::Features::ALL
    };
    let code = loader::cli::modinfo::run_with(&args, &mut out, &mut err, features);
    assert!(
        code == 0 || code == 1,
        "invariant: modinfo -b exited {code}"
    );
}
