"""Keep registered certificates across a Prosody restart."""

import pytest

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD


@pytest.mark.parametrize("storage", ["internal", "sql"])
def test_restart_keeps_certs(prosody_factory, make_cert, storage):
    laptop = make_cert("laptop", key_type="ec")
    phone = make_cert("phone", key_type="ed25519")
    server = prosody_factory(storage=storage)
    server.start()

    # Register two certificates.
    for name, cert in (("laptop", laptop), ("phone", phone)):
        appended = run_async(append_with_password(
            server.address, ALICE_JID, ALICE_PASSWORD, name, cert))
        assert appended.ok, appended.xml

    # Restart with the same data folder.
    server.restart()

    async def scenario():
        # List the certificates after the restart.
        password_login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        try:
            items = await password_login.session.get_certs()
        finally:
            await password_login.session.close()

        # Log in with one of them.
        cert_login = await login_cert(server.address, ALICE_JID, phone)
        if cert_login.success:
            await cert_login.session.close()
        return items, cert_login

    items, cert_login = run_async(scenario())

    by_name = {item.name: item.x509cert for item in items}
    assert by_name == {"laptop": laptop.b64, "phone": phone.b64}
    assert cert_login.success, f"{cert_login.failure_condition}: {cert_login.failure_text}"
    assert cert_login.bound_jid.split("/", 1)[0] == ALICE_JID
