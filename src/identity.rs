//! id-on-xmppAddr values in subjectAltName (RFC 6120 section 13.7.1.4).
//!
//! x509-parser hands an otherName value back as raw bytes, so the
//! `[0] EXPLICIT UTF8String` wrapper is decoded here.

use x509_parser::der_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::error::Error;
use crate::oid::ID_ON_XMPP_ADDR;

/// The id-on-xmppAddr values of a certificate, split into those that may name
/// an account and those that were ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmppAddrs {
    /// Values that are valid UTF-8 without control characters, in
    /// certificate order. They still have to pass the server's JID
    /// normalisation (`util.jid.prep`) before they can match an account.
    pub usable: Vec<String>,
    /// One sentence per ignored value saying why it was ignored.
    pub skipped: Vec<String>,
}

/// Collects every id-on-xmppAddr otherName of `cert`'s subjectAltName.
///
/// Returns `Malformed` when the subjectAltName extension itself cannot be
/// parsed or appears twice.
pub fn xmpp_addrs(cert: &X509Certificate<'_>) -> Result<XmppAddrs, Error> {
    let mut found = XmppAddrs::default();
    let san = cert
        .subject_alternative_name()
        .map_err(|err| Error::Malformed {
            reason: format!("invalid subjectAltName extension: {err}"),
        })?;
    let Some(san) = san else {
        return Ok(found);
    };

    for name in &san.value.general_names {
        let GeneralName::OtherName(oid, value) = name else {
            continue;
        };
        if oid.to_id_string() != ID_ON_XMPP_ADDR {
            continue;
        }
        match decode_xmpp_addr(value) {
            Ok(jid) => found.usable.push(jid),
            Err(reason) => found.skipped.push(reason),
        }
    }
    Ok(found)
}

/// Decodes the `[0] EXPLICIT UTF8String` value of an id-on-xmppAddr.
///
/// Returns a sentence for the log when the value cannot name an account.
fn decode_xmpp_addr(value: &[u8]) -> Result<String, String> {
    let (rest, wrapper) =
        Any::from_der(value).map_err(|_| "id-on-xmppAddr value is not valid DER".to_string())?;
    if !rest.is_empty() || wrapper.class() != Class::ContextSpecific || wrapper.tag() != Tag(0) {
        return Err("id-on-xmppAddr value is not wrapped in [0] EXPLICIT".to_string());
    }

    let (rest, inner) = Any::from_der(wrapper.data)
        .map_err(|_| "id-on-xmppAddr value is not valid DER".to_string())?;
    if !rest.is_empty() || inner.tag() != Tag::Utf8String {
        return Err(format!(
            "id-on-xmppAddr value has ASN.1 tag {}, expected UTF8String",
            inner.tag()
        ));
    }

    let jid = std::str::from_utf8(inner.data)
        .map_err(|_| "id-on-xmppAddr value is not valid UTF-8".to_string())?;
    if jid.is_empty() {
        return Err("id-on-xmppAddr value is empty".to_string());
    }
    if let Some(bad) = jid.chars().find(|c| c.is_control()) {
        return Err(format!(
            "id-on-xmppAddr value contains control character U+{:04X}",
            u32::from(bad)
        ));
    }
    Ok(jid.to_string())
}
