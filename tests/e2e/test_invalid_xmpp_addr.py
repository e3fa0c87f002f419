"""Ignore id-on-xmppAddr values that are not a UTF8String or contain NUL or control characters."""

import pytest

from certs import der_ia5string, der_utf8string
from clients import append_with_password, login_cert, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID, BOB_PASSWORD

# Builders of an invalid id-on-xmppAddr value for a JID.
INVALID_VALUES = {
    "ia5string": lambda jid: der_ia5string(jid),
    "nul-suffix": lambda jid: der_utf8string(jid + "\0.example.org"),
    "control-char": lambda jid: der_utf8string(jid.replace("@", "\x01@", 1)),
}


def ignored_addr_logged(server) -> bool:
    """Return whether the log has a line about an ignored id-on-xmppAddr."""
    return any("Ignoring" in line and "id-on-xmppAddr" in line
               for line in server.log_text().splitlines())


@pytest.mark.parametrize("case", list(INVALID_VALUES))
def test_only_invalid_addr_rejected(prosody, make_cert, case):
    # The certificate's only id-on-xmppAddr names alice, but in an invalid form.
    cert = make_cert("device", xmpp_addrs=(),
                     xmpp_addr_values=[INVALID_VALUES[case](ALICE_JID)])

    # Alice appends it.
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert))

    # With client_certs_require_xmpp_addr at its default, the certificate
    # has no usable id-on-xmppAddr.
    assert not appended.ok, appended.xml
    assert appended.condition == "not-acceptable", appended.xml
    assert appended.text and "id-on-xmppAddr" in appended.text, appended.xml
    assert ignored_addr_logged(prosody)


@pytest.mark.parametrize("case", list(INVALID_VALUES))
def test_invalid_addr_never_matches(prosody, make_cert, case):
    # A valid id-on-xmppAddr for alice and an invalid one for bob.
    cert = make_cert("device", xmpp_addrs=(ALICE_JID,),
                     xmpp_addr_values=[INVALID_VALUES[case](BOB_JID)])

    async def scenario():
        # Bob cannot register it, because only the valid value counts.
        bob_append = await append_with_password(
            prosody.address, BOB_JID, BOB_PASSWORD, "device", cert)

        # Alice can.
        alice_append = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert)
        assert alice_append.ok, alice_append.xml

        # Without an authzid the certificate names one JID of this host, so
        # the login is alice's and not invalid-authzid.
        login = await login_cert(prosody.address, ALICE_JID, cert)
        if login.success:
            await login.session.close()
        return bob_append, login

    bob_append, login = run_async(scenario())

    assert not bob_append.ok, bob_append.xml
    assert bob_append.condition == "not-acceptable", bob_append.xml
    assert login.success, f"{login.failure_condition}: {login.failure_text}"
    assert login.bound_jid.split("/", 1)[0] == ALICE_JID
