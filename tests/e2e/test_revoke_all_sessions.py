"""Close every stream of a revoked certificate with a stream error whose text names the cause."""

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

# Upper bound for the server to close each revoked session.
CLOSE_TIMEOUT = 10.0


def test_revoke_closes_both_cert_sessions(prosody, make_cert):
    lost = make_cert("lost-phone")
    kept = make_cert("laptop")

    async def scenario():
        for name, cert in (("lost-phone", lost), ("laptop", kept)):
            appended = await append_with_password(
                prosody.address, ALICE_JID, ALICE_PASSWORD, name, cert)
            assert appended.ok, appended.xml

        # Two sessions with the certificate to revoke, one with another certificate.
        lost_sessions = []
        for resource in ("one", "two"):
            login = await login_cert(prosody.address, f"{ALICE_JID}/{resource}", lost)
            assert login.success, f"{login.failure_condition}: {login.failure_text}"
            lost_sessions.append(login.session)
        kept_login = await login_cert(prosody.address, f"{ALICE_JID}/laptop", kept)
        assert kept_login.success, f"{kept_login.failure_condition}: {kept_login.failure_text}"

        # Revoke from a password session.
        password = await login_password(prosody.address, f"{ALICE_JID}/desk", ALICE_PASSWORD)
        assert password.success, password.failure_condition
        try:
            revoked = await password.session.revoke_cert("lost-phone")

            # Both sessions of the revoked certificate end.
            closed = [await session.wait_disconnected(CLOSE_TIMEOUT) for session in lost_sessions]

            # The password session and the other certificate's session stay.
            password_ping = await password.session.ping()
            kept_ping = await kept_login.session.ping()
        finally:
            for session in (password.session, kept_login.session, *lost_sessions):
                await session.close()
        return revoked, closed, lost_sessions, password_ping, kept_ping

    revoked, closed, lost_sessions, password_ping, kept_ping = run_async(scenario())

    assert revoked.ok, revoked.xml
    assert closed == [True, True]
    for session in lost_sessions:
        assert session.stream_error_condition, "closed without a stream error"
        assert session.stream_error_text, "stream error has no text"
        assert "revoked" in session.stream_error_text.lower(), session.stream_error_text
    assert password_ping.ok, password_ping.xml
    assert kept_ping.ok, kept_ping.xml
