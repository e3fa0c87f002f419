"""Log in with SASL EXTERNAL using a registered certificate."""

import pytest

from clients import RawClient, append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID

AUTHZIDS = {
    # slixmpp sends "=" when no authzid credential is set.
    "empty": None,
    "bare-jid": ALICE_JID,
}


@pytest.mark.parametrize("key_type", ["rsa", "ec", "ed25519"])
@pytest.mark.parametrize("authzid_case", list(AUTHZIDS))
def test_external_binds_account(prosody, make_cert, key_type, authzid_case):
    cert = make_cert(f"device-{key_type}", key_type=key_type)

    async def scenario():
        # Register the certificate from a password session.
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert)
        assert appended.ok, appended.xml

        # Log in again presenting the certificate, with EXTERNAL only.
        result = await login_cert(prosody.address, f"{ALICE_JID}/cert-login", cert,
                                  authzid=AUTHZIDS[authzid_case])
        if result.success:
            await result.session.close()
        return result

    result = run_async(scenario())

    assert "EXTERNAL" in result.offered_mechanisms
    assert result.success, f"{result.failure_condition}: {result.failure_text}"
    assert result.bound_jid.split("/", 1)[0] == ALICE_JID


def test_external_without_initial_response(prosody, make_cert):
    cert = make_cert("device")
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml

    with RawClient(prosody.address) as raw:
        # Present the certificate in STARTTLS.
        raw.starttls(cert)
        assert "EXTERNAL" in raw.mechanisms()

        # Send <auth mechanism='EXTERNAL'/> with no content. RFC 6120 section
        # 6.4.2 then has the server send an empty challenge, and the client
        # replies with an empty response.
        outcome = raw.auth_external(authzid=None)
        assert outcome.kind == "success", outcome.xml

        # The stream restarts and binding yields alice's JID.
        jid = raw.bind("raw")

    assert jid == f"{ALICE_JID}/raw"


def test_items_lists_resource_of_cert_session(prosody, make_cert):
    cert = make_cert("device")

    async def scenario():
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert)
        assert appended.ok, appended.xml

        # Keep a session logged in with the certificate on resource "tablet".
        cert_login = await login_cert(prosody.address, f"{ALICE_JID}/tablet", cert)
        assert cert_login.success, f"{cert_login.failure_condition}: {cert_login.failure_text}"

        # List the certificates from a password session.
        password_login = await login_password(prosody.address, f"{ALICE_JID}/admin",
                                              ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        try:
            items = await password_login.session.get_certs()
        finally:
            await password_login.session.close()
            await cert_login.session.close()
        return cert_login.bound_jid, items

    bound_jid, items = run_async(scenario())

    resource = bound_jid.split("/", 1)[1]
    assert [item.name for item in items] == ["device"]
    assert items[0].users == {resource}


def test_external_other_authzid_rejected(prosody, make_cert):
    cert = make_cert("device")

    async def scenario():
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert)
        assert appended.ok, appended.xml

        # Present alice's certificate but ask to be bob.
        return await login_cert(prosody.address, BOB_JID, cert, authzid=BOB_JID)

    result = run_async(scenario())

    assert not result.success
    assert result.failure_condition == "not-authorized", result
