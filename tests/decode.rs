//! Conversions between DER, PEM and base64, and the SHA-256 fingerprint.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use client_certs::decode::{decode_base64, encode_base64, encode_pem, to_der};
use client_certs::fingerprint::sha256_hex;
use client_certs::Error;
use common::alice_der;

const LIMIT: usize = 16 * 1024;

fn code_of(result: Result<Vec<u8>, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code(),
    }
}

#[test]
fn sha256_hex_known_vectors() {
    // The published SHA-256 digests of the empty string and of "abc".
    let cases: [(&str, &[u8], &str); 2] = [
        (
            "empty",
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "abc",
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
    ];

    for (name, input, expected) in cases {
        assert_eq!(sha256_hex(input), expected, "{name}");
    }
}

#[test]
fn to_der_passes_der_through() {
    let der = alice_der();

    let decoded = to_der(&der, LIMIT).expect("DER input");

    assert_eq!(decoded, der);
}

#[test]
fn to_der_decodes_base64() {
    let der = alice_der();

    let decoded = to_der(encode_base64(&der).as_bytes(), LIMIT).expect("base64 input");

    assert_eq!(decoded, der);
}

#[test]
fn to_der_decodes_pem() {
    let der = alice_der();

    let decoded = to_der(encode_pem(&der).as_bytes(), LIMIT).expect("PEM input");

    assert_eq!(decoded, der);
}

#[test]
fn to_der_decodes_crlf_pem() {
    let der = alice_der();
    let pem = encode_pem(&der).replace('\n', "\r\n");

    let decoded = to_der(pem.as_bytes(), LIMIT).expect("PEM with CRLF input");

    assert_eq!(decoded, der);
}

#[test]
fn to_der_takes_first_pem_block() {
    let first = alice_der();
    let second = common::self_signed_der(
        common::client_params("bob@example.test"),
        common::KeyKind::Ed25519,
    );
    let bundle = format!("{}{}", encode_pem(&first), encode_pem(&second));

    let decoded = to_der(bundle.as_bytes(), LIMIT).expect("two PEM blocks");

    assert_eq!(decoded, first);
}

#[test]
fn to_der_rejects_other_pem_labels() {
    let der = alice_der();
    let body = encode_base64(&der);
    let labels = [
        "X509 CERTIFICATE",
        "TRUSTED CERTIFICATE",
        "PRIVATE KEY",
        "CERTIFICATE REQUEST",
    ];

    for label in labels {
        let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");

        let result = to_der(pem.as_bytes(), LIMIT);

        assert_eq!(code_of(result), "malformed", "label {label}");
    }
}

#[test]
fn to_der_rejects_mismatched_end_label() {
    let body = encode_base64(&alice_der());
    let pem = format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END PRIVATE KEY-----\n");

    let result = to_der(pem.as_bytes(), LIMIT);

    assert_eq!(code_of(result), "malformed");
}

#[test]
fn to_der_text_over_limit_too_large() {
    // Text longer than twice the DER limit plus 1024 bytes cannot decode to
    // a DER within the limit, so it is rejected before decoding.
    let limit = 1000;
    let text = vec![b'A'; 2 * limit + 1025];

    let err = to_der(&text, limit).expect_err("text over the limit");

    assert_eq!(
        err,
        Error::TooLarge {
            size: text.len(),
            limit
        }
    );
}

#[test]
fn to_der_text_at_limit_checks_decoded_size() {
    let limit = 1000;
    // 2 * limit + 1024 = 3024 characters, a multiple of 4, decode to 2268
    // bytes, which is over the DER limit.
    let text = vec![b'A'; 2 * limit + 1024];

    let err = to_der(&text, limit).expect_err("decoded DER over the limit");

    assert_eq!(err, Error::TooLarge { size: 2268, limit });
}

#[test]
fn decode_base64_skips_ascii_whitespace() {
    let decoded = decode_base64(" aGVs\r\nbG8g\td29y\x0cbGQ= \n").expect("base64 with whitespace");

    assert_eq!(decoded, b"hello world");
}

#[test]
fn decode_base64_bad_inputs_malformed() {
    let cases = [
        ("empty", ""),
        ("only whitespace", " \n\t"),
        ("URL-safe alphabet", "-_-_"),
        ("missing padding", "aGVsbG8"),
        ("padding inside", "aG==VsbG8="),
        ("non-ASCII letter", "aGVsbG8é"),
        ("non-breaking space", "aGVs\u{a0}bG8="),
    ];

    for (name, input) in cases {
        let result = decode_base64(input);

        assert_eq!(code_of(result), "malformed", "{name}");
    }
}

#[test]
fn encode_base64_is_one_line() {
    let encoded = encode_base64(&alice_der());

    assert!(!encoded.contains(['\n', '\r', ' ']), "{encoded}");
}

#[test]
fn encode_pem_wraps_at_64_columns() {
    let pem = encode_pem(&alice_der());
    let lines: Vec<&str> = pem.lines().collect();
    let body = &lines[1..lines.len() - 1];

    assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
    assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    assert!(
        body[..body.len() - 1].iter().all(|line| line.len() == 64),
        "{pem}"
    );
    assert!((1..=64).contains(&body[body.len() - 1].len()), "{pem}");
    assert!(pem.ends_with("-----\n"), "{pem}");
}

#[test]
fn encode_pem_matches_openssl_layout() {
    // Exactly 48 bytes of DER give one full 64-column line and no short one.
    let pem = encode_pem(&[0x30; 48]);

    assert_eq!(
        pem,
        "-----BEGIN CERTIFICATE-----\n\
         MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw\n\
         -----END CERTIFICATE-----\n"
    );
}
