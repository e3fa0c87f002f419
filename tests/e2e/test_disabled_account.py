"""Reject certificate logins to an account disabled by the administrator (Prosody 13)."""

import re

import pytest

from clients import RawClient, append_with_password, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID, BOB_PASSWORD


def prosody_major_version(server) -> int:
    """Read the major version from the startup line of a running server's log."""
    match = re.search(r"Hello and welcome to Prosody version (\d+)\.", server.log_text())
    assert match, f"no startup line with the version in {server.log_path}"
    return int(match.group(1))


def test_disabled_account_cert_rejected(prosody_factory, make_cert):
    # mod_admin_shell serves `prosodyctl shell` over the admin socket in data/.
    server = prosody_factory(extra_modules=["admin_shell"])
    server.start()
    if prosody_major_version(server) < 13:
        pytest.skip("Prosody before 13 has no disabled accounts (usermanager.disable_user)")
    alice_cert = make_cert("alice-device")
    bob_cert = make_cert("bob-device", xmpp_addrs=(BOB_JID,))

    # Alice and bob register a certificate each.
    for jid, password, cert in ((ALICE_JID, ALICE_PASSWORD, alice_cert),
                                (BOB_JID, BOB_PASSWORD, bob_cert)):
        appended = run_async(append_with_password(
            server.address, jid, password, cert.name, cert))
        assert appended.ok, appended.xml

    # The administrator disables alice's account.
    server.prosodyctl("shell", "user", "disable", ALICE_JID)

    # Alice's certificate login fails. EXTERNAL may already be withheld from
    # the offer, so the attempt is made even when it is not listed.
    with RawClient(server.address) as raw:
        raw.starttls(alice_cert)
        rejected = raw.auth_external("")

    # Bob, whose account is enabled, still logs in with his certificate.
    with RawClient(server.address) as raw:
        raw.starttls(bob_cert)
        bob_outcome = raw.auth_external("")

    # Alice's password login fails as well, which shows that disabling took effect.
    async def try_password():
        result = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        if result.success:
            await result.session.close()
        return result

    password_login = run_async(try_password())

    assert rejected.kind == "failure", rejected.xml
    assert rejected.condition in {"account-disabled", "not-authorized"}, rejected.xml
    assert bob_outcome.kind == "success", bob_outcome.xml
    assert not password_login.success
