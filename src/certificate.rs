//! A parsed client certificate: its DER and every fact the module needs.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use crate::decode;
use crate::error::Error;
use crate::fingerprint::sha256_hex;
use crate::identity::{xmpp_addrs, XmppAddrs};
use crate::policy::{self, KeyUsageFacts, Purpose};

/// Default for the largest DER certificate accepted, in bytes.
pub const DEFAULT_MAX_SIZE: usize = 16 * 1024;

/// An X.509 certificate parsed once, strictly, with the facts extracted.
///
/// Parsing checks only the encoding. The caller still owes the checks that
/// depend on time, account and configuration: [`Certificate::check_validity`],
/// [`Certificate::check_client_usage`], the JID match against
/// [`Certificate::xmpp_addrs`] after JID normalisation, and
/// [`crate::trust::TrustAnchors::verify`] when trust anchors are configured.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    /// SHA-256 of the DER, 64 lowercase hexadecimal digits.
    pub fingerprint: String,
    /// notBefore, in seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject distinguished name in RFC 4514 form.
    pub subject: String,
    /// Issuer distinguished name in RFC 4514 form.
    pub issuer: String,
    /// id-on-xmppAddr values found in subjectAltName.
    pub xmpp_addrs: XmppAddrs,
    /// keyUsage and extendedKeyUsage as read at parse time.
    usage: KeyUsageFacts,
    /// OID of the first critical extension this library does not recognise.
    pub unknown_critical_extension: Option<String>,
}

impl Certificate {
    /// Parses a certificate given as DER, PEM or base64 DER.
    ///
    /// `max_size` is the largest DER accepted, in bytes.
    pub fn parse(input: &[u8], max_size: usize) -> Result<Self, Error> {
        let der = decode::to_der(input, max_size)?;
        Self::from_der(der)
    }

    /// Parses DER bytes, rejecting trailing bytes after the certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self, Error> {
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|err| Error::Malformed {
            reason: format!("invalid DER: {err}"),
        })?;
        if !rest.is_empty() {
            return Err(Error::Malformed {
                reason: format!("{} trailing bytes after the certificate", rest.len()),
            });
        }

        let validity = cert.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        let subject = cert.subject().to_string();
        let issuer = cert.issuer().to_string();
        let addrs = xmpp_addrs(&cert)?;
        let usage = KeyUsageFacts::read(&cert)?;
        let unknown_critical_extension = first_unknown_critical(&cert);
        drop(cert);

        Ok(Certificate {
            fingerprint: sha256_hex(&der),
            der,
            not_before,
            not_after,
            subject,
            issuer,
            xmpp_addrs: addrs,
            usage,
            unknown_critical_extension,
        })
    }

    /// Returns the DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Returns the DER as one line of base64, the form stored in records.
    pub fn to_base64(&self) -> String {
        decode::encode_base64(&self.der)
    }

    /// Returns the certificate as a PEM block.
    pub fn to_pem(&self) -> String {
        decode::encode_pem(&self.der)
    }

    /// Checks that `now` (seconds since the Unix epoch) lies within
    /// notBefore..=notAfter (RFC 5280 section 4.1.2.5).
    pub fn check_validity(&self, now: i64) -> Result<(), Error> {
        policy::check_validity(self.not_before, self.not_after, now)
    }

    /// Checks that keyUsage and extendedKeyUsage, where present, allow TLS
    /// client authentication.
    pub fn check_client_usage(&self) -> Result<(), Error> {
        self.check_usage(Purpose::ClientAuth)
    }

    /// Checks that keyUsage and extendedKeyUsage, where present, allow
    /// `purpose`.
    pub fn check_usage(&self, purpose: Purpose) -> Result<(), Error> {
        match self.usage.problem(purpose) {
            None => Ok(()),
            Some(reason) => Err(Error::BadKeyUsage { reason }),
        }
    }
}

/// Returns the OID of the first critical extension that x509-parser does not
/// parse. RFC 5280 section 4.2 requires a verifier to reject such a certificate.
fn first_unknown_critical(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions()
        .iter()
        .find(|ext| {
            ext.critical
                && matches!(
                    ext.parsed_extension(),
                    ParsedExtension::UnsupportedExtension { .. }
                )
        })
        .map(|ext| ext.oid.to_id_string())
}
