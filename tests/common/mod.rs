//! Certificate fixtures built per test with rcgen, and a small DER writer
//! for the extensions rcgen cannot express.
//!
//! Every certificate gets a validity period around [`NOW`], and tests pass
//! `NOW` as the validation time, so no test reads the clock.
#![allow(dead_code)]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, OtherNameValue, SanType,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use time::OffsetDateTime;

/// The validation time of every test: 2023-11-14 22:13:20 UTC, in seconds
/// since the Unix epoch.
pub const NOW: i64 = 1_700_000_000;

/// One day, in seconds.
pub const DAY: i64 = 86_400;

/// Default notBefore of a fixture: 30 days before [`NOW`].
pub const NOT_BEFORE: i64 = NOW - 30 * DAY;

/// Default notAfter of a fixture: 30 days after [`NOW`].
pub const NOT_AFTER: i64 = NOW + 30 * DAY;

/// id-on-xmppAddr (RFC 6120 section 13.7.1.4) as rcgen OID arcs.
pub const ID_ON_XMPP_ADDR_ARCS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

/// id-ce-subjectAltName (RFC 5280 section 4.2.1.6) as rcgen OID arcs.
pub const ID_CE_SUBJECT_ALT_NAME_ARCS: [u64; 4] = [2, 5, 29, 17];

/// DER tag of a context-specific constructed `[0]`.
pub const TAG_CONTEXT_0: u8 = 0xa0;
/// DER tag of a UTF8String.
pub const TAG_UTF8_STRING: u8 = 0x0c;
/// DER tag of a PrintableString.
pub const TAG_PRINTABLE_STRING: u8 = 0x13;
/// DER tag of an IA5String.
pub const TAG_IA5_STRING: u8 = 0x16;
/// DER tag of an OBJECT IDENTIFIER.
pub const TAG_OID: u8 = 0x06;
/// DER tag of a SEQUENCE.
pub const TAG_SEQUENCE: u8 = 0x30;

/// Content octets of the id-on-xmppAddr OID 1.3.6.1.5.5.7.8.5.
const ID_ON_XMPP_ADDR_DER: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];

/// Key algorithms the fixtures can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Ed25519,
    Rsa2048,
}

/// Creates a fresh key pair of `kind`.
///
/// rcgen 0.13 with `ring` cannot generate RSA keys, so the RSA key comes
/// from `openssl genpkey` as PKCS#8 PEM. It is generated once per test
/// binary and shared, because RSA generation is slow.
pub fn key_pair(kind: KeyKind) -> KeyPair {
    match kind {
        KeyKind::EcdsaP256 => {
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate P-256 key")
        }
        KeyKind::Ed25519 => KeyPair::generate_for(&PKCS_ED25519).expect("generate Ed25519 key"),
        KeyKind::Rsa2048 => KeyPair::from_pem(rsa_key_pem()).expect("load the openssl RSA key"),
    }
}

fn rsa_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let output = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("run openssl genpkey; the RSA fixtures need the openssl CLI");
        assert!(
            output.status.success(),
            "openssl genpkey failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("openssl writes PEM as ASCII")
    })
}

/// Returns `unix` seconds as the time type rcgen takes.
pub fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("timestamp within time's range")
}

/// Returns a SAN entry holding `jid` as an id-on-xmppAddr UTF8String.
pub fn xmpp_addr(jid: &str) -> SanType {
    SanType::OtherName((
        ID_ON_XMPP_ADDR_ARCS.to_vec(),
        OtherNameValue::Utf8String(jid.to_string()),
    ))
}

/// Returns end-entity parameters with common name `cn`, the given SAN
/// entries and the default validity period around [`NOW`].
pub fn leaf_params(cn: &str, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    params.distinguished_name = name;
    params.subject_alt_names = sans;
    params.not_before = at(NOT_BEFORE);
    params.not_after = at(NOT_AFTER);
    params
}

/// Returns end-entity parameters for `jid` with one xmppAddr naming it.
pub fn client_params(jid: &str) -> CertificateParams {
    leaf_params(jid, vec![xmpp_addr(jid)])
}

/// Self-signs `params` with a fresh key of `kind` and returns the DER.
pub fn self_signed_der(params: CertificateParams, kind: KeyKind) -> Vec<u8> {
    let key = key_pair(kind);
    params
        .self_signed(&key)
        .expect("self-sign the fixture")
        .der()
        .to_vec()
}

