//! `pkcs7`: module signatures — the simulator's PKCS#7 and certificate parsers
//! (`sim::image::parse_pkcs7`, `parse_certificate_id`, `ModuleSignature::parse`), its
//! signature check on a signed `mp_lib.ko` (`init_module` under `sig_enforce`), the loader's
//! signature reader (`loader::modinfo::read(..).signature`) and the `modinfo` command on the
//! signed file.
//!
//! Input: `[b0][b1][rest...]`
//! - b0: bits 0-1 the kernel; bit 2 `sig_enforce`; bit 3 synthesize: `rest` is
//!   `[digest][pkey][options][encrypted digest...]` and the message is built here, signed by
//!   the profile's key unless the options say otherwise (see `synthesize`); else `rest` is the
//!   message itself; bit 4 `module_signature.id_type` = b1 (else PKCS#7); bit 5 `algo` = b1;
//!   bit 6 run the `modinfo` command on the signed file.
//!
//! Invariants: under `sig_enforce`, a module loads only with a message the parser accepts and
//! whose signer is the profile's key; a synthesized message loads exactly when it is
//! well-formed, detached, `pkcs7-data`, without authenticated attributes, with known
//! algorithms and signed by that key (and then `sig_ok` is set); the loader's reader finds the
//! signature where it was appended and, for a synthesized v1 message, the signer, serial,
//! digest and signature that were put in; the command exits 0 or 1.
#![no_main]

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;
use modsim_fuzz::{Input, alloc, fixtures};
use sim::image::{
    CertificateId, MODULE_SIG_STRING, ModuleSignature, PKEY_ID_PKCS7, SignerId,
    parse_certificate_id, parse_pkcs7,
};
use sim::kernel::{Kernel, Settings};

fuzz_target!(init: modsim_fuzz::init(), |data: &[u8]| run(data));

/// A DER value: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes = (n as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        v.push(0x80 | (4 - skip) as u8);
        v.extend_from_slice(&bytes[skip..]);
    }
    v.extend_from_slice(content);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const OID: u8 = 0x06;
const SEQ: u8 = 0x30;
const SET: u8 = 0x31;
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_MS_INDIRECT_DATA: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04];
/// (OID, the name kmod prints, known to the kernel).
const DIGESTS: [(&[u8], Option<&str>, bool); 5] = [
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        Some("sha256"),
        true,
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        Some("sha512"),
        true,
    ),
    (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], Some("sha1"), true),
    // sha3-256: the kernel knows it, kmod does not name it.
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x08],
        None,
        true,
    ),
    // ripemd160: kmod names it, the kernel does not know it.
    (&[0x2b, 0x24, 0x03, 0x02, 0x01], Some("rmd160"), false),
];
const PKEYS: [(&[u8], bool); 3] = [
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        true,
    ),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], true),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        false,
    ),
];

