//! Just enough DER to read a module signature's PKCS#7 message and a signing certificate: the
//! structure the kernel's `pkcs7_parse_message()` (`crypto/asymmetric_keys/pkcs7.asn1`)
//! accepts, and who signed. Nothing is verified cryptographically here.
//!
//! Bounded: every length is checked against the bytes that hold it, nesting is fixed by the
//! grammar (no recursion on input), and only definite-length DER is read (the kernel's BER
//! decoder also takes indefinite lengths; module signatures made by `sign-file` or openssl
//! never use them).

use super::ImageError;

/// Who signed: the `sid` of a `SignerInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    /// `issuerAndSerialNumber`: the content bytes of the issuer `Name` and of the serial
    /// `INTEGER` (what the kernel makes the key id from).
    IssuerSerial {
        /// Content of the issuer `Name` SEQUENCE.
        issuer: Vec<u8>,
        /// Content of the serial number INTEGER.
        serial: Vec<u8>,
    },
    /// `subjectKeyIdentifier` (`[0] IMPLICIT`, CMS version 3).
    SubjectKeyId(Vec<u8>),
}

/// What the load path needs from a PKCS#7 `SignedData` message that the kernel's parser
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs7Info {
    /// `SignedData.version` (1 or 3).
    pub version: u8,
    /// The inner `contentType` is `data` (`pkcs7-data`); otherwise it is Authenticode's
    /// `msIndirectData`.
    pub data_is_pkcs7_data: bool,
    /// The message carries its content (not detached).
    pub has_content: bool,
    /// The message carries certificates (not parsed).
    pub has_certificates: bool,
    /// Some `SignerInfo` has authenticated attributes (`have_authattrs`).
    pub has_authattrs: bool,
    /// One entry per `SignerInfo`.
    pub signers: Vec<SignerInfoSummary>,
}

/// One `SignerInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfoSummary {
    /// `SignerInfo.version` (1: issuer and serial; 3: subject key id).
    pub version: u8,
    /// The signer.
    pub sid: SignerId,
    /// It has authenticated attributes.
    pub has_authattrs: bool,
}

/// Why the kernel's `pkcs7_parse_message()` refuses a message, in the order its ASN.1 decoder
/// and actions (`pkcs7_parser.c`) find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkcs7Error {
    /// Not DER of the grammar (the ASN.1 decoder: `EBADMSG`, no log line).
    Malformed(String),
    /// `pkcs7_check_content_type()`: the outer content type is not `signedData`.
    NotSignedData,
    /// `pkcs7_note_signeddata_version()`: version not 1 or 3.
    SignedDataVersion,
    /// `pkcs7_note_content()`: inner content type neither `data` nor `msIndirectData`.
    UnsupportedDataType,
    /// `pkcs7_note_signerinfo_version()`: version not 1 or 3.
    SignerInfoVersion,
    /// `pkcs7_note_signerinfo_version()`: SignerInfo v1 in CMS SignedData or v3 in PKCS#7.
    VersionMismatch,
    /// `pkcs7_sig_note_digest_algo()`: a digest algorithm the kernel does not know.
    UnsupportedDigest,
    /// `pkcs7_sig_note_pkey_algo()`: a signature algorithm the kernel does not know.
    UnsupportedPkey,
    /// `pkcs7_note_signed_info()`: Authenticode content without authenticated attributes.
    AuthenticodeWithoutAuthAttrs,
    /// `pkcs7_check_authattrs()`: no SignerInfo, or some with and some without attributes.
    InconsistentAuthAttrs,
}

impl From<ImageError> for Pkcs7Error {
    fn from(e: ImageError) -> Self {
        Pkcs7Error::Malformed(e.to_string())
    }
}

/// The identity of a certificate: issuer, serial and subject key identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateId {
    /// Content of the issuer `Name`.
    pub issuer: Vec<u8>,
    /// Content of the serial number INTEGER.
    pub serial: Vec<u8>,
    /// The `subjectKeyIdentifier` extension's key id, if any.
    pub skid: Option<Vec<u8>>,
}

