//! Policy checks that follow from the certificate and the clock alone.

use x509_parser::certificate::X509Certificate;

use crate::error::Error;

/// Checks that `now` lies within `not_before..=not_after`, all in seconds
/// since the Unix epoch (RFC 5280 section 4.1.2.5: both bounds inclusive).
pub fn check_validity(not_before: i64, not_after: i64, now: i64) -> Result<(), Error> {
    if now < not_before {
        return Err(Error::NotYetValid { not_before, now });
    }
    if now > not_after {
        return Err(Error::Expired { not_after, now });
    }
    Ok(())
}

/// Returns why keyUsage or extendedKeyUsage forbid TLS client
/// authentication, or `None` when they allow it or are absent.
///
/// RFC 5280 section 4.2.1.12: when extendedKeyUsage is present, the
/// certificate may only be used for the purposes it lists, so it must list
/// id-kp-clientAuth or anyExtendedKeyUsage. Section 4.2.1.3: when keyUsage is
/// present, a key that signs the TLS handshake needs digitalSignature.
///
/// Returns `Malformed` when either extension cannot be parsed or appears
/// twice.
pub fn client_usage_problem(cert: &X509Certificate<'_>) -> Result<Option<String>, Error> {
    let eku = cert.extended_key_usage().map_err(|err| Error::Malformed {
        reason: format!("invalid extendedKeyUsage extension: {err}"),
    })?;
    if let Some(eku) = eku {
        let eku = eku.value;
        if !eku.client_auth && !eku.any {
            let mut allowed = Vec::new();
            for (present, name) in [
                (eku.server_auth, "serverAuth"),
                (eku.code_signing, "codeSigning"),
                (eku.email_protection, "emailProtection"),
                (eku.time_stamping, "timeStamping"),
                (eku.ocsp_signing, "OCSPSigning"),
            ] {
                if present {
                    allowed.push(name.to_string());
                }
            }
            allowed.extend(eku.other.iter().map(|oid| oid.to_id_string()));
            return Ok(Some(format!(
                "extendedKeyUsage allows only {}; it must include clientAuth",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
    }

    let key_usage = cert.key_usage().map_err(|err| Error::Malformed {
        reason: format!("invalid keyUsage extension: {err}"),
    })?;
    if let Some(key_usage) = key_usage {
        if !key_usage.value.digital_signature() {
            return Ok(Some(format!(
                "keyUsage is {}; it must include digitalSignature",
                key_usage.value
            )));
        }
    }
    Ok(None)
}
