//! Object identifiers the library looks for, named after their ASN.1
//! identifiers.

/// id-on-xmppAddr (1.3.6.1.5.5.7.8.5): an otherName in subjectAltName whose
/// value is a UTF8String holding a JID (RFC 6120 section 13.7.1.4).
pub const ID_ON_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
