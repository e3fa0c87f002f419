"""Fail EXTERNAL without a client certificate and keep the stream usable for a password."""

import pytest

from clients import RawClient
from harness import ALICE, ALICE_JID, ALICE_PASSWORD


@pytest.mark.parametrize("initial_response", ["", None], ids=["empty-response", "no-response"])
def test_external_without_cert_fails(prosody, initial_response):
    with RawClient(prosody.address) as raw:
        # Negotiate TLS without presenting a certificate.
        raw.starttls(None)
        assert "EXTERNAL" not in raw.mechanisms()

        # Try EXTERNAL anyway. auth_external replies to a challenge, if any,
        # with an empty response.
        outcome = raw.auth_external(initial_response)
        assert outcome.kind == "failure", outcome.xml
        assert outcome.condition, outcome.xml

        # Log in with the password on the same stream.
        password = raw.auth_plain(ALICE, ALICE_PASSWORD)
        assert password.kind == "success", password.xml
        jid = raw.bind("raw")

    # Teardown also fails the test when the server logged an error.
    assert jid == f"{ALICE_JID}/raw"
