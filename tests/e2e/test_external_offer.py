"""Offer EXTERNAL only for a registered certificate that is valid now, and keep every other mechanism."""

import datetime

import pytest

from clients import RawClient, append_with_password, run_async
from harness import ALICE, ALICE_JID, ALICE_PASSWORD, write_legacy_record

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)

# Validity windows that exclude now. Such certificates cannot be appended, so
# the tests write the stored record before the server starts.
OUT_OF_WINDOW = {
    "expired": dict(not_before=NOW - 30 * DAY, not_after=NOW - DAY),
    "not-yet-valid": dict(not_before=NOW + DAY, not_after=NOW + 30 * DAY),
}

# The SASL condition of an EXTERNAL attempt that is made anyway (RFC 6120
# section 6.5): an expired credential has its own condition.
EXPECTED_CONDITION = {
    "expired": "credentials-expired",
    "not-yet-valid": "not-authorized",
}


def offered_mechanisms(address, cert=None):
    """Return the SASL mechanisms offered after STARTTLS, presenting cert when given."""
    with RawClient(address) as raw:
        raw.starttls(cert)
        return raw.mechanisms()


@pytest.mark.parametrize("case", list(OUT_OF_WINDOW))
def test_out_of_window_cert_no_external(prosody_factory, make_cert, case):
    cert = make_cert(case, **OUT_OF_WINDOW[case])
    server = prosody_factory()
    # Store the certificate on alice's account before the server starts.
    write_legacy_record(server, ALICE, case, cert)
    server.start()

    with RawClient(server.address) as raw:
        # Present the certificate: EXTERNAL is not offered.
        raw.starttls(cert)
        mechanisms = raw.mechanisms()
        assert "EXTERNAL" not in mechanisms, mechanisms

        # Forcing EXTERNAL anyway fails with the condition of the cause.
        forced = raw.auth_external("")
        assert forced.kind == "failure", forced.xml
        expected = EXPECTED_CONDITION[case]
        assert forced.condition == expected, forced.xml

        # The password still works on the same stream.
        assert "PLAIN" in mechanisms, mechanisms
        outcome = raw.auth_plain(ALICE, ALICE_PASSWORD)
        assert outcome.kind == "success", outcome.xml
        jid = raw.bind("raw")

    assert jid == f"{ALICE_JID}/raw"


def test_external_added_to_other_mechanisms(prosody, make_cert):
    cert = make_cert("device")
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml

    # Compare the mechanisms offered without a certificate and with the registered one.
    without_cert = offered_mechanisms(prosody.address)
    with_cert = offered_mechanisms(prosody.address, cert)

    assert "EXTERNAL" not in without_cert, without_cert
    assert sorted(with_cert) == sorted([*without_cert, "EXTERNAL"])


def test_unregistered_cert_same_mechanisms(prosody, make_cert):
    cert = make_cert("stranger")

    # A certificate that no account registered changes nothing.
    without_cert = offered_mechanisms(prosody.address)
    with_cert = offered_mechanisms(prosody.address, cert)

    assert sorted(with_cert) == sorted(without_cert)
