"""Choose the account by authzid when a certificate names several JIDs of this host."""

from clients import append_with_password, login_cert, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID, BOB_PASSWORD


def test_several_xmpp_addrs_need_authzid(prosody, make_cert):
    cert = make_cert("shared", xmpp_addrs=(ALICE_JID, BOB_JID))

    async def scenario():
        # Alice registers a certificate that names both alice and bob.
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "shared", cert)
        assert appended.ok, appended.xml

        # Without an authzid the server cannot tell which JID is meant.
        no_authzid = await login_cert(prosody.address, ALICE_JID, cert)

        # With alice's JID as authzid the login succeeds as alice.
        alice_login = await login_cert(prosody.address, ALICE_JID, cert, authzid=ALICE_JID)

        # Bob's JID as authzid fails, because the certificate is registered on alice only.
        bob_login = await login_cert(prosody.address, BOB_JID, cert, authzid=BOB_JID)

        for result in (no_authzid, alice_login, bob_login):
            if result.success:
                await result.session.close()
        return no_authzid, alice_login, bob_login

    no_authzid, alice_login, bob_login = run_async(scenario())

    assert not no_authzid.success
    assert no_authzid.failure_condition == "invalid-authzid", no_authzid
    assert alice_login.success, f"{alice_login.failure_condition}: {alice_login.failure_text}"
    assert alice_login.bound_jid.split("/", 1)[0] == ALICE_JID
    assert not bob_login.success
    assert bob_login.failure_condition == "not-authorized", bob_login


def test_cert_registered_on_one_account(prosody, make_cert):
    cert = make_cert("shared", xmpp_addrs=(ALICE_JID, BOB_JID))

    async def scenario():
        # Alice registers a certificate that names both alice and bob.
        alice_append = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "shared", cert)

        # Bob appends the same certificate to his account.
        bob_append = await append_with_password(
            prosody.address, BOB_JID, BOB_PASSWORD, "shared", cert)
        return alice_append, bob_append

    alice_append, bob_append = run_async(scenario())

    assert alice_append.ok, alice_append.xml
    # A certificate belongs to at most one account per host.
    assert not bob_append.ok, bob_append.xml
