//! `Certificate::parse` and `Certificate::from_der`: accepted input forms,
//! extracted fields, and the exact error for each kind of bad input.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use client_certs::certificate::DEFAULT_MAX_SIZE;
use client_certs::fingerprint::sha256_hex;
use client_certs::{Certificate, Error};
use common::{
    alice_der, client_params, junk, key_pair, root_ca, self_signed_der, KeyKind, NOT_AFTER,
    NOT_BEFORE,
};

const ALL_KEY_KINDS: [KeyKind; 3] = [KeyKind::EcdsaP256, KeyKind::Ed25519, KeyKind::Rsa2048];

fn parse(input: &[u8]) -> Result<Certificate, Error> {
    Certificate::parse(input, DEFAULT_MAX_SIZE)
}

fn code_of(result: Result<Certificate, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code(),
    }
}

/// Wraps base64 text at `width` columns with `separator` between lines.
fn wrap(text: &str, width: usize, separator: &str) -> String {
    text.as_bytes()
        .chunks(width)
        .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join(separator)
}

#[test]
fn parse_der_each_key_type() {
    for kind in ALL_KEY_KINDS {
        let der = self_signed_der(client_params("alice@example.test"), kind);

        let result = parse(&der);

        assert!(result.is_ok(), "{kind:?}: {:?}", result.err());
    }
}

#[test]
fn parse_fingerprint_is_sha256_of_der() {
    let der = alice_der();

    let cert = parse(&der).expect("parse");

    assert_eq!(cert.fingerprint, sha256_hex(&der));
}

#[test]
fn parse_fingerprint_is_lowercase_hex() {
    let cert = parse(&alice_der()).expect("parse");

    assert_eq!(cert.fingerprint.len(), 64, "{}", cert.fingerprint);
    assert!(
        cert.fingerprint
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{}",
        cert.fingerprint
    );
}

#[test]
fn parse_validity_as_unix_seconds() {
    let cert = parse(&alice_der()).expect("parse");

    assert_eq!(cert.not_before, NOT_BEFORE);
    assert_eq!(cert.not_after, NOT_AFTER);
}

#[test]
fn parse_subject_and_issuer_self_signed() {
    let cert = parse(&alice_der()).expect("parse");

    assert_eq!(cert.subject, "CN=alice@example.test");
    assert_eq!(cert.issuer, "CN=alice@example.test");
}

#[test]
fn parse_issuer_names_signing_ca() {
    let ca = root_ca("Example Test CA");
    let der = ca.sign(client_params("alice@example.test"), KeyKind::EcdsaP256);

    let cert = parse(&der).expect("parse");

    assert_eq!(cert.issuer, "CN=Example Test CA");
}

#[test]
fn parse_der_roundtrips_input_bytes() {
    let der = alice_der();

    let cert = parse(&der).expect("parse");

    assert_eq!(cert.der(), der.as_slice());
}

#[test]
fn parse_base64_output_parses_same() {
    let cert = parse(&alice_der()).expect("parse");

    let again = parse(cert.to_base64().as_bytes()).expect("parse to_base64 output");

    assert_eq!(again.fingerprint, cert.fingerprint);
}

#[test]
fn parse_pem_output_parses_same() {
    let cert = parse(&alice_der()).expect("parse");

    let again = parse(cert.to_pem().as_bytes()).expect("parse to_pem output");

    assert_eq!(again.fingerprint, cert.fingerprint);
}

#[test]
fn parse_base64_with_whitespace_accepted() {
    let der = alice_der();
    let base64 = client_certs::decode::encode_base64(&der);
    let cases = [
        ("wrapped at 64 with LF", wrap(&base64, 64, "\n")),
        ("wrapped at 76 with CRLF", wrap(&base64, 76, "\r\n")),
        ("tabs and spaces", wrap(&base64, 10, " \t ")),
        ("leading and trailing", format!("\n  {base64}  \n")),
    ];

    for (name, input) in cases {
        let result = parse(input.as_bytes());

        assert_eq!(
            result.map(|cert| cert.fingerprint).ok(),
            Some(sha256_hex(&der)),
            "{name}"
        );
    }
}

#[test]
fn parse_pem_with_text_around_accepted() {
    let der = alice_der();
    let pem = client_certs::decode::encode_pem(&der);
    let input = format!("subject=CN = alice@example.test\n{pem}trailing comment\n");

    let cert = parse(input.as_bytes()).expect("parse PEM with surrounding text");

    assert_eq!(cert.fingerprint, sha256_hex(&der));
}

