"""Generate the TLS server certificate and the client certificates for one test run.

Every certificate is made fresh with `cryptography` and written as PEM files
(certificate and private key) into a folder the caller owns.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# id-on-xmppAddr (RFC 6120 section 13.7.1.4): the subjectAltName otherName
# type that carries a JID.
ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")

KEY_TYPES = ("rsa", "ec", "ed25519")


@dataclass(frozen=True)
class CertFiles:
    """A certificate with its private key, as files and in the encodings tests compare."""

    name: str
    cert_path: Path
    key_path: Path
    der: bytes

    @property
    def pem(self) -> str:
        return x509.load_der_x509_certificate(self.der).public_bytes(
            serialization.Encoding.PEM).decode("ascii")

    @property
    def b64(self) -> str:
        """Base64 of the DER, the form XEP-0257 puts in <x509cert/>."""
        return base64.b64encode(self.der).decode("ascii")

    @property
    def sha1_hex(self) -> str:
        """Lowercase SHA-1 of the DER without colons, as the community module stored it."""
        return hashlib.sha1(self.der).hexdigest()

    @property
    def sha256_hex(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def der_utf8string(text: str) -> bytes:
    """Encode text as a DER UTF8String: tag 0x0C, definite length, UTF-8 bytes."""
    value = text.encode("utf-8")
    return b"\x0c" + _der_length(len(value)) + value


def der_ia5string(text: str) -> bytes:
    """Encode ASCII text as a DER IA5String: tag 0x16, definite length, the bytes."""
    value = text.encode("ascii")
    return b"\x16" + _der_length(len(value)) + value


def xmpp_addr_other_name(jid: str) -> x509.OtherName:
    """Build an id-on-xmppAddr subjectAltName entry for jid.

    RFC 6120 defines it as `OtherName ::= SEQUENCE { type-id OID, value [0]
    EXPLICIT ANY }` with type-id 1.3.6.1.5.5.7.8.5 and the value a
    UTF8String. `cryptography` writes the [0] EXPLICIT wrapper itself and
    expects `value` to be the complete DER of the inner type, so the value
    passed here is the DER of a UTF8String (0x0C, length, UTF-8 bytes).
    """
    return x509.OtherName(ID_ON_XMPPADDR, der_utf8string(jid))


def generate_key(key_type: str):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}, expected one of {KEY_TYPES}")


def _signature_hash(key):
    # Ed25519 signs the message itself, so `cryptography` requires None here.
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


def _write_pair(folder: Path, name: str, key, cert: x509.Certificate) -> CertFiles:
    folder.mkdir(parents=True, exist_ok=True)
    cert_path = folder / f"{name}.crt"
    key_path = folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_path.chmod(0o600)
    return CertFiles(name=name, cert_path=cert_path, key_path=key_path,
                     der=cert.public_bytes(serialization.Encoding.DER))


def make_server_cert(folder: Path, host: str = "localhost") -> CertFiles:
    """Write a self-signed RSA server certificate for host (DNS SAN) and 127.0.0.1.

    The files are named `<host>.crt` and `<host>.key`, the names Prosody looks
    for in its certificates folder.
    """
    key = generate_key("rsa")
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    san = x509.SubjectAlternativeName([
        x509.DNSName(host),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, _signature_hash(key))
    )
    return _write_pair(folder, host, key, cert)


def make_client_cert(
    folder: Path,
    name: str,
    xmpp_addrs: Sequence[str] = (),
    key_type: str = "rsa",
    not_before: Optional[datetime.datetime] = None,
    not_after: Optional[datetime.datetime] = None,
    extended_key_usage: Optional[Iterable[x509.ObjectIdentifier]] = None,
    common_name: Optional[str] = None,
    xmpp_addr_values: Sequence[bytes] = (),
) -> CertFiles:
    """Write a self-signed client certificate and its key as `<name>.crt` and `<name>.key`.

    xmpp_addrs become id-on-xmppAddr otherNames in subjectAltName, in order;
    with none, the certificate has no subjectAltName at all. The validity
    window defaults to one day ago until 30 days ahead, so an expired or
    not-yet-valid certificate needs explicit dates. extended_key_usage adds an
    EKU extension with those OIDs when not None.
    """
    key = generate_key(key_type)
    now = datetime.datetime.now(datetime.timezone.utc)
    if not_before is None:
        not_before = now - datetime.timedelta(days=1)
    if not_after is None:
        not_after = now + datetime.timedelta(days=30)

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    # xmpp_addr_values are complete DER values (for example der_ia5string
    # output) of further id-on-xmppAddr entries, written after xmpp_addrs.
    other_names = [xmpp_addr_other_name(jid) for jid in xmpp_addrs]
    other_names += [x509.OtherName(ID_ON_XMPPADDR, value) for value in xmpp_addr_values]
    if other_names:
        san = x509.SubjectAlternativeName(other_names)
        builder = builder.add_extension(san, critical=False)
    if extended_key_usage is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)

    cert = builder.sign(key, _signature_hash(key))
    return _write_pair(folder, name, key, cert)


@dataclass(frozen=True)
class CertAuthority:
    """An issuer for make_issued_cert: its files, private key and certificate."""

    files: CertFiles
    key: object
    cert: x509.Certificate


def make_ca(
    folder: Path,
    name: str,
    issuer: Optional[CertAuthority] = None,
    not_before: Optional[datetime.datetime] = None,
    not_after: Optional[datetime.datetime] = None,
    is_ca: bool = True,
    key_cert_sign: bool = True,
) -> CertAuthority:
    """Write an ECDSA P-256 CA certificate and its key as `<name>.crt` and `<name>.key`.

    Without issuer the certificate is self-signed (a root). is_ca sets
    basicConstraints cA, and key_cert_sign the keyCertSign bit of keyUsage
    (cRLSign is always set), so that tests can make issuers that are not
    allowed to issue. The validity window defaults to one day ago until 365
    days ahead.
    """
    key = generate_key("ec")
    now = datetime.datetime.now(datetime.timezone.utc)
    if not_before is None:
        not_before = now - datetime.timedelta(days=1)
    if not_after is None:
        not_after = now + datetime.timedelta(days=365)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    key_usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
        crl_sign=True, encipher_only=False, decipher_only=False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .sign(signing_key, _signature_hash(signing_key))
    )
    return CertAuthority(files=_write_pair(folder, name, key, cert), key=key, cert=cert)


def make_issued_cert(
    folder: Path,
    name: str,
    issuer: CertAuthority,
    xmpp_addrs: Sequence[str] = (),
    extended_key_usage: Optional[Iterable[x509.ObjectIdentifier]] = None,
) -> CertFiles:
    """Write an ECDSA P-256 client certificate that issuer signed, and its key.

    xmpp_addrs and extended_key_usage work as in make_client_cert. The
    validity window is one day ago until 30 days ahead.
    """
    key = generate_key("ec")
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if xmpp_addrs:
        san = x509.SubjectAlternativeName([xmpp_addr_other_name(jid) for jid in xmpp_addrs])
        builder = builder.add_extension(san, critical=False)
    if extended_key_usage is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    cert = builder.sign(issuer.key, _signature_hash(issuer.key))
    return _write_pair(folder, name, key, cert)


def with_tampered_signature(original: CertFiles, folder: Path, name: str) -> CertFiles:
    """Write a copy of original whose last DER byte, part of the signature, is flipped.

    The copy still parses, but its signature no longer verifies. The key
    file is the original's.
    """
    der = original.der[:-1] + bytes([original.der[-1] ^ 0x01])
    folder.mkdir(parents=True, exist_ok=True)
    cert_path = folder / f"{name}.crt"
    cert_path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(
        serialization.Encoding.PEM))
    return CertFiles(name=name, cert_path=cert_path, key_path=original.key_path, der=der)


def write_bundle(path: Path, authorities: Sequence[CertAuthority]) -> Path:
    """Write the certificates of authorities into one PEM file, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(
        authority.cert.public_bytes(serialization.Encoding.PEM) for authority in authorities))
    return path
