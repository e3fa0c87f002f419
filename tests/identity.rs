//! id-on-xmppAddr extraction: which subjectAltName values are usable, which
//! are skipped, and why.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use client_certs::certificate::DEFAULT_MAX_SIZE;
use client_certs::identity::XmppAddrs;
use client_certs::Certificate;
use common::{
    der_tlv, der_with_raw_san, leaf_params, self_signed_der, xmpp_addr, xmpp_addr_other_name,
    KeyKind, TAG_IA5_STRING, TAG_OID, TAG_PRINTABLE_STRING, TAG_UTF8_STRING,
};
use rcgen::{OtherNameValue, SanType};

fn addrs_of(der: &[u8]) -> XmppAddrs {
    Certificate::parse(der, DEFAULT_MAX_SIZE)
        .expect("parse fixture")
        .xmpp_addrs
}

fn addrs_with_sans(sans: Vec<SanType>) -> XmppAddrs {
    addrs_of(&self_signed_der(
        leaf_params("client", sans),
        KeyKind::EcdsaP256,
    ))
}

fn usable(jids: &[&str]) -> XmppAddrs {
    XmppAddrs {
        usable: jids.iter().map(|jid| jid.to_string()).collect(),
        skipped: Vec::new(),
    }
}

/// Returns the one skip reason of a certificate whose only xmppAddr value is
/// the given ASN.1 TLV inside `[0] EXPLICIT`.
fn skip_reason_for_value(inner_tlv: &[u8]) -> Vec<String> {
    let addrs = addrs_of(&der_with_raw_san(&[xmpp_addr_other_name(inner_tlv)]));
    assert_eq!(
        addrs.usable,
        Vec::<String>::new(),
        "no usable value expected"
    );
    addrs.skipped
}

#[test]
fn xmpp_addrs_without_san_empty() {
    let addrs = addrs_with_sans(Vec::new());

    assert_eq!(addrs, XmppAddrs::default());
}

#[test]
fn xmpp_addrs_dns_name_only_empty() {
    let addrs = addrs_with_sans(vec![SanType::DnsName(
        "client.example.test".try_into().expect("IA5 name"),
    )]);

    assert_eq!(addrs, XmppAddrs::default());
}

#[test]
fn xmpp_addrs_one_bare_jid_usable() {
    let addrs = addrs_with_sans(vec![xmpp_addr("alice@example.test")]);

    assert_eq!(addrs, usable(&["alice@example.test"]));
}

#[test]
fn xmpp_addrs_several_in_certificate_order() {
    let addrs = addrs_with_sans(vec![
        xmpp_addr("bob@example.test"),
        xmpp_addr("alice@example.test"),
        xmpp_addr("carol@other.test"),
    ]);

    assert_eq!(
        addrs,
        usable(&["bob@example.test", "alice@example.test", "carol@other.test"])
    );
}

#[test]
fn xmpp_addrs_full_jid_kept_whole() {
    let addrs = addrs_with_sans(vec![xmpp_addr("alice@example.test/phone")]);

    assert_eq!(addrs, usable(&["alice@example.test/phone"]));
}

#[test]
fn xmpp_addrs_case_kept_for_jid_prep() {
    let addrs = addrs_with_sans(vec![xmpp_addr("Alice@Example.Test")]);

    assert_eq!(addrs, usable(&["Alice@Example.Test"]));
}

#[test]
fn xmpp_addrs_non_ascii_jid_usable() {
    let addrs = addrs_with_sans(vec![xmpp_addr("jürgen@bücher.example")]);

    assert_eq!(addrs, usable(&["jürgen@bücher.example"]));
}

#[test]
fn xmpp_addrs_mixed_with_other_names() {
    let addrs = addrs_with_sans(vec![
        SanType::DnsName("client.example.test".try_into().expect("IA5 name")),
        SanType::Rfc822Name("alice@example.test".try_into().expect("IA5 name")),
        SanType::URI("xmpp:alice@example.test".try_into().expect("IA5 URI")),
        SanType::IpAddress(std::net::IpAddr::from([192, 0, 2, 1])),
        xmpp_addr("alice@example.test"),
    ]);

    assert_eq!(addrs, usable(&["alice@example.test"]));
}

