"""Reject EXTERNAL for a certificate that is not registered, and keep password login working."""

from clients import RawClient, append_with_password, login_cert, login_password, run_async
from harness import ALICE, ALICE_JID, ALICE_PASSWORD

# The module decides every EXTERNAL attempt on a TLS stream, offered or
# not, and rejects a certificate it cannot accept with not-authorized.
EXTERNAL_REFUSALS = {"not-authorized"}


def test_unregistered_cert_gets_no_external(prosody, make_cert):
    registered = make_cert("registered")
    stranger = make_cert("stranger")

    # Alice registers one certificate, so the module has a record for her
    # that the other certificate must not match.
    appended = run_async(append_with_password(
        prosody.address, ALICE_JID, ALICE_PASSWORD, "registered", registered))
    assert appended.ok, appended.xml

    with RawClient(prosody.address) as raw:
        # Present the unregistered certificate, which also names alice.
        raw.starttls(stranger)
        mechanisms = raw.mechanisms()

        # Try EXTERNAL anyway, with an empty authzid.
        external = raw.auth_external("")

        # A password login on the same stream still succeeds.
        plain = raw.auth_plain(ALICE, ALICE_PASSWORD)
        jid = raw.bind("after-external")

    assert "EXTERNAL" not in mechanisms
    assert "PLAIN" in mechanisms
    assert external.kind == "failure", external.xml
    assert external.condition in EXTERNAL_REFUSALS, external.xml
    assert plain.kind == "success", plain.xml
    assert jid == f"{ALICE_JID}/after-external"


def test_slixmpp_unregistered_cert_login(prosody, make_cert):
    stranger = make_cert("stranger")

    async def scenario():
        # Try EXTERNAL only, presenting an unregistered certificate.
        refused = await login_cert(prosody.address, ALICE_JID, stranger)

        # Log in with the password while presenting the same certificate.
        accepted = await login_password(prosody.address, ALICE_JID, ALICE_PASSWORD,
                                        cert=stranger)
        if accepted.success:
            await accepted.session.close()
        return refused, accepted

    refused, accepted = run_async(scenario())

    assert not refused.success
    # "no-mechanism" means slixmpp found no EXTERNAL to try.
    assert refused.failure_condition in EXTERNAL_REFUSALS | {"no-mechanism"}, refused
    assert accepted.success, f"{accepted.failure_condition}: {accepted.failure_text}"
    assert accepted.bound_jid.split("/", 1)[0] == ALICE_JID