impl CertificateId {
    /// Whether `sid` names this certificate (the kernel's `find_asymmetric_key()` by the
    /// signer's key id: issuer + serial, or the subject key id). Cannot fail.
    pub fn matches(&self, sid: &SignerId) -> bool {
        match sid {
            SignerId::IssuerSerial { issuer, serial } => {
                *issuer == self.issuer && *serial == self.serial
            }
            SignerId::SubjectKeyId(k) => self.skid.as_ref() == Some(k),
        }
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const CTX0_CONS: u8 = 0xa0;
const CTX0_PRIM: u8 = 0x80;

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_MS_INDIRECT_DATA: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04];
const OID_SKID: &[u8] = &[0x55, 0x1d, 0x0e];

/// Digest algorithms of `pkcs7_sig_note_digest_algo()` (6.1 and 6.12): md4, md5, sha1,
/// sha224/256/384/512, sha3-256/384/512, sm3, streebog256/512.
const DIGEST_OIDS: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x04],
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05],
    &[0x2b, 0x0e, 0x03, 0x02, 0x1a],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x08],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x09],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x0a],
    &[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11],
    &[0x2a, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02],
    &[0x2a, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x03],
];

/// Signature algorithms of `pkcs7_sig_note_pkey_algo()`: rsaEncryption, ecdsa-with-SHA1,
/// ecdsa-with-SHA224/256/384/512, ecdsa-with-SHA3-256/384/512, SM2-with-SM3, GOST 2012.
const PKEY_OIDS: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0a],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0b],
    &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0c],
    &[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75],
    &[0x2a, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x01],
    &[0x2a, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x02],
];

/// A DER reader over one level of TLVs.
struct Der<'a> {
    rest: &'a [u8],
}

