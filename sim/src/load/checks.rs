//! The checks between the ELF checks and layout: blacklist, `module_layout` and symbol CRCs,
//! version magic, and the taints `.modinfo` implies (kernel/module/main.c, version.c).

use crate::errno::Errno;
use crate::image::LoadInfo;
use crate::kernel::{Kernel, MODULE_INIT_IGNORE_VERMAGIC, Module};
use crate::profile::KernelVersion;
use crate::taint::{Lockdep, Taint};

/// Models `blacklisted()`: exact-length matches against `module_blacklist=`.
pub fn blacklisted(kernel: &Kernel, name: &str) -> bool {
    kernel.settings.blacklist.iter().any(|b| b == name)
}

/// Models `try_to_force_load()`: with `CONFIG_MODULE_FORCE_LOAD` the module loads, tainted F
/// (the warning only on the kernel's first F taint); without it, `ENOEXEC`.
pub fn try_to_force_load(
    kernel: &mut Kernel,
    module: &mut Module,
    reason: &str,
) -> Result<(), Errno> {
    if !kernel.profile.is_enabled("MODULE_FORCE_LOAD") {
        return Err(Errno::ENOEXEC);
    }
    if !kernel.taint.test(Taint::ForcedModule) {
        kernel
            .log
            .warn(format!("{}: {reason}: kernel tainted.", module.name));
    }
    kernel.add_taint_module(module, Taint::ForcedModule, Lockdep::NowUnreliable);
    Ok(())
}

/// Models `check_version()` (kernel/module/version.c): true if the symbol may be used. `crc` is
/// the exporter's CRC (`None`: the exporter has none, which is accepted).
pub fn check_version(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    symname: &str,
    crc: Option<u32>,
) -> bool {
    let Some(crc) = crc else { return true };
    if info.index.vers == 0 {
        return try_to_force_load(kernel, module, symname).is_ok();
    }
    match info.versions.iter().find(|v| v.name == symname) {
        // `versions[i].crc` is an unsigned long compared with the zero-extended u32 CRC.
        Some(v) if v.crc == u64::from(crc) => true,
        Some(_) => {
            kernel.log.warn(format!(
                "{}: disagrees about version of symbol {symname}",
                info.name
            ));
            false
        }
        None => {
            kernel
                .log
                .warn(format!("{}: no symbol version for {symname}", info.name));
            false
        }
    }
}

/// Models `check_modstruct_version()`: the module's CRC of `module_layout` against the kernel's.
pub fn check_modstruct_version(kernel: &mut Kernel, info: &LoadInfo, module: &mut Module) -> bool {
    let crc = kernel.profile.export("module_layout").map(|e| e.crc);
    check_version(kernel, info, module, "module_layout", crc)
}

/// Models `same_magic()`: with `__versions`, only the part after the first space is compared.
pub fn same_magic(a: &str, b: &str, has_crcs: bool) -> bool {
    if has_crcs {
        let cut = |s: &str| s.find(' ').map_or("", |i| &s[i..]).to_string();
        cut(a) == cut(b)
    } else {
        a == b
    }
}

/// The version-magic part of `check_modinfo()`, common to 6.1 and 6.12: no vermagic (or
/// `MODULE_INIT_IGNORE_VERMAGIC`) is forced in; a different one is `ENOEXEC`.
fn check_vermagic(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    flags: u32,
) -> Result<(), Errno> {
    let modmagic = if flags & MODULE_INIT_IGNORE_VERMAGIC != 0 {
        None
    } else {
        info.modinfo.get("vermagic")
    };
    match modmagic {
        None => try_to_force_load(kernel, module, "bad vermagic")?,
        Some(m) => {
            let vermagic = kernel.profile.vermagic().to_string();
            if !same_magic(m, &vermagic, info.index.vers != 0) {
                kernel.log.err(format!(
                    "{}: version magic '{m}' should be '{vermagic}'",
                    info.name
                ));
                return Err(Errno::ENOEXEC);
            }
        }
    }
    Ok(())
}

