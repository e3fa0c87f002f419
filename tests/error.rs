//! Stable error codes and the messages administrators read.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use client_certs::error::format_time;
use client_certs::Error;

fn every_variant() -> Vec<(Error, &'static str)> {
    vec![
        (
            Error::Malformed {
                reason: "invalid base64".to_string(),
            },
            "malformed",
        ),
        (
            Error::TooLarge {
                size: 20000,
                limit: 16384,
            },
            "too-large",
        ),
        (
            Error::Expired {
                not_after: 1_600_000_000,
                now: 1_700_000_000,
            },
            "expired",
        ),
        (
            Error::NotYetValid {
                not_before: 1_800_000_000,
                now: 1_700_000_000,
            },
            "not-yet-valid",
        ),
        (Error::NoXmppAddr, "no-xmpp-addr"),
        (
            Error::Untrusted {
                reason: "no trusted CA has subject CN=x".to_string(),
            },
            "untrusted",
        ),
        (
            Error::BadKeyUsage {
                reason: "keyUsage lacks digitalSignature".to_string(),
            },
            "bad-key-usage",
        ),
        (
            Error::BadTrustAnchors {
                source_name: "/etc/prosody/cas.pem".to_string(),
                reason: "no CERTIFICATE block found".to_string(),
            },
            "bad-trust-anchors",
        ),
        (
            Error::Index {
                reason: "open failed".to_string(),
            },
            "index-error",
        ),
    ]
}

#[test]
fn code_of_each_variant() {
    for (err, expected) in every_variant() {
        assert_eq!(err.code(), expected, "{err:?}");
    }
}

#[test]
fn display_is_not_debug() {
    for (err, _) in every_variant() {
        assert_ne!(err.to_string(), format!("{err:?}"), "{err:?}");
    }
}

#[test]
fn display_names_each_value() {
    let expected_parts: [&[&str]; 9] = [
        &["invalid base64"],
        &["20000 bytes", "16384 bytes"],
        &["Sep 13 12:26:40 2020", "Nov 14 22:13:20 2023"],
        &["Jan 15 08:00:00 2027", "Nov 14 22:13:20 2023"],
        &["1.3.6.1.5.5.7.8.5", "UTF8String"],
        &["CN=x"],
        &["keyUsage lacks digitalSignature"],
        &["/etc/prosody/cas.pem", "no CERTIFICATE block found"],
        &["open failed"],
    ];

    for ((err, code), parts) in every_variant().into_iter().zip(expected_parts) {
        let message = err.to_string();

        for part in parts {
            assert!(message.contains(part), "{code} lacks {part:?}: {message}");
        }
    }
}

#[test]
fn format_time_in_utc() {
    let formatted = format_time(1_700_000_000);

    assert_eq!(formatted, "Nov 14 22:13:20 2023 +00:00");
}

#[test]
fn format_time_out_of_range_falls_back() {
    let formatted = format_time(i64::MAX);

    assert_eq!(formatted, format!("{} seconds since the epoch", i64::MAX));
}
