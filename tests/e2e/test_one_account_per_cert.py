"""Register one certificate on at most one account per host."""

import pytest

from clients import append_with_password, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID, BOB_PASSWORD

CASES = {
    # Without id-on-xmppAddr, only the fingerprint index records the owner.
    "no-xmpp-addr": dict(options={"client_certs_require_xmpp_addr": False}, xmpp_addrs=()),
    # A certificate that names both accounts passes the identity check for each.
    "names-both": dict(options={}, xmpp_addrs=(ALICE_JID, BOB_JID)),
}


def bob_appends_and_lists(address, cert):
    """Append cert as bob and return the reply and bob's listed names."""
    async def scenario():
        login = await login_password(address, BOB_JID, BOB_PASSWORD)
        assert login.success, login.failure_condition
        try:
            reply = await login.session.add_cert("shared", cert.b64)
            items = await login.session.get_certs()
        finally:
            await login.session.close()
        return reply, [item.name for item in items]

    return run_async(scenario())


@pytest.mark.parametrize("case", list(CASES))
def test_second_account_gets_conflict(prosody_factory, make_cert, case):
    server = prosody_factory(extra_options=CASES[case]["options"])
    server.start()
    cert = make_cert("shared", xmpp_addrs=CASES[case]["xmpp_addrs"])

    first = run_async(append_with_password(
        server.address, ALICE_JID, ALICE_PASSWORD, "shared", cert))
    assert first.ok, first.xml

    reply, names = bob_appends_and_lists(server.address, cert)

    assert not reply.ok, reply.xml
    assert reply.condition == "conflict", reply.xml
    assert reply.text, reply.xml
    assert names == []


@pytest.mark.parametrize("case", list(CASES))
def test_disabled_cert_moves_to_other_account(prosody_factory, make_cert, case):
    server = prosody_factory(extra_options=CASES[case]["options"])
    server.start()
    cert = make_cert("shared", xmpp_addrs=CASES[case]["xmpp_addrs"])

    # Alice registers the certificate, then disables it.
    async def alice_adds_and_disables():
        login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            added = await login.session.add_cert("shared", cert.b64)
            disabled = await login.session.disable_cert("shared")
        finally:
            await login.session.close()
        return added, disabled

    added, disabled = run_async(alice_adds_and_disables())
    assert added.ok, added.xml
    assert disabled.ok, disabled.xml

    # Bob may register it now.
    reply, names = bob_appends_and_lists(server.address, cert)

    assert reply.ok, reply.xml
    assert names == ["shared"]
