"""Disable a certificate: its current session stays, new EXTERNAL logins fail."""

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

# How long a session is watched for an unexpected close after disable.
QUIET_PERIOD = 2.0


def test_disable_keeps_session_blocks_login(prosody, make_cert):
    cert = make_cert("phone")

    async def scenario():
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "phone", cert)
        assert appended.ok, appended.xml

        # Log in with the certificate and keep that session.
        cert_login = await login_cert(prosody.address, f"{ALICE_JID}/phone", cert)
        assert cert_login.success, f"{cert_login.failure_condition}: {cert_login.failure_text}"
        cert_session = cert_login.session

        # Disable the certificate from a password session.
        password_login = await login_password(prosody.address, f"{ALICE_JID}/desk",
                                              ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        manager = password_login.session
        try:
            disabled = await manager.disable_cert("phone")
            items = await manager.get_certs()

            # The certificate session is still connected and replies to a ping.
            closed = await cert_session.wait_disconnected(QUIET_PERIOD)
            ping = await cert_session.ping()

            # A new EXTERNAL login with the same certificate fails.
            second_login = await login_cert(prosody.address, ALICE_JID, cert)
            if second_login.success:
                await second_login.session.close()
        finally:
            await manager.close()
            await cert_session.close()
        return disabled, items, closed, ping, second_login

    disabled, items, closed, ping, second_login = run_async(scenario())

    assert disabled.ok, disabled.xml
    assert items == []
    assert not closed
    assert ping.ok, ping.xml
    assert not second_login.success
    assert second_login.failure_condition in {"not-authorized", "no-mechanism"}, second_login


def test_disable_unknown_name_not_found(prosody):
    async def scenario():
        result = await login_password(prosody.address, ALICE_JID, ALICE_PASSWORD)
        assert result.success, result.failure_condition
        try:
            # Disable a name that was never appended.
            return await result.session.disable_cert("no-such-cert")
        finally:
            await result.session.close()

    reply = run_async(scenario())

    assert not reply.ok
    assert reply.condition == "item-not-found", reply.xml