/// Returns the DER of a self-signed P-256 client certificate for `alice@example.test`.
pub fn alice_der() -> Vec<u8> {
    self_signed_der(client_params("alice@example.test"), KeyKind::EcdsaP256)
}

/// A CA certificate with its key, able to sign other fixtures.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    /// Returns the CA certificate's DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Returns the CA certificate as a PEM block.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Signs `params` for a fresh key of `kind` and returns the DER.
    pub fn sign(&self, params: CertificateParams, kind: KeyKind) -> Vec<u8> {
        let subject_key = key_pair(kind);
        params
            .signed_by(&subject_key, &self.cert, &self.key)
            .expect("sign the fixture")
            .der()
            .to_vec()
    }

    /// Signs CA `params` for a fresh key of `kind` and returns the new CA.
    pub fn sign_ca(&self, params: CertificateParams, kind: KeyKind) -> Ca {
        let subject_key = key_pair(kind);
        let cert = params
            .signed_by(&subject_key, &self.cert, &self.key)
            .expect("sign the CA fixture");
        Ca {
            cert,
            key: subject_key,
        }
    }
}

/// Returns CA parameters with common name `cn`: basicConstraints cA,
/// keyUsage keyCertSign and cRLSign, and the default validity period.
pub fn ca_params(cn: &str) -> CertificateParams {
    let mut params = leaf_params(cn, Vec::new());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Self-signs CA `params` with a fresh key of `kind`.
pub fn self_signed_ca(params: CertificateParams, kind: KeyKind) -> Ca {
    let key = key_pair(kind);
    let cert = params.self_signed(&key).expect("self-sign the CA fixture");
    Ca { cert, key }
}

/// Creates a self-signed P-256 root CA named `cn`.
pub fn root_ca(cn: &str) -> Ca {
    self_signed_ca(ca_params(cn), KeyKind::EcdsaP256)
}

/// Returns client parameters for `jid` with extendedKeyUsage `ekus`.
pub fn client_params_with_eku(jid: &str, ekus: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
    let mut params = client_params(jid);
    params.extended_key_usages = ekus;
    params
}

/// Encodes one DER TLV with a definite length.
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Returns an otherName GeneralName for id-on-xmppAddr whose value is
/// `[0] EXPLICIT` around `inner_tlv`, which may be any ASN.1 value.
pub fn xmpp_addr_other_name(inner_tlv: &[u8]) -> Vec<u8> {
    let mut body = der_tlv(TAG_OID, &ID_ON_XMPP_ADDR_DER);
    body.extend(der_tlv(TAG_CONTEXT_0, inner_tlv));
    // otherName is [0] IMPLICIT in GeneralName, so the SEQUENCE tag is
    // replaced by a constructed context-specific 0.
    der_tlv(TAG_CONTEXT_0, &body)
}

/// Returns a subjectAltName extension holding the given GeneralName
/// encodings, for values rcgen cannot write (anything but a UTF8String
/// otherName).
pub fn san_extension(general_names: &[Vec<u8>]) -> CustomExtension {
    let content = der_tlv(TAG_SEQUENCE, &general_names.concat());
    CustomExtension::from_oid_content(&ID_CE_SUBJECT_ALT_NAME_ARCS, content)
}

/// Self-signs a P-256 certificate whose subjectAltName contains exactly the
/// given GeneralName encodings.
pub fn der_with_raw_san(general_names: &[Vec<u8>]) -> Vec<u8> {
    let mut params = leaf_params("raw san", Vec::new());
    params.custom_extensions = vec![san_extension(general_names)];
    self_signed_der(params, KeyKind::EcdsaP256)
}

/// Returns `der` with the last byte of the signature flipped.
pub fn tampered_signature(der: &[u8]) -> Vec<u8> {
    let mut tampered = der.to_vec();
    let last = tampered.last_mut().expect("DER is never empty");
    *last ^= 0x01;
    tampered
}

/// Returns `len` bytes from a fixed linear congruential sequence that
/// starts with `first`, so junk inputs are the same on every run.
pub fn junk(len: usize, first: u8) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    let mut out = Vec::with_capacity(len);
    out.push(first);
    while out.len() < len {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push((state >> 24) as u8);
    }
    out
}
