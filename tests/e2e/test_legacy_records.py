"""Read certificate records written by the community mod_client_certs."""

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE, ALICE_JID, ALICE_PASSWORD, write_legacy_record


def test_legacy_record_lists_and_logs_in(prosody_factory, make_cert):
    cert = make_cert("old-laptop")
    server = prosody_factory()

    # Write the record file in the internal store before Prosody starts.
    record = write_legacy_record(server, ALICE, "old-laptop", cert)
    server.start()

    async def scenario():
        # The record is listed with its name and certificate.
        password_login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        try:
            items = await password_login.session.get_certs()
        finally:
            await password_login.session.close()

        # The certificate logs in with EXTERNAL.
        cert_login = await login_cert(server.address, ALICE_JID, cert)
        if cert_login.success:
            await cert_login.session.close()
        return items, cert_login

    items, cert_login = run_async(scenario())

    assert record.exists()
    assert [item.name for item in items] == ["old-laptop"]
    assert items[0].x509cert == cert.b64
    assert cert_login.success, f"{cert_login.failure_condition}: {cert_login.failure_text}"
    assert cert_login.bound_jid.split("/", 1)[0] == ALICE_JID


def test_legacy_record_upgraded_on_next_write(prosody_factory, make_cert):
    old_cert = make_cert("old-laptop")
    new_cert = make_cert("new-phone")
    server = prosody_factory()

    # Write the community module's record file before Prosody starts.
    record = write_legacy_record(server, ALICE, "old-laptop", old_cert)
    server.start()

    # Appending another certificate rewrites the account's records.
    appended = run_async(append_with_password(
        server.address, ALICE_JID, ALICE_PASSWORD, "new-phone", new_cert))
    assert appended.ok, appended.xml

    # The old record gained the SHA-256 fingerprint and kept its own fields.
    text = record.read_text()
    assert old_cert.sha256_hex in text
    assert old_cert.sha1_hex in text
    assert '["pem"]' in text
    assert new_cert.sha256_hex in text
