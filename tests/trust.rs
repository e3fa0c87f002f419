//! Trust anchor bundles and `TrustAnchors::verify`.
//!
//! The library does no path building: a client certificate is trusted only
//! when a certificate in the bundle issued it directly.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use client_certs::certificate::DEFAULT_MAX_SIZE;
use client_certs::{Certificate, Error, TrustAnchors};
use common::{
    at, ca_params, client_params, client_params_with_eku, key_pair, leaf_params, root_ca,
    self_signed_ca, self_signed_der, tampered_signature, Ca, KeyKind, DAY, NOW,
};
use rcgen::{CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};

const BUNDLE_NAME: &str = "/etc/prosody/client-cas.pem";

fn parse(der: &[u8]) -> Certificate {
    Certificate::parse(der, DEFAULT_MAX_SIZE).expect("parse fixture")
}

fn anchors(pem: &str) -> TrustAnchors {
    TrustAnchors::from_pem(pem.as_bytes(), BUNDLE_NAME).expect("load bundle")
}

fn verify_code(bundle: &TrustAnchors, leaf_der: &[u8]) -> &'static str {
    match bundle.verify(&parse(leaf_der), NOW) {
        Ok(()) => "ok",
        Err(err) => err.code(),
    }
}

fn alice_signed_by(ca: &Ca, kind: KeyKind) -> Vec<u8> {
    ca.sign(client_params("alice@example.test"), kind)
}

/// Returns the reason of an `Untrusted` result, or fails the test.
fn untrusted_reason(result: Result<(), Error>) -> String {
    match result {
        Err(Error::Untrusted { reason }) => reason,
        other => panic!("expected Untrusted, got {other:?}"),
    }
}

#[test]
fn from_pem_counts_certificates() {
    let bundle = format!("{}{}", root_ca("CA One").pem(), root_ca("CA Two").pem());

    let loaded = anchors(&bundle);

    assert_eq!(loaded.len(), 2);
}

#[test]
fn from_pem_skips_other_blocks() {
    let key_pem = key_pair(KeyKind::EcdsaP256).serialize_pem();
    let bundle = format!(
        "# client CAs\n{key_pem}\nsubject=CN = CA One\n{}",
        root_ca("CA One").pem()
    );

    let loaded = anchors(&bundle);

    assert_eq!(loaded.len(), 1);
}

#[test]
fn from_pem_crlf_line_endings_loaded() {
    let bundle = root_ca("CA One").pem().replace('\n', "\r\n");

    let loaded = anchors(&bundle);

    assert_eq!(loaded.len(), 1);
}