/// What a synthesized message should do.
struct Synth {
    msg: Vec<u8>,
    /// The kernel accepts it as signed by the profile's key.
    trusted: bool,
    /// The loader's reader should find this (signer's serial, digest name, encrypted digest).
    loader_sees: Option<(Vec<u8>, Option<&'static str>, Vec<u8>)>,
}

/// A PKCS#7 `SignedData` from `[digest][pkey][options][encrypted digest...]`; the options'
/// bits: 0 CMS v3 with the certificate's subject key id as the signer, 1 another serial (or
/// key id), 2 authenticated attributes, 3 content inside, 4 certificates, 5 Authenticode's
/// content type, 6 a second signer, 7 digestAlgorithms as a SEQUENCE.
fn synthesize(cert: &CertificateId, inp: &mut Input<'_>) -> Synth {
    let (digest, dname, dknown) = DIGESTS[usize::from(inp.u8()) % DIGESTS.len()];
    let (pkey, pknown) = PKEYS[usize::from(inp.u8()) % PKEYS.len()];
    let o = inp.u8();
    let encrypted = inp.rest();
    let v3 = o & 1 != 0;
    let other = o & 2 != 0;
    let authattrs = o & 4 != 0;
    let content = o & 8 != 0;
    let certs = o & 0x10 != 0;
    let authenticode = o & 0x20 != 0;
    let two = o & 0x40 != 0;
    let digests_seq = o & 0x80 != 0;

    let mut serial = cert.serial.clone();
    if other {
        match serial.last_mut() {
            Some(b) => *b ^= 1,
            None => serial.push(1),
        }
    }
    let sid = if v3 {
        let mut k = cert.skid.clone().unwrap_or_default();
        if other {
            k.push(0x55);
        }
        der(0x80, &k)
    } else {
        der(SEQ, &cat(&[&der(SEQ, &cert.issuer), &der(0x02, &serial)]))
    };
    let version: &[u8] = if v3 { &[3] } else { &[1] };
    let alg = |oid: &[u8]| der(SEQ, &cat(&[&der(OID, oid), &[0x05, 0x00]]));
    let attrs = if authattrs {
        der(
            0xa0,
            &der(
                SEQ,
                &cat(&[&der(OID, OID_DATA), &der(SET, &der(OID, OID_DATA))]),
            ),
        )
    } else {
        Vec::new()
    };
    let signer = der(
        SEQ,
        &cat(&[
            &der(0x02, version),
            &sid,
            &alg(digest),
            &attrs,
            &alg(pkey),
            &der(0x04, encrypted),
        ]),
    );
    let signers = if two {
        cat(&[&signer, &signer])
    } else {
        signer.clone()
    };
    let ctype = if authenticode {
        OID_MS_INDIRECT_DATA
    } else {
        OID_DATA
    };
    let inner = der(
        SEQ,
        &cat(&[
            &der(OID, ctype),
            &if content {
                der(0xa0, &der(0x04, b"data"))
            } else {
                Vec::new()
            },
        ]),
    );
    let signed_data = der(
        SEQ,
        &cat(&[
            &der(0x02, version),
            &der(if digests_seq { SEQ } else { SET }, &alg(digest)),
            &inner,
            &if certs {
                der(0xa0, &der(SEQ, b""))
            } else {
                Vec::new()
            },
            &der(SET, &signers),
        ]),
    );
    let msg = der(
        SEQ,
        &cat(&[&der(OID, OID_SIGNED_DATA), &der(0xa0, &signed_data)]),
    );
    let matches = !other && (!v3 || cert.skid.is_some());
    let trusted = dknown
        && pknown
        && !authattrs
        && !content
        && !authenticode
        && matches
        // Authenticode without attributes is refused before the trust decision anyway.
        ;
    let loader_sees = (!v3 && !digests_seq).then(|| {
        let key: Vec<u8> = serial.iter().copied().skip_while(|&b| b == 0).collect();
        (key, dname, encrypted.to_vec())
    });
    Synth {
        msg,
        trusted,
        loader_sees,
    }
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let (b0, b1) = (inp.u8(), inp.u8());
    let kernel = b0 & 3;
    let profile = modsim_fuzz::profile(kernel);
    let Some(key) = profile.signing_key() else {
        return;
    };
    let cert = parse_certificate_id(&key.certificate).expect("the profile's certificate");
    let enforce = b0 & 4 != 0;

    alloc::begin(modsim_fuzz::budget(data.len(), 64 << 20));
    let synth = (b0 & 8 != 0).then(|| synthesize(&cert, &mut inp));
    let msg: &[u8] = match &synth {
        Some(s) => &s.msg,
        None => inp.rest(),
    };

    // The parsers on their own.
    let parsed = parse_pkcs7(msg);
    let _ = parse_certificate_id(msg);
    let _ = ModuleSignature::parse(msg, 0);
    let _ = ModuleSignature::parse(msg, msg.len().saturating_sub(ModuleSignature::SIZE) as u64);

    // mp_lib.ko with the message appended as its signature.
    let base = fixtures::mp_lib(kernel);
    let ms = ModuleSignature {
        algo: if b0 & 0x20 != 0 { b1 } else { 0 },
        hash: 0,
        id_type: if b0 & 0x10 != 0 { b1 } else { PKEY_ID_PKCS7 },
        signer_len: 0,
        key_id_len: 0,
        pad: [0; 3],
        sig_len: msg.len() as u32,
    };
    let clean = ms.algo == 0 && ms.id_type == PKEY_ID_PKCS7;
    let image = cat(&[base, msg, &ms.to_bytes(), MODULE_SIG_STRING]);

    let settings = Settings {
        sig_enforce: enforce,
        memory_limit: 64 << 20,
        ..Settings::default()
    };
    let mut k = Kernel::with_settings(profile, settings);
    let r = k.init_module(&image, Some(b""));
    let signer_ok = parsed
        .as_ref()
        .is_ok_and(|m| m.signers.iter().any(|s| cert.matches(&s.sid)));
    if r.is_ok() && enforce {
        assert!(
            signer_ok && clean,
            "invariant: pkcs7: a module loaded under sig_enforce without a valid signature \
             ({parsed:?})"
        );
        let m = k.module("mp_lib").expect("mp_lib loaded");
        assert!(m.sig_ok, "invariant: pkcs7: enforced load without sig_ok");
    }
    if let Some(s) = &synth {
        if enforce && clean && !msg.is_empty() {
            assert_eq!(
                r.is_ok(),
                s.trusted,
                "invariant: pkcs7: a synthesized message (trusted: {}) gave {r:?}; parsed \
                 {parsed:?}",
                s.trusted
            );
        }
        if s.trusted && clean {
            assert!(
                signer_ok,
                "invariant: pkcs7: a well-formed message signed by the profile's key is not \
                 recognised: {parsed:?}"
            );
        }
        if let Ok(m) = &parsed {
            let v3 = m
                .signers
                .iter()
                .any(|s| matches!(s.sid, SignerId::SubjectKeyId(_)));
            assert!(v3 || m.version == 1 || m.signers.is_empty());
        }
    }
    drop(k);

    // The loader's reader.
    let info = loader::modinfo::read(&image).expect("mp_lib.ko with a signature is ELF");
    if let Some(sig) = &info.signature
        && ms.id_type == PKEY_ID_PKCS7
    {
        assert_eq!(
            sig.signed_len,
            base.len(),
            "invariant: the loader's signature does not start where it was appended"
        );
        assert_eq!(sig.id_type, "PKCS#7");
    }
    if let Some(s) = &synth
        && clean
        && let Some((serial, digest, encrypted)) = &s.loader_sees
    {
        let sig = info.signature.as_ref().unwrap_or_else(|| {
            panic!("invariant: the loader's reader found no signature in a v1 message")
        });
        assert_eq!(
            (&sig.key_id, sig.hash_algo, &sig.signature),
            (serial, *digest, encrypted),
            "invariant: the loader's reader misread a synthesized signature"
        );
        assert_eq!(
            sig.signer.as_deref(),
            Some(key.signer.as_str()),
            "invariant: the loader's reader names another signer"
        );
    }

    if b0 & 0x40 != 0 {
        let path = modsim_fuzz::scratch_dir().join("signed.ko");
        std::fs::write(&path, &image).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let args: Vec<OsString> = vec!["modinfo".into(), path.into_os_string()];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = loader::cli::modinfo::run(&args, &mut out, &mut err);
        assert!(code == 0 || code == 1, "invariant: modinfo exited {code}");
    }
    alloc::end();
}
