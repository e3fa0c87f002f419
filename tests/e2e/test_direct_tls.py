"""A certificate login on a direct TLS port (XEP-0368) works as with STARTTLS."""

from clients import RawClient, append_with_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, LISTEN_ADDRESS, pick_free_port

# Direct TLS ports read c2s_direct_tls_ssl, not c2s_ssl.
CLIENT_CERT_TLS = {
    "verify": ["peer", "client_once"],
    "verifyext": ["lsec_continue", "lsec_ignore_purpose"],
}


def test_direct_tls_certificate_login(prosody_factory, make_cert):
    direct_port = pick_free_port()
    server = prosody_factory(extra_options={
        "c2s_direct_tls_ports": [direct_port],
        "c2s_direct_tls_ssl": CLIENT_CERT_TLS,
    })
    server.start()
    cert = make_cert("laptop")
    appended = run_async(append_with_password(server.address, ALICE_JID, ALICE_PASSWORD, "laptop", cert))
    assert appended.ok, appended.xml

    with RawClient((LISTEN_ADDRESS, direct_port)) as raw:
        # Present the certificate in the first handshake: EXTERNAL is offered.
        raw.direct_tls(cert)
        mechanisms = raw.mechanisms()
        assert "EXTERNAL" in mechanisms, mechanisms

        # The empty authzid logs in as alice.
        outcome = raw.auth_external("")
        assert outcome.kind == "success", outcome.xml
        jid = raw.bind("laptop")

    assert jid == f"{ALICE_JID}/laptop"


def test_direct_tls_without_certificate_no_external(prosody_factory):
    direct_port = pick_free_port()
    server = prosody_factory(extra_options={
        "c2s_direct_tls_ports": [direct_port],
        "c2s_direct_tls_ssl": CLIENT_CERT_TLS,
    })
    server.start()

    with RawClient((LISTEN_ADDRESS, direct_port)) as raw:
        # Without a certificate only the password mechanisms are offered.
        raw.direct_tls()
        mechanisms = raw.mechanisms()

    assert "EXTERNAL" not in mechanisms, mechanisms
    assert "PLAIN" in mechanisms, mechanisms
