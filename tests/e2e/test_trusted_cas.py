"""Accept only certificates that a CA in client_certs_trusted_cas issued directly."""

import datetime
from types import SimpleNamespace

import pytest

from certs import make_ca, make_issued_cert, with_tampered_signature, write_bundle
from clients import RawClient, append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

# The module decides every EXTERNAL attempt on a TLS stream, offered or
# not, and rejects a certificate it cannot accept with not-authorized.
EXTERNAL_REFUSALS = {"not-authorized"}
LOAD_FAILURE = "Error initializing module 'client_certs'"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Build the CAs, the bundle and one client certificate per case.

    The bundle contains the root, the intermediate the root issued, an expired
    CA, an issuer without basicConstraints cA and a CA whose keyUsage lacks
    keyCertSign. A second intermediate of the root and an unknown root stay
    out of it.
    """
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    root = make_ca(folder, "root-ca")
    intermediate = make_ca(folder, "intermediate-ca", issuer=root)
    unlisted_intermediate = make_ca(folder, "unlisted-intermediate-ca", issuer=root)
    unknown = make_ca(folder, "unknown-ca")
    expired = make_ca(folder, "expired-ca", not_before=now - 60 * day, not_after=now - day)
    not_ca = make_ca(folder, "not-a-ca", is_ca=False)
    no_cert_sign = make_ca(folder, "no-keycertsign-ca", key_cert_sign=False)
    bundle = write_bundle(folder / "bundle.pem",
                          [root, intermediate, expired, not_ca, no_cert_sign])

    def leaf(name, issuer, **options):
        return make_issued_cert(folder, name, issuer, xmpp_addrs=(ALICE_JID,), **options)

    by_root = leaf("by-root", root)
    leaves = {
        "root": by_root,
        "intermediate": leaf("by-intermediate", intermediate),
        "unlisted-intermediate": leaf("by-unlisted-intermediate", unlisted_intermediate),
        "tampered-signature": with_tampered_signature(by_root, folder, "tampered"),
        "unknown-ca": leaf("by-unknown", unknown),
        "expired-ca": leaf("by-expired", expired),
        "issuer-not-ca": leaf("by-not-a-ca", not_ca),
        "issuer-without-keycertsign": leaf("by-no-keycertsign", no_cert_sign),
    }
    return SimpleNamespace(folder=folder, bundle=bundle, leaves=leaves)


ACCEPTED = ["root", "intermediate"]
REJECTED = ["unlisted-intermediate", "tampered-signature", "unknown-ca", "expired-ca",
            "issuer-not-ca", "issuer-without-keycertsign"]


def append_and_list(address, name, cert):
    """Append cert as alice with her password and return the reply and the listed names."""
    async def scenario():
        login = await login_password(address, ALICE_JID, ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            reply = await login.session.add_cert(name, cert.b64)
            items = await login.session.get_certs()
        finally:
            await login.session.close()
        return reply, [item.name for item in items]

    return run_async(scenario())


@pytest.mark.parametrize("case", ACCEPTED)
def test_trusted_issuer_accepted(prosody_factory, pki, case):
    server = prosody_factory(extra_options={"client_certs_trusted_cas": str(pki.bundle)})
    server.start()
    cert = pki.leaves[case]

    reply, names = append_and_list(server.address, case, cert)
    assert reply.ok, reply.xml
    assert names == [case]

    # The certificate then logs in with EXTERNAL.
    async def scenario():
        result = await login_cert(server.address, ALICE_JID, cert)
        if result.success:
            await result.session.close()
        return result

    result = run_async(scenario())
    assert "EXTERNAL" in result.offered_mechanisms
    assert result.success, f"{result.failure_condition}: {result.failure_text}"
    assert result.bound_jid.split("/", 1)[0] == ALICE_JID


@pytest.mark.parametrize("case", REJECTED)
def test_untrusted_issuer_rejected(prosody_factory, pki, case):
    server = prosody_factory(extra_options={"client_certs_trusted_cas": str(pki.bundle)})
    server.start()

    reply, names = append_and_list(server.address, case, pki.leaves[case])

    assert not reply.ok, reply.xml
    assert reply.condition == "not-acceptable", reply.xml
    assert reply.text, reply.xml
    assert names == []


def test_bundle_without_issuer_blocks_login(prosody_factory, make_cert, pki):
    # Register a self-signed certificate while no trusted CAs are configured.
    cert = make_cert("self-signed")
    server = prosody_factory()
    server.start()
    appended = run_async(append_with_password(
        server.address, ALICE_JID, ALICE_PASSWORD, "self-signed", cert))
    assert appended.ok, appended.xml

    # Restart with a bundle that does not contain its issuer.
    server.stop()
    server.extra_options["client_certs_trusted_cas"] = str(pki.bundle)
    server.start()

    with RawClient(server.address) as raw:
        raw.starttls(cert)
        mechanisms = raw.mechanisms()
        external = raw.auth_external("")

    assert "EXTERNAL" not in mechanisms
    assert external.kind == "failure", external.xml
    assert external.condition in EXTERNAL_REFUSALS, external.xml

    # The record stays, and it logs in again once the option is removed.
    server.stop()
    del server.extra_options["client_certs_trusted_cas"]
    server.start()

    async def scenario():
        result = await login_cert(server.address, ALICE_JID, cert)
        if result.success:
            await result.session.close()
        return result

    result = run_async(scenario())
    assert result.success, f"{result.failure_condition}: {result.failure_text}"


BAD_BUNDLES = {
    "missing": None,
    "garbage": b"this is not a PEM bundle\n",
    "bad-base64": b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    "no-certificate": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
}


@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_unusable_bundle_fails_load(prosody_factory, tmp_path, case):
    bundle = tmp_path / f"{case}.pem"
    if BAD_BUNDLES[case] is not None:
        bundle.write_bytes(BAD_BUNDLES[case])
    server = prosody_factory(extra_options={"client_certs_trusted_cas": str(bundle)})
    server.allowed_log_errors = (LOAD_FAILURE,)
    server.start()

    # Prosody keeps running without the module, which logs why it failed.
    async def scenario():
        login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            return await login.session.disco_features()
        finally:
            await login.session.close()

    features = run_async(scenario())
    load_errors = [line for line in server.log_text().splitlines() if LOAD_FAILURE in line]

    assert "urn:xmpp:saslcert:1" not in features
    assert len(load_errors) == 1, server.log_tail()
    assert str(bundle) in load_errors[0]
    assert "client_certs_trusted_cas" in load_errors[0]
