//! Timing of the native operations on the login path: parsing the peer
//! certificate, checking it against a trust anchor, and index look-ups.
//!
//! Run with `make bench` (or `cargo bench --bench native`). It prints the
//! mean time per operation; numbers depend on the machine, so they are
//! printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use client_certs::index::{Entry, Index};
use client_certs::{Certificate, TrustAnchors};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, OtherNameValue,
    SanType,
};

const ID_ON_XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

/// Runs `operation` `count` times and prints the mean time per call.
fn measure(label: &str, count: u32, mut operation: impl FnMut()) {
    for _ in 0..count / 10 {
        operation();
    }
    let started = Instant::now();
    for _ in 0..count {
        operation();
    }
    let per_call = started.elapsed().as_secs_f64() / f64::from(count);
    println!("{label:<48} {:>10.2} µs/op  ({count} runs)", per_call * 1e6);
}

fn main() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::default();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "alice");
    leaf_params.subject_alt_names = vec![SanType::OtherName((
        ID_ON_XMPP_ADDR.to_vec(),
        OtherNameValue::Utf8String("alice@example.test".to_string()),
    ))];
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let leaf_der = leaf.der().to_vec();
    let leaf_pem = leaf.pem();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    println!("client_certs native benchmarks (ECDSA P-256 certificates)");
    measure("parse DER", 20_000, || {
        black_box(Certificate::parse(black_box(&leaf_der), 16384).unwrap());
    });
    measure("parse PEM (the form LuaSec returns)", 20_000, || {
        black_box(Certificate::parse(black_box(leaf_pem.as_bytes()), 16384).unwrap());
    });

    let parsed = Certificate::parse(&leaf_der, 16384).unwrap();
    let anchors = TrustAnchors::from_pem(ca.pem().as_bytes(), "bench").unwrap();
    measure("verify against one trust anchor", 5_000, || {
        anchors.verify(black_box(&parsed), now).unwrap();
    });

    let folder = std::env::temp_dir().join(format!("client-certs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let (mut index, _) = Index::open(&folder.join("index.sqlite")).unwrap();
    let rows: Vec<Entry> = (0..100_000)
        .map(|i| Entry {
            username: format!("user{}", i / 10),
            name: format!("device{}", i % 10),
            fingerprint: format!("{i:064x}"),
            not_after: now + 86_400,
            last_login: None,
            login_count: 0,
        })
        .collect();
    let started = Instant::now();
    index.rebuild("example.test", &rows, now).unwrap();
    println!(
        "{:<48} {:>10.2} s  (100000 rows, one transaction)",
        "index rebuild, SQLite part only",
        started.elapsed().as_secs_f64()
    );
    let mut i = 0u64;
    measure("index lookup by fingerprint (100000 rows)", 20_000, || {
        i = (i + 7919) % 100_000;
        black_box(index.lookup("example.test", &format!("{i:064x}")).unwrap());
    });
    measure("index record_login", 2_000, || {
        i = (i + 7919) % 100_000;
        index
            .record_login("example.test", &format!("{i:064x}"), now)
            .unwrap();
    });
    drop(index);
    let _ = std::fs::remove_dir_all(&folder);
}
