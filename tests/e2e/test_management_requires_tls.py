"""Reject certificate management on a stream without TLS."""

import xml.etree.ElementTree as ET

import pytest

from clients import RawClient, stanza_error_condition
from harness import ALICE, ALICE_PASSWORD

NS_SASLCERT = "urn:xmpp:saslcert:1"

# With its defaults the server requires TLS before any authentication, so
# a stream without TLS could never reach the module.
PLAINTEXT_AUTH = {"allow_unencrypted_plain_auth": True}

REQUESTS = {
    "items": ("get", f"<items xmlns='{NS_SASLCERT}'/>"),
    "append": ("set", f"<append xmlns='{NS_SASLCERT}'><name>device</name>"
                      "<x509cert>AAAA</x509cert></append>"),
    "disable": ("set", f"<disable xmlns='{NS_SASLCERT}'><name>device</name></disable>"),
    "revoke": ("set", f"<revoke xmlns='{NS_SASLCERT}'><name>device</name></revoke>"),
}


@pytest.mark.parametrize("case", list(REQUESTS))
def test_management_without_tls_forbidden(prosody_factory, case):
    server = prosody_factory(extra_options=PLAINTEXT_AUTH)
    server.require_encryption = False
    server.start()
    iq_type, payload = REQUESTS[case]

    with RawClient(server.address) as raw:
        # Authenticate with PLAIN on the unencrypted stream and bind.
        raw.open_stream()
        assert "PLAIN" in raw.mechanisms(), raw.mechanisms()
        outcome = raw.auth_plain(ALICE, ALICE_PASSWORD)
        assert outcome.kind == "success", outcome.xml
        raw.bind("plain")

        # Send the XEP-0257 request.
        raw.send(f"<iq type='{iq_type}' id='manage1'>{payload}</iq>")
        reply = raw.read_element()

    reply_xml = ET.tostring(reply, encoding="unicode")
    assert reply.get("type") == "error", reply_xml
    assert stanza_error_condition(reply_xml) == "forbidden", reply_xml
