//! `modloader explain`: load a module into the simulator with the load-path trace on, and
//! narrate every step — what the kernel checked, the values involved, the kernel function each
//! step models — and, on failure, why the kernel refuses it and what to do about it.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sim::kernel::{Kernel, MODULE_INIT_COMPRESSED_FILE, ProfileRef};
use sim::trace::TraceEvent;

use crate::file::{Compression, FileError, ModuleFile};

/// The whole explanation, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The simulated kernel (profile name).
    pub kernel: String,
    /// Its release.
    pub release: String,
    /// The module file.
    pub file: String,
    /// How the file reached the kernel (`finit_module`, in-kernel or userspace decompression).
    pub how: String,
    /// The parameter string.
    pub params: String,
    /// The steps, in order.
    pub steps: Vec<TraceEvent>,
    /// `None` if the module loaded, else the errno name.
    pub errno: Option<String>,
    /// The module's `/proc/modules` line after a successful load.
    pub proc_modules: Option<String>,
    /// The kernel log lines of the load.
    pub log: Vec<String>,
}

/// Load `file` with `params` into a fresh simulated kernel running `profile`, tracing it.
/// Compressed files go to the kernel with `MODULE_INIT_COMPRESSED_FILE` when the kernel
/// decompresses that format itself (6.12: xz), else they are decompressed here first, as
/// insmod does.
pub fn explain(
    profile: impl Into<ProfileRef>,
    file: &Path,
    params: &str,
    flags: u32,
) -> Result<Explanation, FileError> {
    explain_on(Kernel::new(profile.into()), file, params, flags)
}

/// [`explain`] on `kernel` as it is (a machine with modules loaded: what this load would do
/// there).
pub fn explain_on(
    mut kernel: Kernel,
    file: &Path,
    params: &str,
    flags: u32,
) -> Result<Explanation, FileError> {
    let profile = kernel.profile_ref();
    let raw = crate::file::read_limited(file, crate::file::DEFAULT_MAX_SIZE)?;
    let compression = Compression::detect(&raw).unwrap_or(Compression::None);
    let in_kernel = compression == Compression::Xz
        && profile.is_enabled("MODULE_DECOMPRESS")
        && profile.is_enabled("MODULE_COMPRESS_XZ");
    let (bytes, flags, how) = if compression == Compression::None {
        (raw, flags, "finit_module(fd, params, flags)".to_string())
    } else if in_kernel {
        (raw, flags | MODULE_INIT_COMPRESSED_FILE, "finit_module with MODULE_INIT_COMPRESSED_FILE: the kernel decompresses the xz file itself".to_string())
    } else {
        let m = ModuleFile::from_bytes(file, raw, crate::file::DEFAULT_MAX_SIZE)?;
        (
            m.into_data(),
            flags,
            format!(
                "{} file decompressed in userspace (this kernel cannot), then finit_module",
                compression.as_str()
            ),
        )
    };
    kernel.set_tracing(true);
    let log_start = kernel.log_seq();
    let r = kernel.finit_module_bytes(bytes, Some(params.as_bytes()), flags);
    let steps = kernel.take_trace();
    let log = kernel
        .log_since(log_start)
        .iter()
        .map(|l| l.text.clone())
        .collect();
    let proc_modules = r
        .is_ok()
        .then(|| kernel.modules().next().map(|m| m.proc_modules_line()))
        .flatten();
    Ok(Explanation {
        kernel: profile.name().to_string(),
        release: profile.release().to_string(),
        file: file.display().to_string(),
        how,
        params: params.to_string(),
        steps,
        errno: r.err().map(|e| e.errno.name()),
        proc_modules,
        log,
    })
}

/// The narration for people.
pub fn narrate(e: &Explanation, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Loading {} into a simulated {} kernel ({})",
        e.file, e.kernel, e.release
    )?;
    writeln!(out, "  how: {}", e.how)?;
    writeln!(out, "  parameters: {:?}", e.params)?;
    for (i, s) in e.steps.iter().enumerate() {
        writeln!(out)?;
        let mark = if s.failed.is_some() { "FAILED " } else { "" };
        writeln!(out, "{:2}. {mark}{}  ({})", i + 1, s.function, s.source)?;
        writeln!(out, "    {}", s.summary)?;
        for (k, v) in &s.details {
            writeln!(out, "      {k}: {v}")?;
        }
    }
    writeln!(out)?;
    match (&e.errno, &e.proc_modules) {
        (None, Some(p)) => writeln!(out, "Result: loaded. /proc/modules: {p}")?,
        (None, None) => writeln!(out, "Result: loaded.")?,
        (Some(errno), _) => writeln!(
            out,
            "Result: refused with {errno} (see the failed step above for why and what to do)."
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::profile::Profile;

    fn fixture(kernel: &str, name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ko")
            .join(kernel)
            .join(name)
    }

    #[test]
    fn a_good_load_narrates_every_step_in_the_kernels_order() {
        let p = Profile::builtin("debian-6.1-amd64").unwrap();
        let e = explain(p, &fixture("debian-6.1-amd64", "mp_types.ko"), "p_int=5", 0).unwrap();
        let f: Vec<&str> = e.steps.iter().map(|s| s.function).collect();
        assert_eq!(
            f,
            [
                "module_sig_check",
                "elf_validity_check",
                "check_modstruct_version",
                "check_modinfo",
                "layout_and_allocate",
                "simplify_symbols",
                "apply_relocations",
                "find_module_sections",
                "module_finalize",
                "ftrace_module_init",
                "parse_args",
                "do_init_module",
                "load_module"
            ]
        );
        assert_eq!(e.errno, None);
        assert!(e.steps.iter().any(|s| {
            s.details
                .iter()
                .any(|(k, v)| k.ends_with("/p_int") && v == "5")
        }));
        let mut text = Vec::new();
        narrate(&e, &mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("Result: loaded."));
    }

    #[test]
    fn a_refused_load_names_the_step_the_errno_and_what_to_do() {
        let p = Profile::builtin("debian-6.12-amd64").unwrap();
        let e = explain(
            p,
            &fixture("debian-6.12-amd64", "bad_vermagic_flags.ko"),
            "",
            0,
        )
        .unwrap();
        let last = e.steps.last().unwrap();
        assert_eq!(e.errno.as_deref(), Some("ENOEXEC"));
        assert_eq!(last.function, "check_modinfo");
        assert!(
            last.summary.contains("--force-vermagic"),
            "{}",
            last.summary
        );
        assert!(
            last.details
                .iter()
                .any(|(_, v)| v.contains("version magic"))
        );
    }
}
