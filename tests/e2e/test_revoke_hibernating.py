"""Revoking a certificate also ends sessions hibernating under XEP-0198.

A session that logged in with a certificate and lost its connection waits
for resumption. Revoking the certificate must destroy it, so that no client can
resume it; without the revoke, the same resumption succeeds.
"""

import socket
import xml.etree.ElementTree as ET

import pytest

from clients import RawClient, append_with_password, login_password, run_async
from harness import ALICE, ALICE_JID, ALICE_PASSWORD

NS_SM = "urn:xmpp:sm:3"


def start_resumable_cert_session(address, cert) -> str:
    """Log in with cert, enable stream management, drop the connection, return the resumption id."""
    raw = RawClient(address)
    raw.starttls(cert)
    outcome = raw.auth_external("")
    assert outcome.kind == "success", outcome.xml
    raw.bind("phone")
    raw.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    enabled = raw.read_element()
    assert enabled.tag == f"{{{NS_SM}}}enabled", ET.tostring(enabled)
    # Close the TCP connection without closing the stream: the session hibernates.
    raw.sock.shutdown(socket.SHUT_RDWR)
    raw.close()
    return enabled.get("id")


def resume(address, previd: str) -> ET.Element:
    """Log in with the password on a new connection and try to resume previd."""
    with RawClient(address) as raw:
        raw.starttls()
        outcome = raw.auth_plain(ALICE, ALICE_PASSWORD)
        assert outcome.kind == "success", outcome.xml
        raw.open_stream()
        raw.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        return raw.read_element()


async def revoke_with_password(address, name: str):
    login = await login_password(address, ALICE_JID, ALICE_PASSWORD)
    assert login.success, login.failure_condition
    try:
        return await login.session.revoke_cert(name)
    finally:
        await login.session.close()


@pytest.fixture
def smacks_server(prosody_factory):
    server = prosody_factory(extra_modules=("smacks",))
    server.start()
    return server


def test_hibernating_session_resumes_without_revoke(smacks_server, make_cert):
    cert = make_cert("phone")
    appended = run_async(append_with_password(smacks_server.address, ALICE_JID, ALICE_PASSWORD, "phone", cert))
    assert appended.ok, appended.xml

    # Log in with the certificate and let the session hibernate.
    previd = start_resumable_cert_session(smacks_server.address, cert)

    # Resuming works while the certificate is registered.
    answer = resume(smacks_server.address, previd)

    assert answer.tag == f"{{{NS_SM}}}resumed", ET.tostring(answer)


def test_revoke_destroys_hibernating_session(smacks_server, make_cert):
    cert = make_cert("phone")
    appended = run_async(append_with_password(smacks_server.address, ALICE_JID, ALICE_PASSWORD, "phone", cert))
    assert appended.ok, appended.xml

    # Log in with the certificate and let the session hibernate.
    previd = start_resumable_cert_session(smacks_server.address, cert)

    # Revoke the certificate from a password session.
    revoked = run_async(revoke_with_password(smacks_server.address, "phone"))
    assert revoked.ok, revoked.xml

    # The hibernating session is gone, so resumption fails.
    answer = resume(smacks_server.address, previd)
    assert answer.tag == f"{{{NS_SM}}}failed", ET.tostring(answer)