#[test]
fn from_pem_bad_bundles_rejected() {
    let ca_pem = root_ca("CA One").pem();
    let key_pem = key_pair(KeyKind::EcdsaP256).serialize_pem();
    let cases = [
        ("empty bundle", String::new()),
        ("text without PEM", "no certificates here\n".to_string()),
        ("private key only", key_pem),
        (
            "invalid base64 block",
            format!("{ca_pem}-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        ),
        (
            "block that is not DER",
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n".to_string(),
        ),
        (
            "block without END line",
            "-----BEGIN CERTIFICATE-----\nMIIB\n".to_string(),
        ),
    ];

    for (name, bundle) in cases {
        let result = TrustAnchors::from_pem(bundle.as_bytes(), BUNDLE_NAME);

        assert_eq!(
            result.map(|_| ()).map_err(|err| err.code()),
            Err("bad-trust-anchors"),
            "{name}"
        );
    }
}

#[test]
fn from_pem_error_names_source() {
    let err = TrustAnchors::from_pem(b"", BUNDLE_NAME).expect_err("empty bundle");

    assert!(err.to_string().contains(BUNDLE_NAME), "{err}");
}

#[test]
fn from_pem_binary_bundle_rejected() {
    let der = root_ca("CA One").der();

    let result = TrustAnchors::from_pem(&der, BUNDLE_NAME);

    assert_eq!(
        result.map(|_| ()).map_err(|err| err.code()),
        Err("bad-trust-anchors")
    );
}

#[test]
fn verify_leaf_of_root_each_key_type() {
    for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519, KeyKind::Rsa2048] {
        let ca = self_signed_ca(ca_params("Example Test CA"), kind);
        let bundle = anchors(&ca.pem());

        let code = verify_code(&bundle, &alice_signed_by(&ca, KeyKind::EcdsaP256));

        assert_eq!(code, "ok", "CA key {kind:?}");
    }
}

#[test]
fn verify_leaf_of_second_anchor_trusted() {
    let other = root_ca("Other CA");
    let ca = root_ca("Example Test CA");
    let bundle = anchors(&format!("{}{}", other.pem(), ca.pem()));

    let code = verify_code(&bundle, &alice_signed_by(&ca, KeyKind::Ed25519));

    assert_eq!(code, "ok");
}

#[test]
fn verify_same_subject_tries_every_anchor() {
    let impostor = root_ca("Example Test CA");
    let ca = root_ca("Example Test CA");
    let bundle = anchors(&format!("{}{}", impostor.pem(), ca.pem()));

    let code = verify_code(&bundle, &alice_signed_by(&ca, KeyKind::EcdsaP256));

    assert_eq!(code, "ok");
}

#[test]
fn verify_intermediate_anchor_trusts_its_leaf() {
    let root = root_ca("Example Root CA");
    let intermediate = root.sign_ca(ca_params("Example Issuing CA"), KeyKind::EcdsaP256);
    let bundle = anchors(&intermediate.pem());

    let code = verify_code(&bundle, &alice_signed_by(&intermediate, KeyKind::EcdsaP256));

    assert_eq!(code, "ok");
}

#[test]
fn verify_root_anchor_rejects_intermediate_leaf() {
    // No path building: the root alone does not vouch for the
    // intermediate's leaves.
    let root = root_ca("Example Root CA");
    let intermediate = root.sign_ca(ca_params("Example Issuing CA"), KeyKind::EcdsaP256);
    let bundle = anchors(&root.pem());

    let code = verify_code(&bundle, &alice_signed_by(&intermediate, KeyKind::EcdsaP256));

    assert_eq!(code, "untrusted");
}

#[test]
fn verify_root_and_intermediate_both_trusted() {
    let root = root_ca("Example Root CA");
    let intermediate = root.sign_ca(ca_params("Example Issuing CA"), KeyKind::EcdsaP256);
    let bundle = anchors(&format!("{}{}", root.pem(), intermediate.pem()));
    let cases = [
        ("leaf of root", alice_signed_by(&root, KeyKind::EcdsaP256)),
        (
            "leaf of intermediate",
            alice_signed_by(&intermediate, KeyKind::EcdsaP256),
        ),
    ];

    for (name, leaf) in cases {
        let code = verify_code(&bundle, &leaf);

        assert_eq!(code, "ok", "{name}");
    }
}

#[test]
fn verify_tampered_signature_untrusted() {
    for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519, KeyKind::Rsa2048] {
        let ca = self_signed_ca(ca_params("Example Test CA"), kind);
        let bundle = anchors(&ca.pem());
        let leaf = tampered_signature(&alice_signed_by(&ca, KeyKind::EcdsaP256));

        let reason = untrusted_reason(bundle.verify(&parse(&leaf), NOW));

        assert!(
            reason.contains("signature does not verify"),
            "CA key {kind:?}: {reason}"
        );
    }
}

#[test]
fn verify_unknown_ca_untrusted() {
    let bundle = anchors(&root_ca("Example Test CA").pem());
    let stranger = root_ca("Stranger CA");

    let reason = untrusted_reason(
        bundle.verify(&parse(&alice_signed_by(&stranger, KeyKind::EcdsaP256)), NOW),
    );

    assert_eq!(reason, "no trusted CA has subject CN=Stranger CA");
}

#[test]
fn verify_impostor_with_same_name_untrusted() {
    let bundle = anchors(&root_ca("Example Test CA").pem());
    let impostor = root_ca("Example Test CA");

    let reason = untrusted_reason(
        bundle.verify(&parse(&alice_signed_by(&impostor, KeyKind::EcdsaP256)), NOW),
    );

    assert!(reason.contains("signature does not verify"), "{reason}");
}

#[test]
fn verify_self_signed_leaf_untrusted() {
    let leaf = self_signed_der(client_params("alice@example.test"), KeyKind::EcdsaP256);
    let bundle = anchors(&root_ca("Example Test CA").pem());

    let code = verify_code(&bundle, &leaf);

    assert_eq!(code, "untrusted");
}