fn bad(what: &str) -> ImageError {
    ImageError::Malformed(format!("DER: {what}"))
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Self {
        Der { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV: its tag and content.
    fn any(&mut self) -> Result<(u8, &'a [u8]), ImageError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or_else(|| bad("end of data"))?;
        if tag & 0x1f == 0x1f {
            return Err(bad("multi-byte tag"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or_else(|| bad("no length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(bad("unsupported length form"));
            }
            let (lb, rest) = after_len
                .split_at_checked(n)
                .ok_or_else(|| bad("truncated length"))?;
            after_len = rest;
            lb.iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (content, rest) = after_len
            .split_at_checked(len)
            .ok_or_else(|| bad("content past the end"))?;
        self.rest = rest;
        Ok((tag, content))
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], ImageError> {
        match self.any()? {
            (t, c) if t == tag => Ok(c),
            _ => Err(bad(what)),
        }
    }

    /// The next TLV if it has `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, ImageError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(|(_, c)| Some(c))
        } else {
            Ok(None)
        }
    }
}

/// An `AlgorithmIdentifier`: its OID.
fn algorithm(c: &[u8]) -> Result<&[u8], ImageError> {
    Der::new(c).expect(OID, "algorithm OID")
}

/// Parses a PKCS#7 `ContentInfo` holding `SignedData` along the kernel's grammar
/// (`pkcs7.asn1`), with the checks of its parser actions in the order they run. Fails with the
/// first [`Pkcs7Error`] the kernel would hit (certificates inside the message are skipped, not
/// parsed; authenticated attributes are not looked into).
pub fn parse_pkcs7(data: &[u8]) -> Result<Pkcs7Info, Pkcs7Error> {
    let mut top = Der::new(data);
    let mut ci = Der::new(top.expect(SEQUENCE, "ContentInfo")?);
    if ci.expect(OID, "contentType")? != OID_SIGNED_DATA {
        return Err(Pkcs7Error::NotSignedData);
    }
    let mut signers = Vec::new();
    let mut info = Pkcs7Info {
        version: 0,
        data_is_pkcs7_data: false,
        has_content: false,
        has_certificates: false,
        has_authattrs: false,
        signers: Vec::new(),
    };
    if let Some(explicit) = ci.optional(CTX0_CONS)? {
        let mut sd = Der::new(Der::new(explicit).expect(SEQUENCE, "SignedData")?);
        info.version = match one_byte(sd.expect(INTEGER, "SignedData version")?) {
            Some(v @ (1 | 3)) => v,
            _ => return Err(Pkcs7Error::SignedDataVersion),
        };
        match sd.any()? {
            (SET | SEQUENCE, _) => {}
            _ => return Err(bad("digestAlgorithms").into()),
        }
        let mut inner = Der::new(sd.expect(SEQUENCE, "contentInfo")?);
        let data_type = inner.expect(OID, "content type")?;
        info.has_content = inner.optional(CTX0_CONS)?.is_some();
        info.data_is_pkcs7_data = data_type == OID_DATA;
        if !info.data_is_pkcs7_data && data_type != OID_MS_INDIRECT_DATA {
            return Err(Pkcs7Error::UnsupportedDataType);
        }
        // certificates [0]/[2] and crls [1]/[3], IMPLICIT, optional
        for tag in [0xa0u8, 0xa2] {
            if sd.peek_tag() == Some(tag) {
                sd.any()?;
                info.has_certificates = true;
            }
        }
        for tag in [0xa1u8, 0xa3] {
            if sd.peek_tag() == Some(tag) {
                sd.any()?;
            }
        }
        let signer_infos = match sd.any()? {
            (SET | SEQUENCE, c) => c,
            _ => return Err(bad("signerInfos").into()),
        };
        let mut sis = Der::new(signer_infos);
        while !sis.is_empty() {
            let si = signer_info(sis.expect(SEQUENCE, "SignerInfo")?, &info)?;
            signers.push(si);
        }
    }
    // pkcs7_check_authattrs()
    let Some(first) = signers.first() else {
        return Err(Pkcs7Error::InconsistentAuthAttrs);
    };
    info.has_authattrs = first.has_authattrs;
    if signers
        .iter()
        .any(|s| s.has_authattrs != info.has_authattrs)
    {
        return Err(Pkcs7Error::InconsistentAuthAttrs);
    }
    info.signers = signers;
    Ok(info)
}

fn signer_info(c: &[u8], msg: &Pkcs7Info) -> Result<SignerInfoSummary, Pkcs7Error> {
    let mut si = Der::new(c);
    let version = match one_byte(si.expect(INTEGER, "SignerInfo version")?) {
        Some(1) if msg.version != 1 => return Err(Pkcs7Error::VersionMismatch),
        Some(3) if msg.version == 1 => return Err(Pkcs7Error::VersionMismatch),
        Some(v @ (1 | 3)) => v,
        _ => return Err(Pkcs7Error::SignerInfoVersion),
    };
    let sid = match si.any()? {
        (SEQUENCE, ias) => {
            let mut ias = Der::new(ias);
            let issuer = ias.expect(SEQUENCE, "issuer")?.to_vec();
            let serial = ias.expect(INTEGER, "serial")?.to_vec();
            SignerId::IssuerSerial { issuer, serial }
        }
        (CTX0_PRIM, skid) => SignerId::SubjectKeyId(skid.to_vec()),
        _ => return Err(bad("sid").into()),
    };
    if !DIGEST_OIDS.contains(&algorithm(si.expect(SEQUENCE, "digestAlgorithm")?)?) {
        return Err(Pkcs7Error::UnsupportedDigest);
    }
    let mut has_authattrs = false;
    for tag in [0xa0u8, 0xa2] {
        if si.peek_tag() == Some(tag) {
            si.any()?;
            has_authattrs = true;
        }
    }
    if !PKEY_OIDS.contains(&algorithm(
        si.expect(SEQUENCE, "digestEncryptionAlgorithm")?,
    )?) {
        return Err(Pkcs7Error::UnsupportedPkey);
    }
    si.expect(OCTET_STRING, "encryptedDigest")?;
    if !msg.data_is_pkcs7_data && !has_authattrs {
        return Err(Pkcs7Error::AuthenticodeWithoutAuthAttrs);
    }
    Ok(SignerInfoSummary {
        version,
        sid,
        has_authattrs,
    })
}

fn one_byte(v: &[u8]) -> Option<u8> {
    match v {
        [b] => Some(*b),
        _ => None,
    }
}

/// Reads issuer, serial and subject key id of an X.509 certificate (DER); fails with
/// [`ImageError::Malformed`] when it does not have a certificate's shape.
pub fn parse_certificate_id(der: &[u8]) -> Result<CertificateId, ImageError> {
    let mut cert = Der::new(Der::new(der).expect(SEQUENCE, "Certificate")?);
    let mut tbs = Der::new(cert.expect(SEQUENCE, "tbsCertificate")?);
    tbs.optional(CTX0_CONS)?; // version
    let serial = tbs.expect(INTEGER, "serialNumber")?.to_vec();
    tbs.expect(SEQUENCE, "signature")?;
    let issuer = tbs.expect(SEQUENCE, "issuer")?.to_vec();
    tbs.expect(SEQUENCE, "validity")?;
    tbs.expect(SEQUENCE, "subject")?;
    tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut skid = None;
    while !tbs.is_empty() {
        let (tag, c) = tbs.any()?;
        if tag != 0xa3 {
            continue; // issuerUniqueID [1], subjectUniqueID [2]
        }
        let mut exts = Der::new(Der::new(c).expect(SEQUENCE, "extensions")?);
        while !exts.is_empty() {
            let mut ext = Der::new(exts.expect(SEQUENCE, "extension")?);
            let id = ext.expect(OID, "extnID")?;
            ext.optional(BOOLEAN)?;
            let value = ext.expect(OCTET_STRING, "extnValue")?;
            if id == OID_SKID {
                skid = Some(
                    Der::new(value)
                        .expect(OCTET_STRING, "keyIdentifier")?
                        .to_vec(),
                );
            }
        }
    }
    Ok(CertificateId {
        issuer,
        serial,
        skid,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = content.len();
        if n < 0x80 {
            v.push(n as u8);
        } else {
            v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend_from_slice(content);
        v
    }

    /// A minimal module-signature-shaped message signed by issuer `iss`, serial `ser`.
    pub(crate) fn message(iss: &[u8], ser: &[u8]) -> Vec<u8> {
        let sha256 = tlv(SEQUENCE, &tlv(OID, DIGEST_OIDS[4]));
        let signer = [
            tlv(INTEGER, &[1]),
            tlv(SEQUENCE, &[tlv(SEQUENCE, iss), tlv(INTEGER, ser)].concat()),
            sha256.clone(),
            tlv(SEQUENCE, &tlv(OID, PKEY_OIDS[0])),
            tlv(OCTET_STRING, &[0x55; 200]),
        ]
        .concat();
        let sd = [
            tlv(INTEGER, &[1]),
            tlv(SET, &sha256),
            tlv(SEQUENCE, &tlv(OID, OID_DATA)),
            tlv(SET, &tlv(SEQUENCE, &signer)),
        ]
        .concat();
        tlv(
            SEQUENCE,
            &[
                tlv(OID, OID_SIGNED_DATA),
                tlv(CTX0_CONS, &tlv(SEQUENCE, &sd)),
            ]
            .concat(),
        )
    }

    #[test]
    fn a_detached_signed_data_message_gives_its_signer() {
        let m = message(b"issuer", &[0x66, 0xf5]);
        let p = parse_pkcs7(&m).unwrap();
        assert!(p.data_is_pkcs7_data && !p.has_content && !p.has_authattrs);
        assert_eq!(p.version, 1);
        assert_eq!(p.signers.len(), 1);
        let s = &p.signers[0];
        assert_eq!(
            s.sid,
            SignerId::IssuerSerial {
                issuer: b"issuer".to_vec(),
                serial: vec![0x66, 0xf5]
            }
        );
    }

    #[test]
    fn every_truncation_of_a_message_is_an_error_not_a_panic() {
        let m = message(b"issuer", &[1]);
        for n in 0..m.len() {
            assert!(parse_pkcs7(&m[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            parse_pkcs7(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(Pkcs7Error::Malformed(_))
        ));
        assert!(matches!(
            parse_pkcs7(&[0x1f, 0x00]),
            Err(Pkcs7Error::Malformed(_))
        ));
        let not_signed = tlv(SEQUENCE, &[tlv(OID, OID_DATA), vec![0xff]].concat());
        assert_eq!(parse_pkcs7(&not_signed), Err(Pkcs7Error::NotSignedData));
        let no_content = tlv(SEQUENCE, &tlv(OID, OID_SIGNED_DATA));
        assert_eq!(
            parse_pkcs7(&no_content),
            Err(Pkcs7Error::InconsistentAuthAttrs)
        );
        assert!(parse_certificate_id(b"not a certificate").is_err());
    }
}
