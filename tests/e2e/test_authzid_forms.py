"""Accept the authzid forms of XEP-0178 and reject foreign, malformed or badly encoded ones."""

import pytest

from clients import RawClient, append_with_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

ACCEPTED = {
    "empty": "",
    "bare-jid": ALICE_JID,
    "full-jid": f"{ALICE_JID}/laptop",
}

REJECTED = {
    "other-host": "alice@example.org",
    "malformed": "@@",
}


@pytest.fixture
def registered_cert(prosody, make_cert):
    """Alice's certificate "device", registered from a password session."""
    cert = make_cert("device")
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml
    return cert


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_authzid_accepted(prosody, registered_cert, case):
    with RawClient(prosody.address) as raw:
        # Present the certificate and check that EXTERNAL is offered.
        raw.starttls(registered_cert)
        assert "EXTERNAL" in raw.mechanisms()

        # Authenticate with the authzid as the initial response ("" sends "=").
        outcome = raw.auth_external(ACCEPTED[case])
        assert outcome.kind == "success", outcome.xml

        # Binding yields alice's JID.
        jid = raw.bind("raw")

    assert jid == f"{ALICE_JID}/raw"


@pytest.mark.parametrize("case", list(REJECTED))
def test_authzid_rejected(prosody, registered_cert, case):
    with RawClient(prosody.address) as raw:
        raw.starttls(registered_cert)
        assert "EXTERNAL" in raw.mechanisms()

        # Ask for an identity that is not an account of this host.
        outcome = raw.auth_external(REJECTED[case])

    assert outcome.kind == "failure", outcome.xml
    assert outcome.condition == "invalid-authzid", outcome.xml


def test_bad_base64_incorrect_encoding(prosody, registered_cert):
    with RawClient(prosody.address) as raw:
        raw.starttls(registered_cert)
        assert "EXTERNAL" in raw.mechanisms()

        # Send an initial response that is not base64.
        outcome = raw.auth_text("EXTERNAL", "not*base64!")
        assert outcome.kind == "failure", outcome.xml
        assert outcome.condition == "incorrect-encoding", outcome.xml

        # A correct attempt on the same stream still succeeds.
        retry = raw.auth_external("")

    assert retry.kind == "success", retry.xml


@pytest.mark.parametrize("authzid, expected", [(ALICE_JID, "success"),
                                               ("alice@example.org", "failure")],
                         ids=["bare-jid", "other-host"])
def test_authzid_in_response(prosody, registered_cert, authzid, expected):
    with RawClient(prosody.address) as raw:
        raw.starttls(registered_cert)

        # <auth/> without initial response gets an empty challenge.
        challenge = raw.auth("EXTERNAL", None)
        assert challenge.kind == "challenge", challenge.xml
        assert challenge.data == b"", challenge.xml

        # The authzid goes in the response instead.
        outcome = raw.respond(authzid.encode("utf-8"))

    assert outcome.kind == expected, outcome.xml
    if expected == "failure":
        assert outcome.condition == "invalid-authzid", outcome.xml
