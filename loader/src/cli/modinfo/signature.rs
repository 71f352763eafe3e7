//! The signature fields kmod's `kmod_module_get_info` adds (`sig_id`, `signer`, `sig_key`,
//! `sig_hashalgo`, `signature`), read as libkmod-signature.c does with OpenSSL (`+LIBCRYPTO`).
//!
//! A signed module ends with `[signer][key id][signature][struct module_signature]
//! "~Module signature appended~\n"`; the 12-byte `module_signature` holds the algorithm, hash
//! and identifier type indexes, the signer and key id lengths and the big-endian signature
//! length. kmod shows nothing when the magic is missing, an index is out of range, the
//! signature length is 0 or the three lengths pass the start of the file. For the PGP and X509
//! identifier types the fields are the raw bytes; for PKCS#7 (what the kernel's sign-file
//! writes) they come from the message: the first signer's issuer common name (else the last
//! attribute of the name), its serial number, digest algorithm and encrypted digest — and the
//! message must be one OpenSSL's `d2i_PKCS7` decodes, else kmod shows no signature at all.
//!
//! [`Der`] follows OpenSSL's decoder where a module's message can differ: long-form lengths with
//! leading zeros, high tag numbers, strings in constructed (BER) form whose pieces are
//! concatenated, the value checks of `c2i` (minimal INTEGERs, well-formed OIDs, NULL, BOOLEAN,
//! BIT STRING, BMPString and UniversalString lengths), the tag types an `X509_NAME` entry may
//! have and the UTF-8 conversion its canonical form needs. Indefinite lengths are refused (sign-
//! file writes DER). The PKCS#7 template is checked field by field; certificates and
//! attributes, which kmod does not look at, only for well-formed encoding.

/// `~Module signature appended~\n`.
const SIG_MAGIC: &[u8] = b"~Module signature appended~\n";
/// `sizeof(struct module_signature)`.
const MODSIG_LEN: usize = 12;
/// `enum pkey_id_type` names.
const ID_TYPES: [&str; 3] = ["PGP", "X509", "PKCS#7"];
/// `enum pkey_hash_algo` names.
const HASH_ALGOS: [&str; 9] = [
    "md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3",
];
/// The digest algorithms OpenSSL's NIDs map to in `obj_to_hash_algo`, by OID contents.
const DIGESTS: [(&[u8], &str); 9] = [
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x04], "md4"),
    (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05], "md5"),
    (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], "sha1"),
    (&[0x2b, 0x24, 0x03, 0x02, 0x01], "rmd160"),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        "sha256",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        "sha384",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        "sha512",
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04],
        "sha224",
    ),
    (&[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11], "sm3"),
];
/// 1.2.840.113549.1.7.2
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// 1.2.840.113549.1.7.1
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// 2.5.4.3
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// `ASN1_MAX_STRING_NEST`.
const MAX_STRING_NEST: usize = 5;

const BOOLEAN: u32 = 1;
const INTEGER: u32 = 2;
const BIT_STRING: u32 = 3;
const OCTET_STRING: u32 = 4;
const NULL: u32 = 5;
const OID: u32 = 6;
const ENUMERATED: u32 = 10;
const UTF8_STRING: u32 = 12;
const SEQUENCE: u32 = 16;
const SET: u32 = 17;
const UNIVERSAL_STRING: u32 = 28;
const BMP_STRING: u32 = 30;

/// The key/value pairs kmod appends for the signature of a (decompressed) module image.
pub(crate) fn entries(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Some(s) = read(data) else {
        return Vec::new();
    };
    vec![
        (b"sig_id".to_vec(), s.id_type.as_bytes().to_vec()),
        (b"signer".to_vec(), s.signer),
        (b"sig_key".to_vec(), hex(&s.key_id)),
        (b"sig_hashalgo".to_vec(), s.hash_algo.as_bytes().to_vec()),
        (b"signature".to_vec(), hex(&s.signature)),
    ]
}

/// `kmod_module_hex_to_str`: `XX:XX:...`, a line break and two tabs after every 20 bytes.
pub(crate) fn hex(bytes: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(bytes.len() * 3 + bytes.len() / 20 * 3);
    for (i, b) in bytes.iter().enumerate() {
        s.extend_from_slice(format!("{b:02X}").as_bytes());
        if i + 1 < bytes.len() {
            s.push(b':');
            if (i + 1) % 20 == 0 {
                s.extend_from_slice(b"\n\t\t");
            }
        }
    }
    s
}

