//! Trust anchor checks against a subset of the x509-limbo path validation
//! suite (github.com/C2SP/x509-limbo, Apache License 2.0).
//!
//! The cases are read from `../shared/conformance/x509-limbo/cases.jsonl`
//! beside the repository when it exists: one JSON object per line with the
//! trusted certificates, the peer certificate, the validation time and the
//! expected results. The test is skipped, with a message, when the file is
//! absent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use client_certs::policy::Purpose;
use client_certs::{Certificate, TrustAnchors};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn cases_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared/conformance/x509-limbo/cases.jsonl")
}

fn load_cases() -> Option<Vec<Value>> {
    let path = cases_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "skipping x509-limbo cases: cannot read {}: {err}",
                path.display()
            );
            return None;
        }
    };
    Some(
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect::<Vec<Value>>(),
    )
    .filter(|cases| {
        assert!(!cases.is_empty(), "{} holds no cases", path.display());
        true
    })
}

/// Returns "SUCCESS" or "FAILURE" for one case, checking the leaf's usage
/// for `purpose`, with the reason for a failure.
fn run_case(case: &Value, purpose: Purpose) -> (&'static str, String) {
    let bundle: String = case["trusted_certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pem| pem.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let at = match case["validation_time"].as_str() {
        Some(text) => OffsetDateTime::parse(text, &Rfc3339)
            .unwrap()
            .unix_timestamp(),
        None => OffsetDateTime::now_utc().unix_timestamp(),
    };

    let anchors = match TrustAnchors::from_pem(bundle.as_bytes(), "case bundle") {
        Ok(anchors) => anchors,
        Err(err) => return ("FAILURE", err.to_string()),
    };
    let leaf = match Certificate::parse(
        case["peer_certificate"].as_str().unwrap().as_bytes(),
        1 << 20,
    ) {
        Ok(leaf) => leaf,
        Err(err) => return ("FAILURE", err.to_string()),
    };
    if let Err(err) = leaf.check_validity(at) {
        return ("FAILURE", err.to_string());
    }
    match anchors.verify_for(&leaf, at, purpose) {
        Ok(()) => ("SUCCESS", String::new()),
        Err(err) => ("FAILURE", err.to_string()),
    }
}

/// Runs every case and returns one line per disagreement.
fn mismatches(
    cases: &[Value],
    purpose: Purpose,
    expected_field: &str,
    rule_field: &str,
) -> Vec<String> {
    let mut found = Vec::new();
    for case in cases {
        let expected = case[expected_field].as_str().unwrap();
        let (actual, reason) = run_case(case, purpose);
        if actual != expected {
            found.push(format!(
                "{}: expected {expected}, got {actual} ({reason}); deciding rule: {}",
                case["id"].as_str().unwrap(),
                case[rule_field]
            ));
        }
    }
    found
}

#[test]
fn limbo_cases_with_client_auth_match() {
    let Some(cases) = load_cases() else { return };

    let found = mismatches(
        &cases,
        Purpose::ClientAuth,
        "expected_result_client_auth",
        "deciding_rule_client_auth",
    );

    assert!(
        found.is_empty(),
        "{} of {} cases disagree:\n{}",
        found.len(),
        cases.len(),
        found.join("\n")
    );
}

#[test]
fn limbo_server_cases_with_server_auth_match() {
    let Some(cases) = load_cases() else { return };

    // Every kept case is a SERVER case, so serverAuth gives the suite's own
    // expected result and exercises the successful paths.
    let found = mismatches(
        &cases,
        Purpose::ServerAuth,
        "expected_result",
        "deciding_rule",
    );

    assert!(
        found.is_empty(),
        "{} of {} cases disagree:\n{}",
        found.len(),
        cases.len(),
        found.join("\n")
    );
}
