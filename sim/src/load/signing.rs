//! The appended signature: `module_sig_check()` and `mod_verify_sig()`
//! (kernel/module/signing.c), `mod_check_sig()` (kernel/module_signature.c) and the part of
//! `verify_pkcs7_signature()` (certs/system_keyring.c, crypto/asymmetric_keys/pkcs7_*.c) a
//! module signature goes through. The code is the same in 6.1 and 6.12.
//!
//! **Trust decision.** The RSA/ECDSA arithmetic is not done. A well-formed PKCS#7 message whose
//! signer (issuer + serial, or subject key id) is the profile's module signing certificate
//! ([`Profile::signing_key`]) counts as verified: the kernel finds that key in its builtin
//! keyring and the signature checks out for every module the distribution shipped. Any other
//! well-formed message gets `ENOKEY`, the kernel's result when no trusted key matches. So a
//! module whose bytes were changed after Debian signed it is accepted here, where the kernel
//! would answer `EKEYREJECTED`.
#![warn(missing_docs)]

use crate::errno::Errno;
use crate::image::{
    MODULE_SIG_STRING, ModuleSignature, PKEY_ID_PKCS7, Pkcs7Error, parse_certificate_id,
    parse_pkcs7,
};
use crate::load::elf_check::{MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC};
use crate::log::KernelLog;
use crate::profile::Profile;

/// The parts of the running kernel's state the signature check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigSettings {
    /// `module.sig_enforce` (boot parameter or `/sys/module/module/parameters/sig_enforce`);
    /// `CONFIG_MODULE_SIG_FORCE` of the profile turns it on as well.
    pub sig_enforce: bool,
    /// The kernel is locked down (`lockdown=integrity` or more, or EFI Secure Boot with
    /// `CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT`), so `security_locked_down(LOCKDOWN_MODULE_SIGNATURE)`
    /// refuses.
    pub lockdown: bool,
    /// The calling task's `comm` (the lockdown message names it), e.g. `insmod`.
    pub comm: String,
}

impl Default for SigSettings {
    /// Not enforcing, not locked down, `comm` `insmod`.
    fn default() -> Self {
        SigSettings {
            sig_enforce: false,
            lockdown: false,
            comm: "insmod".to_owned(),
        }
    }
}

/// What `module_sig_check()` leaves in `struct load_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigCheck {
    /// `info->len`: shortened by the marker, and by the signature and its
    /// `struct module_signature` once they were found well-formed.
    pub len: usize,
    /// `info->sig_ok`.
    pub sig_ok: bool,
}

/// Models `module_sig_check()` in kernel/module/signing.c.
///
/// Without `CONFIG_MODULE_SIG` there is no check (`len` unchanged, `sig_ok` false). Otherwise:
/// unless a flag marks the module "mangled" (`MODULE_INIT_IGNORE_MODVERSIONS` or
/// `_IGNORE_VERMAGIC`), a trailing marker is stripped and [`mod_verify_sig`] decides. Its
/// soft failures `ENODATA` (no signature), `ENOPKG` and `ENOKEY` are rejected under
/// enforcement (`"Loading of %s is rejected"`, `EKEYREJECTED`) or lockdown (`EPERM`), and
/// accepted otherwise with `sig_ok` false; every other error is returned as is.
pub fn module_sig_check(
    profile: &Profile,
    image: &[u8],
    flags: u32,
    settings: &SigSettings,
    log: &mut KernelLog,
) -> Result<SigCheck, Errno> {
    let mut len = image.len();
    if !profile.is_enabled("MODULE_SIG") {
        return Ok(SigCheck { len, sig_ok: false });
    }
    let markerlen = MODULE_SIG_STRING.len();
    let mangled = flags & (MODULE_INIT_IGNORE_MODVERSIONS | MODULE_INIT_IGNORE_VERMAGIC) != 0;
    let mut err = Errno::ENODATA;
    if !mangled
        && len > markerlen
        && image.get(len - markerlen..len) == Some(&MODULE_SIG_STRING[..])
    {
        len -= markerlen;
        match mod_verify_sig(profile, image, &mut len, log) {
            Ok(()) => return Ok(SigCheck { len, sig_ok: true }),
            Err(e) => err = e,
        }
    }
    let reason = match err {
        Errno::ENODATA => "unsigned module",
        Errno::ENOPKG => "module with unsupported crypto",
        Errno::ENOKEY => "module with unavailable key",
        // "All other errors are fatal, including lack of memory, unparseable signatures, and
        // signature check failures -- even if signatures aren't required."
        other => return Err(other),
    };
    if settings.sig_enforce || profile.is_enabled("MODULE_SIG_FORCE") {
        log.notice(format!("Loading of {reason} is rejected"));
        return Err(Errno::EKEYREJECTED);
    }
    security_locked_down(profile, settings, log)?;
    Ok(SigCheck { len, sig_ok: false })
}

