"""Restrict sessions whose certificate was appended with <no-cert-management/>."""

from clients import append_with_password, login_cert, run_async
from harness import ALICE_JID, ALICE_PASSWORD


def test_restricted_cert_lists_only(prosody, make_cert):
    restricted = make_cert("kiosk")
    spare = make_cert("spare")
    extra = make_cert("extra")

    async def scenario():
        # Register a restricted certificate and a second one to act on.
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "kiosk", restricted,
            allow_management=False)
        assert appended.ok, appended.xml
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "spare", spare)
        assert appended.ok, appended.xml

        # Log in with the restricted certificate.
        login = await login_cert(prosody.address, f"{ALICE_JID}/kiosk", restricted)
        assert login.success, f"{login.failure_condition}: {login.failure_text}"
        session = login.session
        try:
            # Listing is allowed.
            items = await session.get_certs()

            # Append, disable and revoke are rejected with forbidden.
            append = await session.add_cert("extra", extra.b64)
            disable = await session.disable_cert("spare")
            revoke = await session.revoke_cert("spare")

            # Nothing changed: both certificates are still stored.
            items_after = await session.get_certs()
        finally:
            await session.close()
        return items, append, disable, revoke, items_after

    items, append, disable, revoke, items_after = run_async(scenario())

    assert sorted(item.name for item in items) == ["kiosk", "spare"]
    for action, reply in (("append", append), ("disable", disable), ("revoke", revoke)):
        assert not reply.ok, f"{action}: {reply.xml}"
        assert reply.condition == "forbidden", f"{action}: {reply.xml}"
        assert reply.text, f"{action} error has no text: {reply.xml}"
    assert sorted(item.name for item in items_after) == ["kiosk", "spare"]


def test_normal_cert_can_manage(prosody, make_cert):
    device = make_cert("laptop")
    spare = make_cert("spare")
    extra = make_cert("extra")

    async def scenario():
        # Register a certificate with management allowed, and a second one.
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "laptop", device)
        assert appended.ok, appended.xml
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "spare", spare)
        assert appended.ok, appended.xml

        # Log in with it and append, then disable, a certificate.
        login = await login_cert(prosody.address, f"{ALICE_JID}/laptop", device)
        assert login.success, f"{login.failure_condition}: {login.failure_text}"
        session = login.session
        try:
            append = await session.add_cert("extra", extra.b64)
            after_append = await session.get_certs()
            disable = await session.disable_cert("extra")

            # Revoke the spare certificate, which no session uses.
            revoke = await session.revoke_cert("spare")
            after_revoke = await session.get_certs()
        finally:
            await session.close()
        return append, after_append, disable, revoke, after_revoke

    append, after_append, disable, revoke, after_revoke = run_async(scenario())

    assert append.ok, append.xml
    assert sorted(item.name for item in after_append) == ["extra", "laptop", "spare"]
    assert disable.ok, disable.xml
    assert revoke.ok, revoke.xml
    assert [item.name for item in after_revoke] == ["laptop"]
