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

/// The TLS role a certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// TLS client authentication (id-kp-clientAuth), the role of every
    /// certificate this module accepts.
    ClientAuth,
    /// TLS server authentication (id-kp-serverAuth); used only to run
    /// server-side conformance cases through the same checks.
    ServerAuth,
}

/// The purposes listed in extendedKeyUsage, in the form the usage check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExtendedKeyUsage {
    any: bool,
    client_auth: bool,
    server_auth: bool,
    /// Every listed purpose by name or OID, for error messages.
    listed: Vec<String>,
}

/// The keyUsage and extendedKeyUsage facts of a certificate, read once at
/// parse time so that usage can be checked later without the DER.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyUsageFacts {
    extended: Option<ExtendedKeyUsage>,
    /// keyUsage as (digitalSignature, keyEncipherment or keyAgreement,
    /// readable form), when present.
    key_usage: Option<(bool, bool, String)>,
}

impl KeyUsageFacts {
    /// Reads keyUsage and extendedKeyUsage from `cert`.
    ///
    /// Returns `Malformed` when either extension cannot be parsed or appears
    /// twice.
    pub fn read(cert: &X509Certificate<'_>) -> Result<Self, Error> {
        let eku = cert.extended_key_usage().map_err(|err| Error::Malformed {
            reason: format!("invalid extendedKeyUsage extension: {err}"),
        })?;
        let extended = eku.map(|eku| {
            let eku = eku.value;
            let mut listed = Vec::new();
            for (present, name) in [
                (eku.any, "anyExtendedKeyUsage"),
                (eku.server_auth, "serverAuth"),
                (eku.client_auth, "clientAuth"),
                (eku.code_signing, "codeSigning"),
                (eku.email_protection, "emailProtection"),
                (eku.time_stamping, "timeStamping"),
                (eku.ocsp_signing, "OCSPSigning"),
            ] {
                if present {
                    listed.push(name.to_string());
                }
            }
            listed.extend(eku.other.iter().map(|oid| oid.to_id_string()));
            ExtendedKeyUsage {
                any: eku.any,
                client_auth: eku.client_auth,
                server_auth: eku.server_auth,
                listed,
            }
        });

        let key_usage = cert.key_usage().map_err(|err| Error::Malformed {
            reason: format!("invalid keyUsage extension: {err}"),
        })?;
        let key_usage = key_usage.map(|ku| {
            let ku = ku.value;
            (
                ku.digital_signature(),
                ku.key_encipherment() || ku.key_agreement(),
                ku.to_string(),
            )
        });

        Ok(KeyUsageFacts {
            extended,
            key_usage,
        })
    }

    /// Returns why keyUsage or extendedKeyUsage forbid `purpose`, or `None`
    /// when they allow it or are absent.
    ///
    /// RFC 5280 section 4.2.1.12: when extendedKeyUsage is present, the
    /// certificate may only be used for the purposes it lists, so it must list
    /// the purpose or anyExtendedKeyUsage. Section 4.2.1.3: when keyUsage is
    /// present, a client key signs the TLS handshake and needs
    /// digitalSignature. A server key may instead encrypt or agree on the
    /// premaster secret (keyEncipherment or keyAgreement, RFC 5246 section
    /// 7.4.2).
    pub fn problem(&self, purpose: Purpose) -> Option<String> {
        let (purpose_name, allowed) = match (purpose, &self.extended) {
            (Purpose::ClientAuth, Some(eku)) => ("clientAuth", eku.client_auth || eku.any),
            (Purpose::ServerAuth, Some(eku)) => ("serverAuth", eku.server_auth || eku.any),
            (_, None) => ("", true),
        };
        if let (false, Some(eku)) = (allowed, &self.extended) {
            let listed = if eku.listed.is_empty() {
                "nothing".to_string()
            } else {
                eku.listed.join(", ")
            };
            return Some(format!(
                "extendedKeyUsage allows only {listed}; it must include {purpose_name}"
            ));
        }

        if let Some((signs, exchanges_keys, readable)) = &self.key_usage {
            let allowed = match purpose {
                Purpose::ClientAuth => *signs,
                Purpose::ServerAuth => *signs || *exchanges_keys,
            };
            if !allowed {
                let needed = match purpose {
                    Purpose::ClientAuth => "digitalSignature",
                    Purpose::ServerAuth => "digitalSignature, keyEncipherment or keyAgreement",
                };
                return Some(format!("keyUsage is {readable}; it must include {needed}"));
            }
        }
        None
    }
}