#[test]
fn verify_expired_ca_untrusted() {
    let mut params = ca_params("Example Test CA");
    params.not_before = at(NOW - 400 * DAY);
    params.not_after = at(NOW - DAY);
    let ca = self_signed_ca(params, KeyKind::EcdsaP256);
    let bundle = anchors(&ca.pem());

    let reason =
        untrusted_reason(bundle.verify(&parse(&alice_signed_by(&ca, KeyKind::EcdsaP256)), NOW));

    assert!(reason.contains("outside its validity period"), "{reason}");
}

#[test]
fn verify_not_yet_valid_ca_untrusted() {
    let mut params = ca_params("Example Test CA");
    params.not_before = at(NOW + DAY);
    params.not_after = at(NOW + 400 * DAY);
    let ca = self_signed_ca(params, KeyKind::EcdsaP256);
    let bundle = anchors(&ca.pem());

    let code = verify_code(&bundle, &alice_signed_by(&ca, KeyKind::EcdsaP256));

    assert_eq!(code, "untrusted");
}

#[test]
fn verify_ca_without_basic_constraints_untrusted() {
    let cases = [
        ("no basicConstraints", IsCa::NoCa),
        ("cA false", IsCa::ExplicitNoCa),
    ];

    for (name, is_ca) in cases {
        let mut params = ca_params("Example Test CA");
        params.is_ca = is_ca;
        let ca = self_signed_ca(params, KeyKind::EcdsaP256);
        let bundle = anchors(&ca.pem());

        let reason =
            untrusted_reason(bundle.verify(&parse(&alice_signed_by(&ca, KeyKind::EcdsaP256)), NOW));

        assert!(reason.contains("is not a CA"), "{name}: {reason}");
    }
}

#[test]
fn verify_ca_without_key_cert_sign_untrusted() {
    let mut params = ca_params("Example Test CA");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let ca = self_signed_ca(params, KeyKind::EcdsaP256);
    let bundle = anchors(&ca.pem());

    let reason =
        untrusted_reason(bundle.verify(&parse(&alice_signed_by(&ca, KeyKind::EcdsaP256)), NOW));

    assert!(reason.contains("lacks keyCertSign"), "{reason}");
}

#[test]
fn verify_ca_without_key_usage_trusted() {
    let mut params = ca_params("Example Test CA");
    params.key_usages = Vec::new();
    let ca = self_signed_ca(params, KeyKind::EcdsaP256);
    let bundle = anchors(&ca.pem());

    let code = verify_code(&bundle, &alice_signed_by(&ca, KeyKind::EcdsaP256));

    assert_eq!(code, "ok");
}

#[test]
fn verify_server_auth_leaf_bad_key_usage() {
    let ca = root_ca("Example Test CA");
    let bundle = anchors(&ca.pem());
    let leaf = ca.sign(
        client_params_with_eku(
            "alice@example.test",
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        ),
        KeyKind::EcdsaP256,
    );

    let code = verify_code(&bundle, &leaf);

    assert_eq!(code, "bad-key-usage");
}

#[test]
fn verify_client_auth_leaf_trusted() {
    let ca = root_ca("Example Test CA");
    let bundle = anchors(&ca.pem());
    let leaf = ca.sign(
        client_params_with_eku(
            "alice@example.test",
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        KeyKind::EcdsaP256,
    );

    let code = verify_code(&bundle, &leaf);

    assert_eq!(code, "ok");
}

#[test]
fn verify_unknown_critical_extension_untrusted() {
    let ca = root_ca("Example Test CA");
    let bundle = anchors(&ca.pem());
    let mut extension = CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 99999, 7],
        common::der_tlv(0x05, &[]),
    );
    extension.set_criticality(true);
    let mut params = client_params("alice@example.test");
    params.custom_extensions = vec![extension];
    let leaf = parse(&ca.sign(params, KeyKind::EcdsaP256));

    let reason = untrusted_reason(bundle.verify(&leaf, NOW));

    assert_eq!(
        reason,
        "unrecognised critical extension 1.3.6.1.4.1.99999.7"
    );
}

#[test]
fn verify_ignores_leaf_validity() {
    // The caller checks the leaf's own validity with check_validity.
    let ca = root_ca("Example Test CA");
    let bundle = anchors(&ca.pem());
    let mut params = leaf_params("alice@example.test", Vec::new());
    params.not_before = at(NOW - 60 * DAY);
    params.not_after = at(NOW - DAY);

    let code = verify_code(&bundle, &ca.sign(params, KeyKind::EcdsaP256));

    assert_eq!(code, "ok");
}