#[test]
fn xmpp_addrs_other_oid_ignored() {
    // Microsoft's User Principal Name, 1.3.6.1.4.1.311.20.2.3, is an otherName
    // UTF8String that looks like a JID but is not an xmppAddr.
    let upn = SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        OtherNameValue::Utf8String("alice@example.test".to_string()),
    ));

    let addrs = addrs_with_sans(vec![upn]);

    assert_eq!(addrs, XmppAddrs::default());
}

#[test]
fn xmpp_addrs_hand_built_utf8_usable() {
    let value = der_tlv(TAG_UTF8_STRING, b"alice@example.test");

    let addrs = addrs_of(&der_with_raw_san(&[xmpp_addr_other_name(&value)]));

    assert_eq!(addrs, usable(&["alice@example.test"]));
}

#[test]
fn xmpp_addrs_ia5_string_skipped() {
    let skipped = skip_reason_for_value(&der_tlv(TAG_IA5_STRING, b"alice@example.test"));

    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("expected UTF8String"), "{skipped:?}");
}

#[test]
fn xmpp_addrs_printable_string_skipped() {
    let skipped = skip_reason_for_value(&der_tlv(TAG_PRINTABLE_STRING, b"alice"));

    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("expected UTF8String"), "{skipped:?}");
}

#[test]
fn xmpp_addrs_oid_value_skipped() {
    let skipped = skip_reason_for_value(&der_tlv(TAG_OID, &[0x2b, 0x06, 0x01]));

    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("expected UTF8String"), "{skipped:?}");
}

#[test]
fn xmpp_addrs_invalid_utf8_skipped() {
    let skipped = skip_reason_for_value(&der_tlv(TAG_UTF8_STRING, b"alice\xff@example.test"));

    assert_eq!(
        skipped,
        vec!["id-on-xmppAddr value is not valid UTF-8".to_string()]
    );
}

#[test]
fn xmpp_addrs_empty_value_skipped() {
    let skipped = skip_reason_for_value(&der_tlv(TAG_UTF8_STRING, b""));

    assert_eq!(skipped, vec!["id-on-xmppAddr value is empty".to_string()]);
}

#[test]
fn xmpp_addrs_control_characters_skipped() {
    let cases = [
        ("NUL before domain", "alice\0@example.test", "U+0000"),
        ("NUL at end", "alice@example.test\0", "U+0000"),
        (
            "line feed",
            "alice@example.test\nbob@example.test",
            "U+000A",
        ),
        ("escape", "alice\u{1b}[31m@example.test", "U+001B"),
        ("DEL", "alice\u{7f}@example.test", "U+007F"),
        ("C1 control", "alice\u{85}@example.test", "U+0085"),
    ];

    for (name, jid, code_point) in cases {
        let addrs = addrs_with_sans(vec![xmpp_addr(jid)]);

        assert_eq!(
            addrs,
            XmppAddrs {
                usable: Vec::new(),
                skipped: vec![format!(
                    "id-on-xmppAddr value contains control character {code_point}"
                )],
            },
            "{name}"
        );
    }
}

#[test]
fn xmpp_addrs_skipped_beside_usable() {
    let ia5 = xmpp_addr_other_name(&der_tlv(TAG_IA5_STRING, b"mallory@example.test"));
    let utf8 = xmpp_addr_other_name(&der_tlv(TAG_UTF8_STRING, b"alice@example.test"));

    let addrs = addrs_of(&der_with_raw_san(&[ia5, utf8]));

    assert_eq!(addrs.usable, vec!["alice@example.test".to_string()]);
    assert_eq!(addrs.skipped.len(), 1, "{:?}", addrs.skipped);
}

#[test]
fn xmpp_addrs_value_with_trailing_bytes_skipped() {
    let mut value = der_tlv(TAG_UTF8_STRING, b"alice@example.test");
    value.extend(der_tlv(TAG_UTF8_STRING, b"bob@example.test"));

    let skipped = skip_reason_for_value(&value);

    assert_eq!(skipped.len(), 1, "{skipped:?}");
}

#[test]
fn xmpp_addrs_bad_san_extension_malformed() {
    // A subjectAltName whose content is not a SEQUENCE of GeneralName.
    let mut params = leaf_params("bad san", Vec::new());
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &common::ID_CE_SUBJECT_ALT_NAME_ARCS,
        der_tlv(TAG_UTF8_STRING, b"alice@example.test"),
    )];
    let der = self_signed_der(params, KeyKind::EcdsaP256);

    let err = Certificate::parse(&der, DEFAULT_MAX_SIZE).expect_err("bad subjectAltName");

    assert_eq!(err.code(), "malformed");
}
