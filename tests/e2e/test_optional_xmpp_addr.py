"""Register and log in with certificates without id-on-xmppAddr when the option allows it.

The default, which rejects such certificates at append, is tested in
test_append_checks.py.
"""

import pytest

from clients import RawClient, append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID

OPTIONAL = {"client_certs_require_xmpp_addr": False}

AUTHZIDS = {
    # slixmpp sends "=" when no authzid credential is set, so the module
    # finds the account through the fingerprint index.
    "empty": None,
    "bare-jid": ALICE_JID,
}


@pytest.fixture
def optional_server(prosody_factory):
    server = prosody_factory(extra_options=OPTIONAL)
    server.start()
    return server


@pytest.mark.parametrize("authzid_case", list(AUTHZIDS))
def test_no_xmpp_addr_cert_logs_in(optional_server, make_cert, authzid_case):
    cert = make_cert("anonymous-device", xmpp_addrs=())

    async def scenario():
        password_login = await login_password(optional_server.address, ALICE_JID, ALICE_PASSWORD)
        assert password_login.success, password_login.failure_condition
        try:
            appended = await password_login.session.add_cert("device", cert.b64)
            items = await password_login.session.get_certs()
        finally:
            await password_login.session.close()

        result = await login_cert(optional_server.address, f"{ALICE_JID}/cert", cert,
                                  authzid=AUTHZIDS[authzid_case])
        if result.success:
            await result.session.close()
        return appended, items, result

    appended, items, result = run_async(scenario())

    assert appended.ok, appended.xml
    assert [item.name for item in items] == ["device"]
    assert "EXTERNAL" in result.offered_mechanisms
    assert result.success, f"{result.failure_condition}: {result.failure_text}"
    assert result.bound_jid.split("/", 1)[0] == ALICE_JID


def test_no_xmpp_addr_without_initial_response(optional_server, make_cert):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    appended = run_async(append_with_password(
        optional_server.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml

    with RawClient(optional_server.address) as raw:
        raw.starttls(cert)
        mechanisms = raw.mechanisms()
        outcome = raw.auth_external(authzid=None)
        jid = raw.bind("raw") if outcome.kind == "success" else None

    assert "EXTERNAL" in mechanisms
    assert outcome.kind == "success", outcome.xml
    assert jid == f"{ALICE_JID}/raw"


def test_no_xmpp_addr_other_authzid_rejected(optional_server, make_cert):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    appended = run_async(append_with_password(
        optional_server.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml

    # The certificate is registered on alice only, so bob's authzid fails.
    with RawClient(optional_server.address) as raw:
        raw.starttls(cert)
        outcome = raw.auth_external(BOB_JID)

    assert outcome.kind == "failure", outcome.xml
    assert outcome.condition == "not-authorized", outcome.xml


def test_optional_still_rejects_wrong_jid(optional_server, make_cert):
    # A certificate that names another account is not a certificate without
    # an id-on-xmppAddr.
    cert = make_cert("bobs-device", xmpp_addrs=(BOB_JID,))

    reply = run_async(append_with_password(
        optional_server.address, ALICE_JID, ALICE_PASSWORD, "device", cert))

    assert not reply.ok, reply.xml
    assert reply.condition == "not-acceptable", reply.xml
    assert reply.text and BOB_JID in reply.text, reply.xml


def test_option_turned_on_stops_such_logins(prosody_factory, make_cert):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(extra_options=OPTIONAL)
    server.start()

    # Register a certificate without an xmppAddr while the option allows it.
    appended = run_async(append_with_password(server.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml

    # Restart with the default, which requires an xmppAddr.
    server.stop()
    server.extra_options = {}
    server.start()

    with RawClient(server.address) as raw:
        raw.starttls(cert)
        mechanisms = raw.mechanisms()
        # An authzid does not help either.
        outcome = raw.auth_external(ALICE_JID)

    assert "EXTERNAL" not in mechanisms, mechanisms
    assert outcome.kind == "failure", outcome.xml
    assert outcome.condition == "not-authorized", outcome.xml