/// Models `security_locked_down(LOCKDOWN_MODULE_SIGNATURE)` with the lockdown LSM
/// (security/lockdown/lockdown.c `lockdown_is_locked_down()`; the message is ratelimited in
/// the kernel, not here).
fn security_locked_down(
    profile: &Profile,
    settings: &SigSettings,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    if settings.lockdown && profile.is_enabled("SECURITY_LOCKDOWN_LSM") {
        log.notice(format!(
            "Lockdown: {}: unsigned module loading is restricted; see man kernel_lockdown.7",
            settings.comm
        ));
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Models `mod_verify_sig()` in kernel/module/signing.c on the first `len` bytes of `image`
/// (the marker already stripped): reads the trailing `struct module_signature`, checks it
/// ([`mod_check_sig`]), shortens `len` by the signature and the structure, then verifies the
/// PKCS#7 message ([`verify_pkcs7_signature`]).
///
/// Fails with `EBADMSG` when `len` cannot hold the structure, or with the errno of the check or
/// the verification.
pub fn mod_verify_sig(
    profile: &Profile,
    image: &[u8],
    len: &mut usize,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let modlen = *len;
    if modlen <= ModuleSignature::SIZE {
        return Err(Errno::EBADMSG);
    }
    let ms = ModuleSignature::parse(image, (modlen - ModuleSignature::SIZE) as u64)
        .map_err(|_| Errno::EBADMSG)?;
    mod_check_sig(&ms, modlen, "module", log)?;
    let sig_len = ms.sig_len as usize; // < modlen - 12: checked
    let modlen = modlen - sig_len - ModuleSignature::SIZE;
    *len = modlen;
    let sig = image.get(modlen..modlen + sig_len).ok_or(Errno::EBADMSG)?;
    let data = image.get(..modlen).ok_or(Errno::EBADMSG)?;
    verify_pkcs7_signature(profile, data, sig, log)
    // (then mod_is_hash_blacklisted(): Debian's kernels have no blacklisted module hashes)
}

/// Models `mod_check_sig()` in kernel/module_signature.c: the signature must fit in the file
/// (`EBADMSG`), be PKCS#7 (`ENOPKG`, `"%s: not signed with expected PKCS#7 message"`) and have
/// every other field zero (`EBADMSG`, `"%s: PKCS#7 signature info has unexpected non-zero
/// params"`).
pub fn mod_check_sig(
    ms: &ModuleSignature,
    file_len: usize,
    name: &str,
    log: &mut KernelLog,
) -> Result<(), Errno> {
    if ms.sig_len as usize >= file_len.saturating_sub(ModuleSignature::SIZE) {
        return Err(Errno::EBADMSG);
    }
    if ms.id_type != PKEY_ID_PKCS7 {
        log.err(format!("{name}: not signed with expected PKCS#7 message"));
        return Err(Errno::ENOPKG);
    }
    if ms.algo != 0 || ms.hash != 0 || ms.signer_len != 0 || ms.key_id_len != 0 || ms.pad != [0; 3]
    {
        log.err(format!(
            "{name}: PKCS#7 signature info has unexpected non-zero params"
        ));
        return Err(Errno::EBADMSG);
    }
    Ok(())
}

/// Models `verify_pkcs7_signature(data, sig, VERIFY_USE_SECONDARY_KEYRING,
/// VERIFYING_MODULE_SIGNATURE)` for a module, structurally (see the [module
/// documentation](self) for the trust decision):
///
/// - `pkcs7_parse_message()`: an unparsable message is `EBADMSG` without a log line (the
///   recorded `bad_sig_garbage` case); the parser actions' refusals give their errno and, where
///   the kernel's line does not depend on its internal OID numbering, their `PKCS7: ` line;
/// - `pkcs7_supply_detached_data()`: content inside the message is `EBADMSG`;
/// - `pkcs7_verify()` for modules: content not `pkcs7-data`, or authenticated attributes, is
///   `EKEYREJECTED` with `PKCS7: Invalid module sig (...)`;
/// - `pkcs7_validate_trust()`: `Ok` when a signer is the profile's signing key, else `ENOKEY`
///   (silent, as in the kernel; the platform keyring retry finds nothing either).
pub fn verify_pkcs7_signature(
    profile: &Profile,
    _data: &[u8],
    sig: &[u8],
    log: &mut KernelLog,
) -> Result<(), Errno> {
    let msg = match parse_pkcs7(sig) {
        Ok(m) => m,
        Err(e) => {
            let (errno, line) = match e {
                Pkcs7Error::Malformed(_) => (Errno::EBADMSG, None),
                Pkcs7Error::NotSignedData => (
                    Errno::EINVAL,
                    Some("PKCS7: Only support pkcs7_signedData type"),
                ),
                Pkcs7Error::SignedDataVersion => {
                    (Errno::EINVAL, Some("PKCS7: Unsupported SignedData version"))
                }
                // "PKCS7: Unsupported data type %d" with the kernel's enum OID index: not
                // reproduced.
                Pkcs7Error::UnsupportedDataType => (Errno::EINVAL, None),
                Pkcs7Error::SignerInfoVersion => {
                    (Errno::EINVAL, Some("PKCS7: Unsupported SignerInfo version"))
                }
                Pkcs7Error::VersionMismatch => (
                    Errno::EBADMSG,
                    Some("PKCS7: SignedData-SignerInfo version mismatch"),
                ),
                // "Unsupported digest/pkey algo: %u" with the enum OID index: not reproduced.
                Pkcs7Error::UnsupportedDigest | Pkcs7Error::UnsupportedPkey => {
                    (Errno::ENOPKG, None)
                }
                Pkcs7Error::AuthenticodeWithoutAuthAttrs => (
                    Errno::EBADMSG,
                    Some("PKCS7: Authenticode requires AuthAttrs"),
                ),
                Pkcs7Error::InconsistentAuthAttrs => (
                    Errno::EINVAL,
                    Some("PKCS7: Inconsistently supplied authAttrs"),
                ),
            };
            if let Some(l) = line {
                log.warn(l);
            }
            return Err(errno);
        }
    };
    if msg.has_content {
        log.warn("PKCS7: Data already supplied");
        log.err("PKCS#7 signature with non-detached data");
        return Err(Errno::EBADMSG);
    }
    if !msg.data_is_pkcs7_data {
        log.warn("PKCS7: Invalid module sig (not pkcs7-data)");
        return Err(Errno::EKEYREJECTED);
    }
    if msg.has_authattrs {
        log.warn("PKCS7: Invalid module sig (has authattrs)");
        return Err(Errno::EKEYREJECTED);
    }
    let trusted = profile
        .signing_key()
        .and_then(|k| parse_certificate_id(&k.certificate).ok());
    match trusted {
        Some(cert) if msg.signers.iter().any(|s| cert.matches(&s.sid)) => Ok(()),
        _ => Err(Errno::ENOKEY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::pkcs7::tests::message;
    use crate::load::elf_check::tests::{KERNELS, fixture, profile};

    /// `module` + `sig` + `struct module_signature` + marker, as `sign-file` appends them.
    fn append(module: &[u8], sig: &[u8]) -> Vec<u8> {
        let ms = ModuleSignature {
            algo: 0,
            hash: 0,
            id_type: PKEY_ID_PKCS7,
            signer_len: 0,
            key_id_len: 0,
            pad: [0; 3],
            sig_len: sig.len() as u32,
        };
        [module, sig, &ms.to_bytes(), &MODULE_SIG_STRING[..]].concat()
    }

    fn check(
        kernel: &str,
        image: &[u8],
        settings: &SigSettings,
    ) -> (Result<SigCheck, Errno>, Vec<String>) {
        let mut log = KernelLog::new();
        let r = module_sig_check(profile(kernel), image, 0, settings, &mut log);
        (r, log.texts())
    }

    #[test]
    fn a_message_from_the_profile_key_is_trusted_and_another_key_is_enokey() {
        for kernel in KERNELS {
            let module = fixture(kernel, "mp_lib.ko");
            let key = profile(kernel).signing_key().unwrap();
            let cert = parse_certificate_id(&key.certificate).unwrap();
            assert_eq!(cert.serial, key.serial);
            let signed = append(&module, &message(&cert.issuer, &cert.serial));
            let ok = SigCheck {
                len: module.len(),
                sig_ok: true,
            };
            assert_eq!(
                check(kernel, &signed, &SigSettings::default()),
                (Ok(ok), vec![])
            );

            let other = append(&module, &message(&cert.issuer, &[0x01, 0x02]));
            let soft = SigCheck {
                len: module.len(),
                sig_ok: false,
            };
            assert_eq!(
                check(kernel, &other, &SigSettings::default()),
                (Ok(soft), vec![])
            );
            let enforce = SigSettings {
                sig_enforce: true,
                ..SigSettings::default()
            };
            assert_eq!(
                check(kernel, &other, &enforce),
                (
                    Err(Errno::EKEYREJECTED),
                    vec!["Loading of module with unavailable key is rejected".to_owned()]
                )
            );
            // a mangled module is unsigned, whatever its trailer
            let mut log = KernelLog::new();
            let r = module_sig_check(
                profile(kernel),
                &signed,
                MODULE_INIT_IGNORE_VERMAGIC,
                &enforce,
                &mut log,
            );
            assert_eq!(r, Err(Errno::EKEYREJECTED));
            assert_eq!(log.texts(), ["Loading of unsigned module is rejected"]);
        }
    }

    #[test]
    fn lockdown_refuses_unsigned_modules_with_its_message() {
        let lockdown = SigSettings {
            lockdown: true,
            comm: "modprobe".into(),
            ..SigSettings::default()
        };
        let module = fixture("debian-6.12-amd64", "mp_lib.ko");
        assert_eq!(
            check("debian-6.12-amd64", &module, &lockdown),
            (
                Err(Errno::EPERM),
                vec![
                    "Lockdown: modprobe: unsigned module loading is restricted; see man kernel_lockdown.7"
                        .to_owned()
                ]
            )
        );
    }

    #[test]
    fn pkcs7_parser_refusals_give_the_kernel_errno() {
        let kernel = "debian-6.1-arm64";
        let module = fixture(kernel, "mp_lib.ko");
        let mut m = message(b"issuer", &[1]);
        // the outer contentType OID ends at byte 14: signedData (..07 02) -> data (..07 01)
        assert_eq!(m[14], 0x02);
        m[14] = 0x01;
        assert_eq!(
            check(kernel, &append(&module, &m), &SigSettings::default()),
            (
                Err(Errno::EINVAL),
                vec!["PKCS7: Only support pkcs7_signedData type".to_owned()]
            )
        );
        // a truncated message is unparsable: EBADMSG, silently, even when not enforcing
        let m = message(b"issuer", &[1]);
        let cut = append(&module, &m[..m.len() - 1]);
        assert_eq!(
            check(kernel, &cut, &SigSettings::default()),
            (Err(Errno::EBADMSG), vec![])
        );
    }
}
