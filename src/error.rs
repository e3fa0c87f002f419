//! The single error type of the library and its stable codes.

use std::fmt;

/// Every expected failure of the library, one variant per cause.
///
/// Each variant maps to one stable code (see [`Error::code`]), which the Lua
/// module turns into an XMPP error condition. The `Display` text is written
/// for an administrator's log and for the `<text/>` of an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a certificate: bad base64, bad PEM, bad DER or
    /// trailing bytes.
    Malformed {
        /// The problem found in the input.
        reason: String,
    },
    /// The DER certificate, or the text it was given in, is larger than the
    /// configured limit.
    TooLarge {
        /// Size of the DER certificate or of the input text, in bytes.
        size: usize,
        /// The configured limit, in bytes of DER.
        limit: usize,
    },
    /// notAfter is before the time used for the check.
    Expired {
        /// notAfter, in seconds since the Unix epoch.
        not_after: i64,
        /// The time of the check, in seconds since the Unix epoch.
        now: i64,
    },
    /// notBefore is after the time used for the check.
    NotYetValid {
        /// notBefore, in seconds since the Unix epoch.
        not_before: i64,
        /// The time of the check, in seconds since the Unix epoch.
        now: i64,
    },
    /// The certificate carries no usable id-on-xmppAddr.
    NoXmppAddr,
    /// The certificate does not chain to a configured trust anchor.
    Untrusted {
        /// The reason the chain check failed.
        reason: String,
    },
    /// keyUsage or extendedKeyUsage forbid TLS client authentication.
    BadKeyUsage {
        /// The extension that forbids it and the purposes it allows instead.
        reason: String,
    },
    /// A trust anchor bundle could not be read or contains no usable
    /// certificate.
    BadTrustAnchors {
        /// The bundle's path or a description of the input.
        source_name: String,
        /// The cause of the failure.
        reason: String,
    },
    /// The fingerprint index could not be opened, read or written.
    Index {
        /// The operation and the SQLite error.
        reason: String,
    },
}

impl Error {
    /// Returns the stable code of this error, the value Lua matches on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed { .. } => "malformed",
            Error::TooLarge { .. } => "too-large",
            Error::Expired { .. } => "expired",
            Error::NotYetValid { .. } => "not-yet-valid",
            Error::NoXmppAddr => "no-xmpp-addr",
            Error::Untrusted { .. } => "untrusted",
            Error::BadKeyUsage { .. } => "bad-key-usage",
            Error::BadTrustAnchors { .. } => "bad-trust-anchors",
            Error::Index { .. } => "index-error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed { reason } => write!(
                f,
                "invalid certificate: {reason}; expected one X.509 certificate as DER, PEM or base64 DER"
            ),
            Error::TooLarge { size, limit } => write!(
                f,
                "certificate too large: {size} bytes, the limit is {limit} bytes of DER"
            ),
            Error::Expired { not_after, now } => write!(
                f,
                "certificate expired: notAfter is {}, the time is {}",
                format_time(*not_after),
                format_time(*now)
            ),
            Error::NotYetValid { not_before, now } => write!(
                f,
                "certificate not yet valid: notBefore is {}, the time is {}",
                format_time(*not_before),
                format_time(*now)
            ),
            Error::NoXmppAddr => write!(
                f,
                "certificate has no id-on-xmppAddr in subjectAltName; \
                 add an otherName 1.3.6.1.5.5.7.8.5 with your JID as UTF8String"
            ),
            Error::Untrusted { reason } => {
                write!(f, "certificate not issued by a trusted CA: {reason}")
            }
            Error::BadKeyUsage { reason } => write!(
                f,
                "certificate not usable for TLS client authentication: {reason}"
            ),
            Error::BadTrustAnchors {
                source_name,
                reason,
            } => write!(f, "cannot load trusted CAs from {source_name}: {reason}"),
            Error::Index { reason } => write!(f, "fingerprint index failed: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// Formats seconds since the Unix epoch as a UTC date and time.
pub fn format_time(seconds: i64) -> String {
    match x509_parser::time::ASN1Time::from_timestamp(seconds) {
        Ok(time) => time.to_string(),
        Err(_) => format!("{seconds} seconds since the epoch"),
    }
}
