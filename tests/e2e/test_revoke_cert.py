"""Revoke a certificate: the server closes its sessions and new EXTERNAL logins fail."""

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

# Upper bound for the server to close the revoked session.
CLOSE_TIMEOUT = 10.0


def test_revoke_closes_session_blocks_login(prosody, make_cert):
    cert = make_cert("lost-phone")

    async def scenario():
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "lost-phone", cert)
        assert appended.ok, appended.xml

        # Log in with the certificate and keep that session.
        cert_login = await login_cert(prosody.address, f"{ALICE_JID}/phone", cert)
        assert cert_login.success, f"{cert_login.failure_condition}: {cert_login.failure_text}"
        cert_session = cert_login.session

        # Revoke the certificate from a password session.
        password_login = await login_password(prosody.address, f"{ALICE_JID}/desk",
                                              ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        manager = password_login.session
        try:
            revoked = await manager.revoke_cert("lost-phone")

            # The server ends the certificate session.
            closed = await cert_session.wait_disconnected(CLOSE_TIMEOUT)

            # The password session is not affected.
            manager_ping = await manager.ping()
            items = await manager.get_certs()

            # A new EXTERNAL login with the same certificate fails.
            second_login = await login_cert(prosody.address, ALICE_JID, cert)
            if second_login.success:
                await second_login.session.close()
        finally:
            await manager.close()
            await cert_session.close()
        return revoked, closed, cert_session, manager_ping, items, second_login

    revoked, closed, cert_session, manager_ping, items, second_login = run_async(scenario())

    assert revoked.ok, revoked.xml
    assert closed
    assert cert_session.stream_error_condition is not None
    assert manager_ping.ok, manager_ping.xml
    assert items == []
    assert not second_login.success
    assert second_login.failure_condition in {"not-authorized", "no-mechanism"}, second_login
