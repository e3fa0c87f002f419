//! Turns the text or bytes a client or administrator gives into DER.
//!
//! Three forms are accepted: raw DER, one PEM `CERTIFICATE` block, and
//! base64 of DER with any ASCII whitespace inside (XEP-0257 `<x509cert/>`
//! content is often wrapped at 64 or 76 columns).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::Error;

const PEM_BEGIN: &str = "-----BEGIN ";
const PEM_END: &str = "-----END ";
const PEM_DASHES: &str = "-----";

/// Decodes `input` as DER, PEM or base64 DER and returns the DER bytes.
///
/// `max_der_size` is the largest DER accepted, in bytes; text whose decoded
/// size would exceed it is rejected before it is decoded.
pub fn to_der(input: &[u8], max_der_size: usize) -> Result<Vec<u8>, Error> {
    // A DER certificate starts with a SEQUENCE tag; base64 and PEM never do.
    if input.first() == Some(&0x30) {
        check_size(input.len(), max_der_size)?;
        return Ok(input.to_vec());
    }

    // Base64 grows data by 4/3; allow some room for line breaks and PEM
    // armour so that the text check never rejects a DER that fits.
    let text_limit = max_der_size.saturating_mul(2).saturating_add(1024);
    if input.len() > text_limit {
        return Err(Error::TooLarge {
            size: input.len(),
            limit: max_der_size,
        });
    }

    let text = std::str::from_utf8(input).map_err(|_| Error::Malformed {
        reason: "input is neither DER nor ASCII text".to_string(),
    })?;
    let body = match text.find(PEM_BEGIN) {
        Some(start) => pem_body(text, start)?,
        None => text,
    };

    let der = decode_base64(body)?;
    check_size(der.len(), max_der_size)?;
    Ok(der)
}

fn check_size(size: usize, limit: usize) -> Result<(), Error> {
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    Ok(())
}

/// Returns the base64 body of the first PEM block, which must be a
/// `CERTIFICATE` (RFC 7468 section 5.1).
fn pem_body(text: &str, begin_at: usize) -> Result<&str, Error> {
    let after_begin = text.get(begin_at + PEM_BEGIN.len()..).unwrap_or("");
    let label_end = after_begin
        .find(PEM_DASHES)
        .ok_or_else(|| Error::Malformed {
            reason: "PEM header line is not terminated by -----".to_string(),
        })?;
    let label = after_begin.get(..label_end).unwrap_or("");
    if label != "CERTIFICATE" {
        return Err(Error::Malformed {
            reason: format!("PEM block is a {label:?}, expected \"CERTIFICATE\""),
        });
    }

    let body_and_rest = after_begin
        .get(label_end + PEM_DASHES.len()..)
        .unwrap_or("");
    let end_marker = format!("{PEM_END}{label}{PEM_DASHES}");
    let body_end = body_and_rest
        .find(&end_marker)
        .ok_or_else(|| Error::Malformed {
            reason: "PEM block has no -----END CERTIFICATE----- line".to_string(),
        })?;
    Ok(body_and_rest.get(..body_end).unwrap_or(""))
}

/// Decodes standard base64, skipping ASCII whitespace anywhere in the text.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, Error> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(Error::Malformed {
            reason: "input is empty".to_string(),
        });
    }
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|err| Error::Malformed {
            reason: format!("invalid base64: {err}"),
        })
}

/// Encodes DER as one line of standard base64, the canonical form stored in
/// records and sent in `<x509cert/>`.
pub fn encode_base64(der: &[u8]) -> String {
    STANDARD.encode(der)
}

/// Encodes DER as a PEM `CERTIFICATE` block with 64-column lines.
pub fn encode_pem(der: &[u8]) -> String {
    let body = encode_base64(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(line).unwrap_or(""));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