/// The vermagic/livepatch part of `check_modinfo()`, common to 6.1 and 6.12.
fn check_vermagic_and_livepatch(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    flags: u32,
) -> Result<(), Errno> {
    check_vermagic(kernel, info, module, flags)?;
    if info.modinfo.get("livepatch").is_some() {
        if kernel.profile.is_enabled("LIVEPATCH") {
            if kernel.version() == KernelVersion::V6_1 {
                kernel.add_taint_module(module, Taint::Livepatch, Lockdep::StillOk);
                if kernel.once("livepatch") {
                    kernel.log.notice(format!(
                        "{}: tainting kernel with TAINT_LIVEPATCH",
                        module.name
                    ));
                }
            }
        } else {
            kernel.log.err(format!(
                "{}: module is marked as livepatch module, but livepatch support is disabled",
                module.name
            ));
            return Err(Errno::ENOEXEC);
        }
    }
    Ok(())
}

/// `include/linux/license.h` `license_is_gpl_compatible()`.
pub fn license_is_gpl_compatible(license: &str) -> bool {
    matches!(
        license,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

fn out_of_tree(kernel: &mut Kernel, info: &LoadInfo, module: &mut Module) {
    if info.modinfo.get("intree").is_none() {
        if !kernel.taint.test(Taint::OotModule) {
            kernel.log.warn(format!(
                "{}: loading out-of-tree module taints kernel.",
                module.name
            ));
        }
        kernel.add_taint_module(module, Taint::OotModule, Lockdep::StillOk);
    }
}

/// Models `check_modinfo_retpoline()`: x86 kernels with retpoline mitigation warn about
/// modules built without it. All four kernels build modules with `retpoline=Y` in modinfo;
/// the simulated CPU (QEMU's default) needs no retpoline, so nothing is printed either way.
fn check_modinfo_retpoline(_kernel: &mut Kernel, _info: &LoadInfo, _module: &mut Module) {}

fn staging(kernel: &mut Kernel, info: &LoadInfo, module: &mut Module) {
    if info.modinfo.get("staging").is_some() {
        kernel.add_taint_module(module, Taint::Crap, Lockdep::StillOk);
        kernel.log.warn(format!(
            "{}: module is from the staging directory, the quality is unknown, you have been warned.",
            module.name
        ));
    }
}

/// Models `set_license()` (6.1) / `module_license_taint_check()` (6.12).
fn license(kernel: &mut Kernel, info: &LoadInfo, module: &mut Module) {
    let license = info
        .modinfo
        .get("license")
        .unwrap_or("unspecified")
        .to_string();
    if !license_is_gpl_compatible(&license) {
        if !kernel.taint.test(Taint::ProprietaryModule) {
            kernel.log.warn(format!(
                "{}: module license '{license}' taints kernel.",
                module.name
            ));
        }
        kernel.add_taint_module(module, Taint::ProprietaryModule, Lockdep::NowUnreliable);
    }
}

fn test_module(kernel: &mut Kernel, info: &LoadInfo, module: &mut Module) {
    if info.modinfo.get("test").is_some() {
        if !kernel.taint.test(Taint::Test) {
            kernel.log.warn(format!(
                "{}: loading test module taints kernel.",
                module.name
            ));
        }
        kernel.add_taint_module(module, Taint::Test, Lockdep::StillOk);
    }
}

/// The name-based taints of `check_module_license_and_versions()` (6.1) and the end of
/// `module_augment_kernel_taints()` (6.12), with the "module license taints kernel" line when
/// P was newly set since `prev_taint` was taken.
fn name_based_taints(kernel: &mut Kernel, module: &mut Module, prev_taint: bool) {
    match module.name.as_str() {
        "ndiswrapper" => kernel.taint.add(
            Taint::ProprietaryModule,
            Lockdep::NowUnreliable,
            &mut kernel.log,
        ),
        "driverloader" | "lve" => {
            kernel.add_taint_module(module, Taint::ProprietaryModule, Lockdep::NowUnreliable)
        }
        _ => {}
    }
    if !prev_taint && kernel.taint.test(Taint::ProprietaryModule) {
        kernel
            .log
            .warn(format!("{}: module license taints kernel.", module.name));
    }
}

/// Models `check_modinfo()` of 6.1: vermagic, then the O, C, K, P and N taints (applied even if
/// the load fails later).
pub fn check_modinfo_6_1(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    flags: u32,
) -> Result<(), Errno> {
    check_vermagic(kernel, info, module, flags)?;
    out_of_tree(kernel, info, module);
    check_modinfo_retpoline(kernel, info, module);
    staging(kernel, info, module);
    check_vermagic_livepatch_6_1(kernel, info, module)?;
    license(kernel, info, module);
    test_module(kernel, info, module);
    Ok(())
}

fn check_vermagic_livepatch_6_1(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
) -> Result<(), Errno> {
    // check_modinfo_livepatch() in 6.1: taints K and logs once when livepatch is supported.
    if info.modinfo.get("livepatch").is_none() {
        return Ok(());
    }
    if kernel.profile.is_enabled("LIVEPATCH") {
        kernel.add_taint_module(module, Taint::Livepatch, Lockdep::StillOk);
        if kernel.once("livepatch") {
            kernel.log.notice(format!(
                "{}: tainting kernel with TAINT_LIVEPATCH",
                module.name
            ));
        }
        return Ok(());
    }
    kernel.log.err(format!(
        "{}: module is marked as livepatch module, but livepatch support is disabled",
        module.name
    ));
    Err(Errno::ENOEXEC)
}

/// Models `check_modinfo()` of 6.12: vermagic and livepatch only (taints come later).
pub fn check_modinfo_6_12(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    flags: u32,
) -> Result<(), Errno> {
    check_vermagic_and_livepatch(kernel, info, module, flags)
}

/// Models the signature taint right after `add_unformed_module()` in 6.1's `load_module()`.
pub fn sig_taint(kernel: &mut Kernel, module: &mut Module, sig_ok: bool) {
    module.sig_ok = sig_ok;
    if !sig_ok {
        if kernel.once("module verification failed") {
            kernel.log.notice(format!(
                "{}: module verification failed: signature and/or required key missing - tainting kernel",
                module.name
            ));
        }
        kernel.add_taint_module(module, Taint::UnsignedModule, Lockdep::StillOk);
    }
}

/// Models `module_augment_kernel_taints()` (6.12): O, retpoline, C, K, P, N, E and the
/// name-based taints, in that order.
pub fn module_augment_kernel_taints(
    kernel: &mut Kernel,
    info: &LoadInfo,
    module: &mut Module,
    sig_ok: bool,
) {
    let prev_taint = kernel.taint.test(Taint::ProprietaryModule);
    out_of_tree(kernel, info, module);
    check_modinfo_retpoline(kernel, info, module);
    staging(kernel, info, module);
    if info.modinfo.get("livepatch").is_some() && kernel.profile.is_enabled("LIVEPATCH") {
        kernel.add_taint_module(module, Taint::Livepatch, Lockdep::StillOk);
        if kernel.once("livepatch") {
            kernel.log.notice(format!(
                "{}: tainting kernel with TAINT_LIVEPATCH",
                module.name
            ));
        }
    }
    license(kernel, info, module);
    test_module(kernel, info, module);
    sig_taint(kernel, module, sig_ok);
    name_based_taints(kernel, module, prev_taint);
}

/// Models `check_module_license_and_versions()` (6.1) / `check_export_symbol_versions()`
/// (6.12): exports without CRC tables are forced in (or refused without FORCE_LOAD).
pub fn check_export_versions(
    kernel: &mut Kernel,
    module: &mut Module,
    exports_without_crcs: bool,
    prev_taint: Option<bool>,
) -> Result<(), Errno> {
    if let Some(prev) = prev_taint {
        name_based_taints(kernel, module, prev);
    }
    if kernel.profile.is_enabled("MODVERSIONS") && exports_without_crcs {
        try_to_force_load(kernel, module, "no versions for exported symbols")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_magic_compares_only_flags_when_crcs_exist() {
        let k = "6.1.0-56-amd64 SMP preempt mod_unload modversions ";
        assert!(same_magic(
            "6.1.0-99-amd64 SMP preempt mod_unload modversions ",
            k,
            true
        ));
        assert!(!same_magic(
            "6.1.0-99-amd64 SMP preempt mod_unload modversions ",
            k,
            false
        ));
        assert!(!same_magic(
            "6.1.0-56-amd64 SMP preempt mod_unlaad modversions ",
            k,
            true
        ));
        assert!(same_magic("nospace", "other", true));
    }
}