#[test]
fn parse_bad_inputs_exact_codes() {
    let der = alice_der();
    let base64 = client_certs::decode::encode_base64(&der);
    let key_pem = key_pair(KeyKind::EcdsaP256).serialize_pem();
    let mut trailing = der.clone();
    trailing.extend_from_slice(&[0x00, 0x00]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty input", Vec::new()),
        ("only whitespace", b" \r\n\t ".to_vec()),
        ("truncated DER", der[..der.len() - 1].to_vec()),
        ("DER cut in the header", der[..4].to_vec()),
        ("trailing bytes after DER", trailing.clone()),
        (
            "trailing bytes inside base64",
            client_certs::decode::encode_base64(&trailing).into_bytes(),
        ),
        ("invalid base64 characters", b"MII*not-base64!".to_vec()),
        (
            "base64 with missing padding",
            base64.as_bytes()[..base64.len() - 1].to_vec(),
        ),
        (
            "base64 of text",
            client_certs::decode::encode_base64(b"hello").into_bytes(),
        ),
        ("PEM of a private key", key_pem.into_bytes()),
        (
            "PEM without END line",
            format!("-----BEGIN CERTIFICATE-----\n{base64}\n").into_bytes(),
        ),
        (
            "PEM header without dashes",
            b"-----BEGIN CERTIFICATE\nMIIB".to_vec(),
        ),
        ("non-UTF-8 bytes", vec![0xff, 0xfe, 0x00, 0x01]),
        ("SEQUENCE of junk", common::junk(512, 0x30)),
    ];

    for (name, input) in cases {
        let result = parse(&input);

        assert_eq!(code_of(result), "malformed", "{name}");
    }
}

#[test]
fn parse_trailing_bytes_message_counts_them() {
    let mut input = alice_der();
    input.extend_from_slice(&[0x00, 0x00]);

    let err = parse(&input).expect_err("trailing bytes");

    assert_eq!(
        err,
        Error::Malformed {
            reason: "2 trailing bytes after the certificate".to_string()
        }
    );
}

#[test]
fn parse_private_key_pem_names_label() {
    let input = key_pair(KeyKind::EcdsaP256).serialize_pem();

    let err = parse(input.as_bytes()).expect_err("private key");

    assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
}

#[test]
fn parse_der_over_limit_too_large() {
    let der = alice_der();
    let limit = der.len() - 1;

    let err = Certificate::parse(&der, limit).expect_err("DER over the limit");

    assert_eq!(
        err,
        Error::TooLarge {
            size: der.len(),
            limit
        }
    );
}

#[test]
fn parse_der_at_limit_accepted() {
    let der = alice_der();

    let result = Certificate::parse(&der, der.len());

    assert!(result.is_ok(), "{:?}", result.err());
}

#[test]
fn parse_base64_over_limit_too_large() {
    let der = alice_der();
    let limit = der.len() - 1;
    let base64 = client_certs::decode::encode_base64(&der);

    let err = Certificate::parse(base64.as_bytes(), limit).expect_err("DER over the limit");

    assert_eq!(
        err,
        Error::TooLarge {
            size: der.len(),
            limit
        }
    );
}

#[test]
fn parse_pem_at_limit_accepted() {
    let der = alice_der();
    let pem = client_certs::decode::encode_pem(&der);

    let result = Certificate::parse(pem.as_bytes(), der.len());

    assert!(result.is_ok(), "{:?}", result.err());
}

#[test]
fn parse_one_mib_junk_exact_codes() {
    let mib = 1024 * 1024;
    let big_limit = 2 * mib;
    let cases = [
        (
            "text junk, default limit",
            junk(mib, b'M'),
            DEFAULT_MAX_SIZE,
            "too-large",
        ),
        (
            "DER-like junk, default limit",
            junk(mib, 0x30),
            DEFAULT_MAX_SIZE,
            "too-large",
        ),
        (
            "text junk, 2 MiB limit",
            junk(mib, b'M'),
            big_limit,
            "malformed",
        ),
        (
            "DER-like junk, 2 MiB limit",
            junk(mib, 0x30),
            big_limit,
            "malformed",
        ),
        (
            "base64 letters, 2 MiB limit",
            vec![b'A'; mib + 1],
            big_limit,
            "malformed",
        ),
    ];

    for (name, input, limit, expected) in cases {
        let result = Certificate::parse(&input, limit);

        assert_eq!(code_of(result), expected, "{name}");
    }
}

#[test]
fn parse_every_truncation_never_panics() {
    let der = alice_der();

    for len in 0..der.len() {
        let result = std::panic::catch_unwind(|| parse(&der[..len]).map(|_| ()));

        assert_eq!(
            result.ok().map(|parsed| parsed.map_err(|err| err.code())),
            Some(Err("malformed")),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn parse_every_bit_flip_never_panics() {
    let der = alice_der();

    for position in 0..der.len() {
        let mut flipped = der.clone();
        flipped[position] ^= 0x80;

        let result = std::panic::catch_unwind(|| parse(&flipped).map(|_| ()));

        assert!(result.is_ok(), "bit 7 flipped at byte {position}");
    }
}

#[test]
fn from_der_trailing_bytes_malformed() {
    let mut der = alice_der();
    der.push(0x00);

    let err = Certificate::from_der(der).expect_err("trailing byte");

    assert_eq!(err.code(), "malformed");
}

#[test]
fn from_der_matches_parse() {
    let der = alice_der();

    let cert = Certificate::from_der(der.clone()).expect("from_der");

    assert_eq!(cert.fingerprint, sha256_hex(&der));
}