/// What kmod shows of a signature.
struct Shown {
    id_type: &'static str,
    /// As `printf("%s")` prints it: up to the first NUL.
    signer: Vec<u8>,
    key_id: Vec<u8>,
    hash_algo: &'static str,
    signature: Vec<u8>,
}

/// `kmod_module_signature_info`.
fn read(data: &[u8]) -> Option<Shown> {
    let body = data.strip_suffix(SIG_MAGIC)?;
    let modsig_at = body.len().checked_sub(MODSIG_LEN)?;
    let modsig = body.get(modsig_at..)?;
    let (algo, hash, id_type) = (*modsig.first()?, *modsig.get(1)?, *modsig.get(2)?);
    let (signer_len, key_id_len) = (usize::from(*modsig.get(3)?), usize::from(*modsig.get(4)?));
    let sig_len = u32::from_be_bytes(modsig.get(8..12)?.try_into().ok()?) as usize;
    let hash_name = *HASH_ALGOS.get(usize::from(hash))?;
    let id_name = *ID_TYPES.get(usize::from(id_type))?;
    if algo >= 2
        || sig_len == 0
        || signer_len
            .saturating_add(key_id_len)
            .saturating_add(sig_len)
            > modsig_at
    {
        return None;
    }
    let sig_at = modsig_at.checked_sub(sig_len)?;
    let sig = body.get(sig_at..modsig_at)?;
    if id_name == "PKCS#7" {
        let mut s = pkcs7(sig)?;
        s.id_type = id_name;
        return Some(s);
    }
    let key_at = sig_at.checked_sub(key_id_len)?;
    let signer_at = key_at.checked_sub(signer_len)?;
    Some(Shown {
        id_type: id_name,
        signer: c_string(body.get(signer_at..key_at)?),
        key_id: body.get(key_at..sig_at)?.to_vec(),
        hash_algo: hash_name,
        signature: sig.to_vec(),
    })
}

/// The bytes up to the first NUL.
fn c_string(b: &[u8]) -> Vec<u8> {
    b.split(|&c| c == 0).next().unwrap_or(b).to_vec()
}

/// A DER value: its identifier (class and constructed bits, tag number) and contents.
#[derive(Clone, Copy)]
struct Value<'a> {
    /// The class bits (`0x00` universal, `0x80` context-specific, ...).
    class: u8,
    constructed: bool,
    number: u32,
    contents: &'a [u8],
    /// The whole encoding (identifier, length, contents).
    encoding: &'a [u8],
}

impl Value<'_> {
    fn is(&self, class: u8, constructed: bool, number: u32) -> bool {
        self.class == class && self.constructed == constructed && self.number == number
    }

    fn universal(&self, constructed: bool, number: u32) -> bool {
        self.is(0, constructed, number)
    }
}

/// A cursor over DER values.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `ASN1_get_object` on definite lengths.
    fn next(&mut self) -> Option<Value<'a>> {
        let (&first, mut rest) = self.0.split_first()?;
        let mut number = u32::from(first & 0x1f);
        if number == 0x1f {
            number = 0;
            loop {
                let (&b, r) = rest.split_first()?;
                rest = r;
                number = number.checked_mul(128)? | u32::from(b & 0x7f);
                if number > (i32::MAX as u32) >> 7 {
                    return None;
                }
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let (&l0, r) = rest.split_first()?;
        rest = r;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            // 0x80 is the indefinite length; more than 8 bytes do not fit a long.
            if n == 0 || n > 8 {
                return None;
            }
            let (lb, r) = rest.split_at_checked(n)?;
            rest = r;
            let mut v = 0usize;
            for &b in lb {
                v = v.checked_mul(256)? | usize::from(b);
            }
            v
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        let encoding = self.0.get(..self.0.len().saturating_sub(rest.len()))?;
        self.0 = rest;
        Some(Value {
            class: first & 0xc0,
            constructed: first & 0x20 != 0,
            number,
            contents,
            encoding,
        })
    }

    /// The next value, which must be a universal one of this form and number.
    fn universal(&mut self, constructed: bool, number: u32) -> Option<&'a [u8]> {
        let v = self.next()?;
        v.universal(constructed, number).then_some(v.contents)
    }

    /// The next value, a SET OF or SEQUENCE OF: OpenSSL's template decoder does not check that
    /// these are in constructed form.
    fn collection(&mut self, number: u32) -> Option<&'a [u8]> {
        let v = self.next()?;
        (v.class == 0 && v.number == number).then_some(v.contents)
    }

    /// The next value if it is `[n]`: an OPTIONAL field, EXPLICIT (constructed) or an IMPLICIT
    /// SET OF (either form).
    fn context(&mut self, n: u32, explicit: bool) -> Option<Option<&'a [u8]>> {
        let mut peek = Der(self.0);
        match peek.next() {
            Some(v) if v.class == 0x80 && v.number == n && (v.constructed || !explicit) => {
                self.0 = peek.0;
                Some(Some(v.contents))
            }
            _ => Some(None),
        }
    }

    /// An INTEGER's contents, checked as `c2i_ASN1_INTEGER` does.
    fn integer(&mut self) -> Option<&'a [u8]> {
        let v = self.universal(false, INTEGER)?;
        integer_ok(v).then_some(v)
    }

    /// An OBJECT IDENTIFIER's contents, checked as `c2i_ASN1_OBJECT` does.
    fn oid(&mut self) -> Option<&'a [u8]> {
        let v = self.universal(false, OID)?;
        oid_ok(v).then_some(v)
    }

    /// A string of type `number`: its bytes, the pieces of a constructed one concatenated.
    fn string(&mut self, number: u32) -> Option<Vec<u8>> {
        let v = self.next()?;
        if v.class != 0 || v.number != number {
            return None;
        }
        string_contents(&v)
    }

    /// The rest must be empty (a SEQUENCE ends after its last field).
    fn end(&self) -> Option<()> {
        self.is_empty().then_some(())
    }
}

