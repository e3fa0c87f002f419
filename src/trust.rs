//! Trust anchors configured with `client_certs_trusted_cas`.
//!
//! There is no path building: a client certificate is trusted only when a
//! certificate in the bundle issued it directly. An administrator who issues
//! from an intermediate CA puts that intermediate in the bundle.

use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use crate::certificate::Certificate;
use crate::error::{format_time, Error};
use crate::policy::{check_validity, Purpose};

/// One CA certificate from the bundle, kept as DER and parsed on use.
#[derive(Debug, Clone)]
struct Anchor {
    der: Vec<u8>,
    subject: String,
}

/// The set of CA certificates a client certificate must be issued by.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Vec<Anchor>,
}

impl TrustAnchors {
    /// Loads every `CERTIFICATE` block of a PEM bundle.
    ///
    /// `source_name` (usually the file path) appears in error messages.
    /// Blocks of other types are skipped; a bundle with no certificate, or
    /// with a certificate that does not parse, is an error.
    pub fn from_pem(pem: &[u8], source_name: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::BadTrustAnchors {
            source_name: source_name.to_string(),
            reason,
        };

        let mut anchors = Vec::new();
        for (position, block) in Pem::iter_from_buffer(pem).enumerate() {
            let block = block
                .map_err(|err| bad(format!("PEM block {} is invalid: {err}", position + 1)))?;
            if block.label != "CERTIFICATE" {
                continue;
            }
            let (rest, cert) = X509Certificate::from_der(&block.contents).map_err(|err| {
                bad(format!(
                    "certificate {} is invalid: {err}",
                    anchors.len() + 1
                ))
            })?;
            if !rest.is_empty() {
                return Err(bad(format!(
                    "certificate {} has trailing bytes",
                    anchors.len() + 1
                )));
            }
            let subject = cert.subject().to_string();
            drop(cert);
            anchors.push(Anchor {
                der: block.contents,
                subject,
            });
        }

        if anchors.is_empty() {
            return Err(bad("no CERTIFICATE block found".to_string()));
        }
        Ok(TrustAnchors { anchors })
    }

    /// Returns how many CA certificates the bundle holds.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Returns true when the bundle contains no certificate.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Checks that `leaf` was issued by one of the anchors at time `now`
    /// (seconds since the Unix epoch).
    ///
    /// An anchor qualifies when all of these hold:
    /// - its subject equals the leaf's issuer;
    /// - its public key verifies the leaf's signature;
    /// - it is a CA (basicConstraints cA, RFC 5280 section 4.2.1.9);
    /// - its keyUsage, when present, includes keyCertSign (section 4.2.1.3);
    /// - `now` is within its validity period.
    ///
    /// The leaf must also allow client authentication and carry no
    /// unrecognised critical extension (section 4.2).
    ///
    /// The leaf's own validity period is not checked here; callers check it
    /// with [`Certificate::check_validity`].
    pub fn verify(&self, leaf: &Certificate, now: i64) -> Result<(), Error> {
        self.verify_for(leaf, now, Purpose::ClientAuth)
    }

    /// Runs the checks of [`TrustAnchors::verify`] with the leaf's usage
    /// checked for `purpose` instead of client authentication.
    pub fn verify_for(&self, leaf: &Certificate, now: i64, purpose: Purpose) -> Result<(), Error> {
        let untrusted = |reason: String| Error::Untrusted { reason };

        if let Some(oid) = &leaf.unknown_critical_extension {
            return Err(untrusted(format!("unrecognised critical extension {oid}")));
        }
        leaf.check_usage(purpose)?;

        let (_, parsed_leaf) = X509Certificate::from_der(leaf.der())
            .map_err(|err| untrusted(format!("invalid DER: {err}")))?;

        let mut problem = format!("no trusted CA has subject {}", leaf.issuer);
        for anchor in self.anchors.iter().filter(|a| a.subject == leaf.issuer) {
            match check_anchor(anchor, &parsed_leaf, now) {
                Ok(()) => return Ok(()),
                Err(reason) => problem = reason,
            }
        }
        Err(untrusted(problem))
    }
}

/// Checks one anchor whose subject matches the leaf's issuer.
fn check_anchor(anchor: &Anchor, leaf: &X509Certificate<'_>, now: i64) -> Result<(), String> {
    let (_, ca) = X509Certificate::from_der(&anchor.der)
        .map_err(|err| format!("CA {} is invalid: {err}", anchor.subject))?;

    leaf.verify_signature(Some(ca.public_key()))
        .map_err(|err| {
            format!(
                "signature does not verify with the key of CA {}: {err}",
                anchor.subject
            )
        })?;

    let is_ca = matches!(ca.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return Err(format!(
            "issuer {} is not a CA (basicConstraints cA is not set)",
            anchor.subject
        ));
    }

    match ca.key_usage() {
        Ok(Some(key_usage)) if !key_usage.value.key_cert_sign() => {
            return Err(format!(
                "issuer {} keyUsage lacks keyCertSign",
                anchor.subject
            ));
        }
        Ok(_) => {}
        Err(err) => {
            return Err(format!(
                "issuer {} has an invalid keyUsage: {err}",
                anchor.subject
            ))
        }
    }

    let validity = ca.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    check_validity(not_before, not_after, now).map_err(|_| {
        format!(
            "CA {} is outside its validity period {} to {}",
            anchor.subject,
            format_time(not_before),
            format_time(not_after)
        )
    })
}
