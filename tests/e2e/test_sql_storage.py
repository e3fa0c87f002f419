"""Append, list and log in with certificates stored through mod_storage_sql on SQLite."""

import sqlite3

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE, ALICE_JID, ALICE_PASSWORD, HOST


def test_sql_append_list_login(prosody_factory, make_cert):
    cert = make_cert("laptop")
    server = prosody_factory(storage="sql")
    server.start()

    async def scenario():
        # Append the certificate from a password session.
        appended = await append_with_password(
            server.address, ALICE_JID, ALICE_PASSWORD, "laptop", cert)

        # List it from a new session.
        password_login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        try:
            items = await password_login.session.get_certs()
        finally:
            await password_login.session.close()

        # Log in with it.
        cert_login = await login_cert(server.address, ALICE_JID, cert)
        if cert_login.success:
            await cert_login.session.close()
        return appended, items, cert_login

    appended, items, cert_login = run_async(scenario())

    assert appended.ok, appended.xml
    assert [item.name for item in items] == ["laptop"]
    assert items[0].x509cert == cert.b64
    assert cert_login.success, f"{cert_login.failure_condition}: {cert_login.failure_text}"
    assert cert_login.bound_jid.split("/", 1)[0] == ALICE_JID

    # The record lives in Prosody's SQL table, not in an internal store file.
    database = sqlite3.connect(server.data_path / "prosody.sqlite")
    try:
        rows = database.execute(
            "SELECT key FROM prosody WHERE host = ? AND user = ? AND store = ?",
            (HOST, ALICE, "client_certs")).fetchall()
    finally:
        database.close()
    assert ("laptop",) in rows
    assert not (server.data_path / HOST / "client_certs").exists()