fn integer_ok(v: &[u8]) -> bool {
    match v {
        [] => false,
        [0x00, b, ..] => *b >= 0x80,
        [0xff, b, ..] => *b < 0x80,
        _ => true,
    }
}

fn oid_ok(v: &[u8]) -> bool {
    if v.last().is_none_or(|&b| b & 0x80 != 0) {
        return false;
    }
    let mut start = true;
    for &b in v {
        if start && b == 0x80 {
            return false;
        }
        start = b & 0x80 == 0;
    }
    true
}

/// A string value's bytes (`asn1_collect` for the constructed form), checked as `asn1_ex_c2i`
/// checks its type.
fn string_contents(v: &Value<'_>) -> Option<Vec<u8>> {
    let bytes = if v.constructed {
        let mut out = Vec::new();
        collect(v.contents, 0, &mut out)?;
        out
    } else {
        v.contents.to_vec()
    };
    primitive_ok(v.number, &bytes).then_some(bytes)
}

/// `asn1_collect`: the primitive pieces' contents, whatever their tags, nested at most 5 deep.
fn collect(contents: &[u8], depth: usize, out: &mut Vec<u8>) -> Option<()> {
    let mut d = Der(contents);
    while !d.is_empty() {
        let v = d.next()?;
        if v.constructed {
            if depth >= MAX_STRING_NEST {
                return None;
            }
            collect(v.contents, depth + 1, out)?;
        } else {
            out.extend_from_slice(v.contents);
        }
    }
    Some(())
}

/// The checks `asn1_ex_c2i` makes on a universal primitive value of type `number`.
fn primitive_ok(number: u32, b: &[u8]) -> bool {
    match number {
        BOOLEAN => b.len() == 1,
        INTEGER | ENUMERATED => integer_ok(b),
        NULL => b.is_empty(),
        OID => oid_ok(b),
        BIT_STRING => b.first().is_some_and(|&u| u <= 7),
        UNIVERSAL_STRING => b.len().is_multiple_of(4),
        BMP_STRING => b.len().is_multiple_of(2),
        _ => true,
    }
}

/// A value of type ANY as OpenSSL decodes it: universal ones by their type (SEQUENCE and SET
/// must be constructed and are kept whole), others kept whole.
fn any_ok(v: &Value<'_>) -> bool {
    if v.class != 0 {
        return true;
    }
    match v.number {
        SEQUENCE | SET => v.constructed,
        BOOLEAN | INTEGER | NULL | OID | ENUMERATED if v.constructed => false,
        _ => string_contents(v).is_some(),
    }
}

/// Values that must only be well-formed: every value in `contents`, recursively.
fn well_formed(contents: &[u8]) -> Option<()> {
    let mut d = Der(contents);
    while !d.is_empty() {
        let v = d.next()?;
        if v.constructed {
            well_formed(v.contents)?;
        }
    }
    Some(())
}

