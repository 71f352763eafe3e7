//! Building a profile from an extracted `linux-headers-<release>` directory.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use super::{Arch, Export, KernelVersion, Parts, Profile, ProfileError, Result, btf};

/// Size limits of the files read (the real ones: .config < 400 KiB, Module.symvers < 2 MiB,
/// vmlinux (BTF only) < 6 MiB, modules.builtin.modinfo < 200 KiB).
const MAX_SMALL: u64 = 64 << 10;
pub(super) const MAX_CONFIG: u64 = 8 << 20;
const MAX_SYMVERS: u64 = 64 << 20;
const MAX_VMLINUX: u64 = 256 << 20;
const MAX_BUILTIN: u64 = 16 << 20;

fn io_err(path: &Path, e: std::io::Error) -> ProfileError {
    ProfileError::Io {
        path: path.to_owned(),
        source: Arc::new(e),
    }
}

fn parse_err(file: &Path, line: usize, reason: impl Into<String>) -> ProfileError {
    ProfileError::Parse {
        file: file.to_owned(),
        line,
        reason: reason.into(),
    }
}

/// Reads a whole file, refusing (before allocating) one larger than `limit`. `Ok(None)` when
/// the file does not exist.
fn read_optional(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    let too_large = || ProfileError::TooLarge {
        what: path.display().to_string(),
        limit,
    };
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.is_file() {
        return Err(io_err(
            path,
            std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| io_err(path, e))?;
    if data.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(data))
}

fn read_required(path: &Path, limit: u64) -> Result<Vec<u8>> {
    read_optional(path, limit)?
        .ok_or_else(|| io_err(path, std::io::Error::from(ErrorKind::NotFound)))
}

fn utf8(path: &Path, data: Vec<u8>) -> Result<String> {
    String::from_utf8(data).map_err(|e| {
        parse_err(
            path,
            0,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Every set option of a `.config`: name without `CONFIG_` -> value, quotes removed.
pub(super) fn parse_config(path: &Path, text: &str) -> Result<IndexMap<String, String>> {
    let mut opts = IndexMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line
            .strip_prefix("CONFIG_")
            .and_then(|rest| rest.split_once('='))
        else {
            return Err(parse_err(path, n + 1, "not CONFIG_NAME=value"));
        };
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(parse_err(path, n + 1, format!("bad option name {name:?}")));
        }
        let value = if let Some(quoted) = value.strip_prefix('"') {
            let Some(inner) = quoted.strip_suffix('"') else {
                return Err(parse_err(path, n + 1, "unterminated string"));
            };
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some(e) => out.push(e),
                        None => return Err(parse_err(path, n + 1, "string ends with \\")),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            value.to_owned()
        };
        opts.insert(name.to_owned(), value);
    }
    Ok(opts)
}

/// The string literal of `#define NAME "value"` in a generated header.
fn define(path: &Path, text: &str, name: &str) -> Result<Option<String>> {
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("#define") else {
            continue;
        };
        let mut words = rest.trim_start().splitn(2, [' ', '\t']);
        let (Some(macro_name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        if macro_name != name {
            continue;
        }
        let value = value.trim();
        let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
            return Err(parse_err(
                path,
                n + 1,
                format!("{name} is not a string literal"),
            ));
        };
        if inner.contains(['"', '\\']) {
            return Err(parse_err(
                path,
                n + 1,
                format!("{name}: escapes not supported"),
            ));
        }
        return Ok(Some(inner.to_owned()));
    }
    Ok(None)
}

/// The vmlinux exports of a `Module.symvers` (`0xCRC\tsymbol\tmodule\ttype[\tnamespace]`).
pub(super) fn parse_symvers(path: &Path, text: &str) -> Result<Vec<(String, Export)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if !(4..=5).contains(&fields.len()) {
            return Err(parse_err(
                path,
                n + 1,
                format!("{} fields, expected 4 or 5", fields.len()),
            ));
        }
        if fields[2] != "vmlinux" {
            continue;
        }
        let crc = fields[0]
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| parse_err(path, n + 1, format!("bad CRC {:?}", fields[0])))?;
        let gpl_only = match fields[3] {
            "EXPORT_SYMBOL" => false,
            "EXPORT_SYMBOL_GPL" => true,
            other => {
                return Err(parse_err(
                    path,
                    n + 1,
                    format!("unknown export type {other:?}"),
                ));
            }
        };
        let namespace = fields
            .get(4)
            .filter(|ns| !ns.is_empty())
            .map(|ns| ns.to_string());
        out.push((
            fields[1].to_owned(),
            Export {
                crc,
                gpl_only,
                namespace,
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The vermagic of `include/linux/vermagic.h` (6.1 and 6.12 compose it the same way).
pub(super) fn compose_vermagic<'a>(
    release: &str,
    arch: Arch,
    config: impl Fn(&str) -> Option<&'a str>,
) -> Result<String> {
    let on = |o: &str| config(o) == Some("y");
    if [
        "RANDSTRUCT",
        "RANDSTRUCT_FULL",
        "RANDSTRUCT_PERFORMANCE",
        "GCC_PLUGIN_RANDSTRUCT",
    ]
    .into_iter()
    .any(on)
    {
        return Err(ProfileError::Unsupported(
            "randstruct kernel (its vermagic has the seed hash)".into(),
        ));
    }
    let mut v = format!("{release} ");
    if on("SMP") {
        v.push_str("SMP ");
    }
    if on("PREEMPT_BUILD") {
        v.push_str("preempt ");
    } else if on("PREEMPT_RT") {
        v.push_str("preempt_rt ");
    }
    if on("MODULE_UNLOAD") {
        v.push_str("mod_unload ");
    }
    if on("MODVERSIONS") {
        v.push_str("modversions ");
    }
    // MODULE_ARCH_VERMAGIC: "" on x86-64, "aarch64" on arm64
    if arch == Arch::Aarch64 {
        v.push_str("aarch64");
    }
    Ok(v)
}

/// The module name of a `modules.builtin` line (`kernel/drivers/bus/arm-cci.ko` -> `arm_cci`).
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.strip_suffix(".ko").unwrap_or(base);
    base.replace('-', "_")
}

/// The builtin module names and the builtin names with a /sys/module directory, from the image
/// package's files next to the headers (empty when absent).
fn builtin_modules(headers: &Path, release: &str) -> Result<(Vec<String>, Vec<String>)> {
    // the image package's tree: <root>/usr/src/linux-headers-<release> -> <root>
    let dir = super::modules_dir(&headers.join("../../.."), release);
    let mut modules = BTreeSet::new();
    let path = dir.join("modules.builtin");
    if let Some(data) = read_optional(&path, MAX_BUILTIN)? {
        for line in utf8(&path, data)?.lines() {
            let line = line.trim();
            if !line.is_empty() {
                modules.insert(module_name(line));
            }
        }
    }
    let mut sysfs = BTreeSet::new();
    let path = dir.join("modules.builtin.modinfo");
    if let Some(data) = read_optional(&path, MAX_BUILTIN)? {
        for entry in data.split(|&b| b == 0) {
            let Some(eq) = entry.iter().position(|&b| b == b'=') else {
                continue;
            };
            let Some(dot) = entry[..eq].iter().position(|&b| b == b'.') else {
                continue;
            };
            let key = &entry[dot + 1..eq];
            if dot > 0 && (key == b"parmtype" || key == b"version") {
                let name = String::from_utf8_lossy(&entry[..dot]).replace('-', "_");
                sysfs.insert(name);
            }
        }
    }
    Ok((modules.into_iter().collect(), sysfs.into_iter().collect()))
}

pub(super) fn build(dir: &Path) -> Result<Parts> {
    let meta = std::fs::metadata(dir).map_err(|e| io_err(dir, e))?;
    if !meta.is_dir() {
        return Err(io_err(
            dir,
            std::io::Error::new(ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    let config_path = dir.join(".config");
    let full = parse_config(
        &config_path,
        &utf8(&config_path, read_required(&config_path, MAX_CONFIG)?)?,
    )?;
    let config: IndexMap<String, String> = {
        let mut kept: Vec<_> = full
            .into_iter()
            .filter(|(k, _)| Profile::tracks_option(k))
            .collect();
        kept.sort();
        kept.into_iter().collect()
    };

    let gen_dir = dir.join("include/generated");
    let small = |p: &Path| -> Result<Option<String>> {
        read_optional(p, MAX_SMALL)?.map(|d| utf8(p, d)).transpose()
    };
    let uts_path = gen_dir.join("utsrelease.h");
    let release = match small(&uts_path)? {
        Some(text) => define(&uts_path, &text, "UTS_RELEASE")?
            .ok_or_else(|| parse_err(&uts_path, 0, "no UTS_RELEASE"))?,
        None => {
            let p = dir.join("include/config/kernel.release");
            let text =
                small(&p)?.ok_or_else(|| io_err(&p, std::io::Error::from(ErrorKind::NotFound)))?;
            text.trim().to_owned()
        }
    };

    let arch = match (
        config.get("X86_64").map(String::as_str),
        config.get("ARM64").map(String::as_str),
    ) {
        (Some("y"), None) => Arch::X86_64,
        (None, Some("y")) => Arch::Aarch64,
        _ => {
            return Err(ProfileError::Unsupported(
                "architecture: .config sets neither CONFIG_X86_64 nor CONFIG_ARM64".into(),
            ));
        }
    };
    let compile_path = gen_dir.join("compile.h");
    if let Some(text) = small(&compile_path)?
        && let Some(machine) = define(&compile_path, &text, "UTS_MACHINE")?
        && machine != arch.as_str()
    {
        return Err(ProfileError::Invalid(format!(
            "UTS_MACHINE {machine} but the .config is for {arch}"
        )));
    }
    let version = KernelVersion::from_release(&release)
        .ok_or_else(|| ProfileError::Unsupported(format!("kernel release {release:?}")))?;

    let package_path = gen_dir.join("package.h");
    let package_id = match small(&package_path)? {
        Some(text) => define(&package_path, &text, "LINUX_PACKAGE_ID")?.unwrap_or_default(),
        None => String::new(),
    };
    let words: Vec<&str> = package_id.split_whitespace().collect();
    let debian = words.first() == Some(&"Debian");
    let package_version = words.last().map(|w| w.to_string()).unwrap_or_default();

    let vermagic = compose_vermagic(&release, arch, |o| config.get(o).map(String::as_str))?;

    let symvers_path = dir.join("Module.symvers");
    let exports = parse_symvers(
        &symvers_path,
        &utf8(&symvers_path, read_required(&symvers_path, MAX_SYMVERS)?)?,
    )?;

    let vmlinux_path = dir.join("vmlinux");
    let (sizeof_struct_module, this_module) = match read_optional(&vmlinux_path, MAX_VMLINUX)? {
        Some(data) => {
            let l = btf::struct_module_layout(&data)
                .map_err(|reason| parse_err(&vmlinux_path, 0, reason))?;
            (l.size, (l.name, l.init, l.exit))
        }
        None => {
            let p = Profile::builtin_for(version, arch)?;
            let t = p.this_module();
            let as_u64 = |v: usize| v as u64;
            (
                as_u64(p.sizeof_struct_module()),
                (
                    as_u64(t.name_offset),
                    as_u64(t.init_offset),
                    t.exit_offset.map(as_u64),
                ),
            )
        }
    };

    let (builtin_modules, builtin_sysfs_modules) = builtin_modules(dir, &release)?;
    let name = if debian {
        format!("debian-{version}-{}", arch.debian_name())
    } else {
        release.clone()
    };
    Ok(Parts {
        name,
        release,
        package_version,
        arch,
        version,
        vermagic,
        config,
        sizeof_struct_module,
        this_module,
        signing_key: None,
        exports,
        builtin_modules,
        builtin_sysfs_modules,
    })
}
