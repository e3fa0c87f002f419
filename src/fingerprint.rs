//! Certificate fingerprints.

use ring::digest::{digest, SHA256};

/// Returns the SHA-256 of `der` as 64 lowercase hexadecimal digits.
pub fn sha256_hex(der: &[u8]) -> String {
    let hash = digest(&SHA256, der);
    let mut hex = String::with_capacity(64);
    for byte in hash.as_ref() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}