/// `X509_ALGOR ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`: the OID.
fn algorithm<'a>(d: &mut Der<'a>) -> Option<&'a [u8]> {
    let mut a = Der(d.universal(true, SEQUENCE)?);
    let oid = a.oid()?;
    if !a.is_empty() {
        any_ok(&a.next()?).then_some(())?;
    }
    a.end()?;
    Some(oid)
}

/// An `X509_NAME` as OpenSSL decodes it (`SEQUENCE OF SET OF SEQUENCE { OID, value }`, the
/// values of the `ASN1_PRINTABLE` types, convertible to UTF-8 for the canonical encoding), and
/// `x509_name_to_str` on it: the first common name's bytes, else the last entry's; `None` for
/// an empty name; `Err` for one OpenSSL refuses.
fn issuer(name: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let mut rdns = Der(name);
    let mut last = None;
    let mut common = None;
    while !rdns.is_empty() {
        let mut atvs = Der(rdns.collection(SET).ok_or(())?);
        while !atvs.is_empty() {
            let mut atv = Der(atvs.universal(true, SEQUENCE).ok_or(())?);
            let oid = atv.oid().ok_or(())?;
            let v = atv.next().ok_or(())?;
            atv.end().ok_or(())?;
            let data = name_value(&v).ok_or(())?;
            if oid == OID_COMMON_NAME && common.is_none() {
                common = Some(data.clone());
            }
            last = Some(data);
        }
    }
    Ok(common.or(last))
}

/// An `X509_NAME_ENTRY` value: its `ASN1_STRING` data (a SEQUENCE's whole encoding).
fn name_value(v: &Value<'_>) -> Option<Vec<u8>> {
    if v.class != 0 {
        return None;
    }
    // ASN1_tag2bit(tag) & B_ASN1_PRINTABLE.
    let printable = matches!(
        v.number,
        3 | 7 | 8 | 9 | 11 | 12 | 13 | 14 | 15 | 16 | 18 | 19 | 20 | 22 | 28 | 29 | 30
    );
    if !printable {
        return None;
    }
    if v.number == SEQUENCE {
        if !v.constructed {
            return None;
        }
        // A SEQUENCE is kept whole.
        return Some(v.encoding.to_vec());
    }
    let data = string_contents(v)?;
    // The canonical form converts these to UTF-8, which must succeed.
    let convertible = match v.number {
        UTF8_STRING => std::str::from_utf8(&data).is_ok(),
        BMP_STRING => data
            .chunks(2)
            .all(|c| c.first().is_some_and(|&h| !(0xd8..=0xdf).contains(&h))),
        UNIVERSAL_STRING => data.chunks(4).all(|c| {
            let v = c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b));
            char::from_u32(v).is_some()
        }),
        _ => true,
    };
    convertible.then_some(data)
}

/// The magnitude of a two's complement big-endian integer, without leading zeros
/// (`BN_bn2bin(ASN1_INTEGER_to_BN(...))`).
fn magnitude(v: &[u8]) -> Vec<u8> {
    let negative = v.first().is_some_and(|&b| b & 0x80 != 0);
    let mut m = v.to_vec();
    if negative {
        for b in &mut m {
            *b = !*b;
        }
        for b in m.iter_mut().rev() {
            let (s, carry) = b.overflowing_add(1);
            *b = s;
            if !carry {
                break;
            }
        }
    }
    m.into_iter().skip_while(|&b| b == 0).collect()
}

/// `fill_pkcs7`: the first signer of a PKCS#7 `SignedData` message OpenSSL decodes.
fn pkcs7(msg: &[u8]) -> Option<Shown> {
    // ContentInfo (anything after it is not read).
    let mut ci = Der(Der(msg).universal(true, SEQUENCE)?);
    if ci.oid()? != OID_SIGNED_DATA {
        return None;
    }
    let mut explicit = Der(ci.context(0, true)??);
    ci.end()?;
    let mut sd = Der(explicit.universal(true, SEQUENCE)?);
    explicit.end()?;
    // SignedData.
    sd.integer()?;
    let mut digests = Der(sd.collection(SET)?);
    while !digests.is_empty() {
        algorithm(&mut digests)?;
    }
    content_info(sd.universal(true, SEQUENCE)?)?;
    for n in [0, 1] {
        if let Some(v) = sd.context(n, false)? {
            well_formed(v)?;
        }
    }
    let mut signers = Der(sd.collection(SET)?);
    sd.end()?;
    let mut first = None;
    while !signers.is_empty() {
        let s = signer_info(signers.universal(true, SEQUENCE)?)?;
        first.get_or_insert(s);
    }
    first
}

