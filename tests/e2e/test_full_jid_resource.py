"""Bind the resource named in a full-JID id-on-xmppAddr, whatever the client requests."""

import pytest

from clients import RawClient, append_with_password, login_cert, run_async
from harness import ALICE_JID, ALICE_PASSWORD

CERT_RESOURCE = "phone"


@pytest.fixture
def phone_cert(prosody, make_cert):
    """Alice's certificate naming alice@localhost/phone, registered from a password session."""
    cert = make_cert("phone", xmpp_addrs=(f"{ALICE_JID}/{CERT_RESOURCE}",))
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "phone", cert))
    assert appended.ok, appended.xml
    return cert


@pytest.mark.parametrize("requested", ["laptop", None], ids=["other-resource", "no-resource"])
def test_cert_resource_bound(prosody, phone_cert, requested):
    with RawClient(prosody.address) as raw:
        # Log in with the certificate.
        raw.starttls(phone_cert)
        outcome = raw.auth_external("")
        assert outcome.kind == "success", outcome.xml

        # Request another resource, or none.
        jid = raw.bind(requested)

    assert jid == f"{ALICE_JID}/{CERT_RESOURCE}"


def test_cert_resource_with_slixmpp(prosody, phone_cert):
    async def scenario():
        # slixmpp requests the resource "tablet".
        result = await login_cert(prosody.address, f"{ALICE_JID}/tablet", phone_cert)
        if result.success:
            await result.session.close()
        return result

    result = run_async(scenario())

    assert result.success, f"{result.failure_condition}: {result.failure_text}"
    assert result.bound_jid == f"{ALICE_JID}/{CERT_RESOURCE}"
