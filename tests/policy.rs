//! Validity window and client-usage checks.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use client_certs::certificate::DEFAULT_MAX_SIZE;
use client_certs::policy::check_validity;
use client_certs::{Certificate, Error};
use common::{
    at, client_params, client_params_with_eku, self_signed_der, KeyKind, DAY, NOT_AFTER,
    NOT_BEFORE, NOW,
};
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyUsagePurpose};

fn parse_params(params: CertificateParams) -> Certificate {
    let der = self_signed_der(params, KeyKind::EcdsaP256);
    Certificate::parse(&der, DEFAULT_MAX_SIZE).expect("parse fixture")
}

fn usage_code(params: CertificateParams) -> &'static str {
    match parse_params(params).check_client_usage() {
        Ok(()) => "ok",
        Err(err) => err.code(),
    }
}

#[test]
fn check_validity_bounds_inclusive() {
    let cases = [
        ("at notBefore", NOT_BEFORE, Ok(())),
        ("at notAfter", NOT_AFTER, Ok(())),
        ("between", NOW, Ok(())),
        (
            "one second before notBefore",
            NOT_BEFORE - 1,
            Err(Error::NotYetValid {
                not_before: NOT_BEFORE,
                now: NOT_BEFORE - 1,
            }),
        ),
        (
            "one second after notAfter",
            NOT_AFTER + 1,
            Err(Error::Expired {
                not_after: NOT_AFTER,
                now: NOT_AFTER + 1,
            }),
        ),
    ];

    for (name, now, expected) in cases {
        let result = check_validity(NOT_BEFORE, NOT_AFTER, now);

        assert_eq!(result, expected, "{name}");
    }
}

#[test]
fn check_validity_negative_times_compared() {
    let result = check_validity(-2 * DAY, -DAY, 0);

    assert_eq!(
        result,
        Err(Error::Expired {
            not_after: -DAY,
            now: 0
        })
    );
}

#[test]
fn certificate_current_is_valid() {
    let cert = parse_params(client_params("alice@example.test"));

    assert_eq!(cert.check_validity(NOW), Ok(()));
}

#[test]
fn certificate_expired_reports_not_after() {
    let mut params = client_params("alice@example.test");
    params.not_before = at(NOW - 60 * DAY);
    params.not_after = at(NOW - DAY);
    let cert = parse_params(params);

    let result = cert.check_validity(NOW);

    assert_eq!(
        result,
        Err(Error::Expired {
            not_after: NOW - DAY,
            now: NOW
        })
    );
}

#[test]
fn certificate_not_yet_valid_reports_not_before() {
    let mut params = client_params("alice@example.test");
    params.not_before = at(NOW + DAY);
    params.not_after = at(NOW + 60 * DAY);
    let cert = parse_params(params);

    let result = cert.check_validity(NOW);

    assert_eq!(
        result,
        Err(Error::NotYetValid {
            not_before: NOW + DAY,
            now: NOW
        })
    );
}

#[test]
fn certificate_generalized_time_after_2049() {
    // RFC 5280 section 4.1.2.5: dates from 2050 on are GeneralizedTime.
    let not_after = 2_556_143_999; // 2050-12-31 23:59:59 UTC
    let mut params = client_params("alice@example.test");
    params.not_after = at(not_after);

    let cert = parse_params(params);

    assert_eq!(cert.not_after, not_after);
}

#[test]
fn certificate_no_well_defined_expiry() {
    // RFC 5280 section 4.1.2.5: 99991231235959Z means no well-defined
    // expiration date.
    let not_after = 253_402_300_799; // 9999-12-31 23:59:59 UTC
    let mut params = client_params("alice@example.test");
    params.not_after = at(not_after);

    let cert = parse_params(params);

    assert_eq!(cert.not_after, not_after);
}

#[test]
fn check_client_usage_eku_cases() {
    use ExtendedKeyUsagePurpose::{Any, ClientAuth, CodeSigning, EmailProtection, ServerAuth};
    let cases = [
        ("no extendedKeyUsage", Vec::new(), "ok"),
        ("clientAuth", vec![ClientAuth], "ok"),
        ("anyExtendedKeyUsage", vec![Any], "ok"),
        (
            "serverAuth and clientAuth",
            vec![ServerAuth, ClientAuth],
            "ok",
        ),
        ("serverAuth only", vec![ServerAuth], "bad-key-usage"),
        (
            "emailProtection only",
            vec![EmailProtection],
            "bad-key-usage",
        ),
        (
            "codeSigning and serverAuth",
            vec![CodeSigning, ServerAuth],
            "bad-key-usage",
        ),
        (
            "private OID only",
            vec![ExtendedKeyUsagePurpose::Other(vec![
                1, 3, 6, 1, 4, 1, 99999, 1,
            ])],
            "bad-key-usage",
        ),
    ];

    for (name, ekus, expected) in cases {
        let code = usage_code(client_params_with_eku("alice@example.test", ekus));

        assert_eq!(code, expected, "{name}");
    }
}

#[test]
fn check_client_usage_server_auth_message() {
    let params = client_params_with_eku(
        "alice@example.test",
        vec![ExtendedKeyUsagePurpose::ServerAuth],
    );

    let err = parse_params(params)
        .check_client_usage()
        .expect_err("serverAuth only");

    assert_eq!(
        err,
        Error::BadKeyUsage {
            reason: "extendedKeyUsage allows only serverAuth; it must include clientAuth"
                .to_string()
        }
    );
}

#[test]
fn check_client_usage_key_usage_cases() {
    use KeyUsagePurpose::{DigitalSignature, KeyAgreement, KeyCertSign, KeyEncipherment};
    let cases = [
        ("digitalSignature", vec![DigitalSignature], "ok"),
        (
            "digitalSignature and keyEncipherment",
            vec![DigitalSignature, KeyEncipherment],
            "ok",
        ),
        (
            "keyEncipherment only",
            vec![KeyEncipherment],
            "bad-key-usage",
        ),
        ("keyAgreement only", vec![KeyAgreement], "bad-key-usage"),
        ("keyCertSign only", vec![KeyCertSign], "bad-key-usage"),
    ];

    for (name, key_usages, expected) in cases {
        let mut params = client_params("alice@example.test");
        params.key_usages = key_usages;

        let code = usage_code(params);

        assert_eq!(code, expected, "{name}");
    }
}

#[test]
fn check_client_usage_key_usage_message() {
    let mut params = client_params("alice@example.test");
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];

    let err = parse_params(params)
        .check_client_usage()
        .expect_err("keyEncipherment only");

    assert!(
        err.to_string().contains("must include digitalSignature"),
        "{err}"
    );
}
