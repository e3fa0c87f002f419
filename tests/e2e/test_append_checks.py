"""Reject certificates that cannot be used for this account, and accept valid variants."""

import datetime
import textwrap

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from clients import login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)

# Conditions that mean the request never reached a deliberate check.
UNHANDLED = {"service-unavailable", "feature-not-implemented", "internal-server-error", "timeout"}

REJECTED = {
    "expired": dict(not_before=NOW - 30 * DAY, not_after=NOW - DAY),
    "no-xmpp-addr": dict(xmpp_addrs=()),
    "other-account": dict(xmpp_addrs=(BOB_JID,)),
    "server-auth-only": dict(extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH]),
}


def append_and_list(address, name, x509cert):
    async def scenario():
        result = await login_password(address, ALICE_JID, ALICE_PASSWORD)
        assert result.success, result.failure_condition
        try:
            reply = await result.session.add_cert(name, x509cert)
            items = await result.session.get_certs()
        finally:
            await result.session.close()
        return reply, items

    return run_async(scenario())


@pytest.mark.parametrize("case", list(REJECTED))
def test_append_rejects_unusable_cert(prosody, make_cert, case):
    cert = make_cert(case, **REJECTED[case])

    # Append the certificate and list what is stored.
    reply, items = append_and_list(prosody.address, case, cert.b64)

    assert not reply.ok, reply.xml
    assert reply.condition not in UNHANDLED, reply.xml
    assert items == []


def test_append_eku_error_names_key_usage(prosody, make_cert):
    cert = make_cert("server-only", extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH])

    reply, _items = append_and_list(prosody.address, "server-only", cert.b64)

    # The error text names the extended key usage as the cause.
    assert not reply.ok, reply.xml
    assert reply.text is not None, reply.xml
    assert "usage" in reply.text.lower(), reply.xml


def test_append_rejects_invalid_base64(prosody):
    reply, items = append_and_list(prosody.address, "garbage", "not base64 DER!")

    assert not reply.ok, reply.xml
    assert reply.condition not in UNHANDLED, reply.xml
    assert items == []


def test_append_accepts_client_auth_eku(prosody, make_cert):
    cert = make_cert("client-auth", extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH])

    reply, items = append_and_list(prosody.address, "client-auth", cert.b64)

    assert reply.ok, reply.xml
    assert [item.name for item in items] == ["client-auth"]


def test_append_accepts_wrapped_base64(prosody, make_cert):
    cert = make_cert("wrapped")
    # Base64 in lines of 64 characters, as in PEM bodies.
    wrapped = "\n".join(textwrap.wrap(cert.b64, 64))

    reply, items = append_and_list(prosody.address, "wrapped", wrapped)

    assert reply.ok, reply.xml
    assert [item.name for item in items] == ["wrapped"]
    # CertItem.x509cert has whitespace removed, so this compares the base64 text.
    assert items[0].x509cert == cert.b64