/// The inner `ContentInfo` (detached `data` in a module signature).
fn content_info(v: &[u8]) -> Option<()> {
    let mut ci = Der(v);
    let ty = ci.oid()?;
    if let Some(content) = ci.context(0, true)? {
        let mut c = Der(content);
        let inner = c.next()?;
        c.end()?;
        if ty == OID_DATA {
            (inner.class == 0 && inner.number == OCTET_STRING).then_some(())?;
            string_contents(&inner)?;
        } else if inner.constructed {
            well_formed(inner.contents)?;
        }
    }
    ci.end()
}

/// A `SignerInfo`: what kmod shows of it.
fn signer_info(v: &[u8]) -> Option<Shown> {
    let mut si = Der(v);
    si.integer()?;
    let mut ias = Der(si.universal(true, SEQUENCE)?);
    let signer = issuer(ias.collection(SEQUENCE)?).ok()?;
    let serial = ias.integer()?;
    ias.end()?;
    let digest = algorithm(&mut si)?;
    if let Some(attrs) = si.context(0, false)? {
        well_formed(attrs)?;
    }
    algorithm(&mut si)?;
    let signature = si.string(OCTET_STRING)?;
    if let Some(attrs) = si.context(1, false)? {
        well_formed(attrs)?;
    }
    si.end()?;
    // An unknown digest algorithm: kmod shows no signature (commit d5950b0).
    let hash_algo = DIGESTS
        .iter()
        .find(|(o, _)| *o == digest)
        .map(|&(_, n)| n)?;
    Some(Shown {
        id_type: "",
        signer: signer.map(|s| c_string(&s)).unwrap_or_default(),
        key_id: magnitude(serial),
        hash_algo,
        signature,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hex_wraps_every_20_bytes() {
        assert_eq!(hex(&[]), b"");
        assert_eq!(hex(&[0xab]), b"AB");
        let h = String::from_utf8(hex(&[1u8; 41])).unwrap();
        let lines: Vec<&str> = h.split('\n').collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], ["01"; 20].join(":") + ":");
        assert_eq!(lines[1], format!("\t\t{}:", ["01"; 20].join(":")));
        assert_eq!(lines[2], "\t\t01");
    }

    #[test]
    fn integers_oids_magnitudes() {
        assert!(integer_ok(&[0x00, 0x80]));
        assert!(!integer_ok(&[0x00, 0x7f]));
        assert!(!integer_ok(&[]));
        assert!(integer_ok(&[0xff, 0x00]));
        assert!(!integer_ok(&[0xff, 0x80, 0x01]));
        assert!(oid_ok(&[0x2a, 0x86, 0x48]));
        assert!(!oid_ok(&[0x2a, 0x80, 0x01]));
        assert!(!oid_ok(&[0x2a, 0x86]));
        assert_eq!(magnitude(&[0x00, 0x80, 0x01]), [0x80, 0x01]);
        assert_eq!(magnitude(&[0x99, 0xf5]), [0x66, 0x0b]);
        assert_eq!(magnitude(&[0xff, 0x00]), [0x01, 0x00]);
        assert_eq!(magnitude(&[0x00]), [0u8; 0]);
    }

    #[test]
    fn constructed_strings_are_concatenated() {
        let v = Value {
            class: 0,
            constructed: true,
            number: OCTET_STRING,
            contents: &[0x04, 0x01, 0xaa, 0x30, 0x03, 0x02, 0x01, 0x05],
            encoding: &[],
        };
        assert_eq!(string_contents(&v).unwrap(), [0xaa, 0x05]);
    }

    #[test]
    fn broken_messages_show_nothing() {
        assert!(pkcs7(&[]).is_none());
        assert!(pkcs7(&[0x30, 0x00]).is_none());
        assert!(pkcs7(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(pkcs7(&[0u8; 64]).is_none());
    }

    #[test]
    fn trailer_checks() {
        let mut m = vec![0u8; 100];
        m.extend_from_slice(&[0, 4, 1, 3, 2, 0, 0, 0, 0, 0, 0, 10]);
        m.extend_from_slice(SIG_MAGIC);
        let s = read(&m).unwrap();
        assert_eq!((s.id_type, s.hash_algo), ("X509", "sha256"));
        assert_eq!((s.key_id.len(), s.signature.len()), (2, 10));
        // The lengths pass the start of the file.
        let n = m.len();
        m[n - SIG_MAGIC.len() - 1] = 99;
        assert!(read(&m).is_none());
    }
}
