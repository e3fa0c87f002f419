"""Compare the JIDs in certificates and authzids after stringprep."""

import pytest

from clients import RawClient, append_with_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

AUTHZIDS = {
    "empty": "",
    "uppercase-node": "ALICE@localhost",
}


@pytest.mark.parametrize("case", list(AUTHZIDS))
def test_uppercase_xmpp_addr_logs_in(prosody, make_cert, case):
    cert = make_cert("device", xmpp_addrs=("Alice@LOCALHOST",))

    # Alice registers a certificate whose xmppAddr differs from her JID in case only.
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml

    with RawClient(prosody.address) as raw:
        # Present it and log in with EXTERNAL.
        raw.starttls(cert)
        assert "EXTERNAL" in raw.mechanisms()
        outcome = raw.auth_external(AUTHZIDS[case])
        assert outcome.kind == "success", outcome.xml

        # The session is bound to the prepped JID.
        jid = raw.bind("raw")

    assert jid == f"{ALICE_JID}/raw"
