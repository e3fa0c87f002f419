"""Append a certificate, list it, and reject a second one under the same name."""

from clients import login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD

NS_SASLCERT = "urn:xmpp:saslcert:1"


def test_host_advertises_saslcert(prosody):
    async def scenario():
        # Log in with a password and ask the host for its disco#info features.
        result = await login_password(prosody.address, ALICE_JID, ALICE_PASSWORD)
        assert result.success, result.failure_condition
        try:
            features = await result.session.disco_features()
        finally:
            await result.session.close()
        return features

    features = run_async(scenario())

    # The host lists the XEP-0257 namespace.
    assert NS_SASLCERT in features


def test_append_then_items_lists_it(prosody, make_cert):
    cert = make_cert("laptop")

    async def scenario():
        result = await login_password(prosody.address, ALICE_JID, ALICE_PASSWORD)
        assert result.success, result.failure_condition
        session = result.session
        try:
            # Nothing is registered before the first append.
            before = await session.get_certs()

            # Append the certificate as base64 DER.
            appended = await session.add_cert("laptop", cert.b64)

            # List the certificates again.
            after = await session.get_certs()
        finally:
            await session.close()
        return before, appended, after

    before, appended, after = run_async(scenario())

    assert before == []
    assert appended.ok, appended.xml
    assert [item.name for item in after] == ["laptop"]
    assert after[0].x509cert == cert.b64


def test_duplicate_name_conflict_keeps_first(prosody, make_cert):
    first = make_cert("first")
    second = make_cert("second")

    async def scenario():
        result = await login_password(prosody.address, ALICE_JID, ALICE_PASSWORD)
        assert result.success, result.failure_condition
        session = result.session
        try:
            # Append the first certificate under the name "phone".
            first_reply = await session.add_cert("phone", first.b64)

            # Append a different certificate under the same name.
            second_reply = await session.add_cert("phone", second.b64)

            items = await session.get_certs()
        finally:
            await session.close()
        return first_reply, second_reply, items

    first_reply, second_reply, items = run_async(scenario())

    assert first_reply.ok, first_reply.xml
    assert not second_reply.ok, second_reply.xml
    assert second_reply.condition == "conflict", second_reply.xml
    # The stored certificate is still the first one.
    assert [item.name for item in items] == ["phone"]
    assert items[0].x509cert == first.b64
