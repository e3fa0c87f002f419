"""Enforce the size, name and count limits of append, and keep names exact."""

import pytest

from clients import login_password, run_async, stanza_error_condition
from harness import ALICE_JID, ALICE_PASSWORD

# client_certs_max_size for the size test: an ECDSA P-256 certificate fits,
# an RSA-2048 one does not.
SMALL_MAX_SIZE = 600
MAX_PER_USER = 2
MAX_NAME_LENGTH = 1023


def append_all(address, appends):
    """Log in as alice with her password, append each (name, x509cert), and list.

    Returns the replies in order and the <items/> listed afterwards.
    """
    async def scenario():
        login = await login_password(address, ALICE_JID, ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            replies = [await login.session.add_cert(name, x509cert)
                       for name, x509cert in appends]
            items = await login.session.get_certs()
        finally:
            await login.session.close()
        return replies, items

    return run_async(scenario())


def test_append_rejects_oversized_der(prosody_factory, make_cert):
    server = prosody_factory(extra_options={"client_certs_max_size": SMALL_MAX_SIZE})
    server.start()
    large = make_cert("large", key_type="rsa")
    small = make_cert("small", key_type="ec")
    assert len(large.der) > SMALL_MAX_SIZE
    assert len(small.der) <= SMALL_MAX_SIZE

    # Append the RSA certificate, which is over the limit, then the small one.
    (too_large, fits), items = append_all(
        server.address, [("large", large.b64), ("small", small.b64)])

    assert not too_large.ok, too_large.xml
    assert stanza_error_condition(too_large.xml) == "policy-violation", too_large.xml
    assert too_large.text, too_large.xml
    assert fits.ok, fits.xml
    assert [item.name for item in items] == ["small"]


@pytest.mark.parametrize("name", ["", "n" * (MAX_NAME_LENGTH + 1)], ids=["empty", "1024-chars"])
def test_append_rejects_bad_name(prosody, make_cert, name):
    cert = make_cert("device")

    # Append with a name that is empty or one character over the limit.
    (reply,), items = append_all(prosody.address, [(name, cert.b64)])

    assert not reply.ok, reply.xml
    assert reply.condition == "bad-request", reply.xml
    assert reply.text, reply.xml
    assert items == []


# The multi-byte case shows that the limit counts characters, not bytes.
@pytest.mark.parametrize("character", ["n", "é"], ids=["ascii", "two-byte-utf8"])
def test_append_accepts_longest_name(prosody, make_cert, character):
    cert = make_cert("device")
    name = character * MAX_NAME_LENGTH

    (reply,), items = append_all(prosody.address, [(name, cert.b64)])

    assert reply.ok, reply.xml
    assert [item.name for item in items] == [name]


def test_append_rejects_over_max_per_user(prosody_factory, make_cert):
    server = prosody_factory(extra_options={"client_certs_max_per_user": MAX_PER_USER})
    server.start()
    certs = [make_cert(f"device{number}") for number in range(MAX_PER_USER + 1)]

    # Append one certificate more than the limit allows.
    replies, items = append_all(server.address, [(cert.name, cert.b64) for cert in certs])

    for reply in replies[:MAX_PER_USER]:
        assert reply.ok, reply.xml
    over = replies[MAX_PER_USER]
    assert not over.ok, over.xml
    assert stanza_error_condition(over.xml) == "policy-violation", over.xml
    assert over.text, over.xml
    assert sorted(item.name for item in items) == [cert.name for cert in certs[:MAX_PER_USER]]


NAMES = {
    "xml-special": "<tag> & 'single' \"double\"",
    "cyrillic-emoji": "Ноутбук 💻",
}


@pytest.mark.parametrize("case", list(NAMES))
def test_name_round_trips_exactly(prosody, make_cert, case):
    cert = make_cert("device")
    name = NAMES[case]

    # Append under the name, list, then disable by the listed name.
    async def scenario():
        login = await login_password(prosody.address, ALICE_JID, ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            appended = await login.session.add_cert(name, cert.b64)
            items = await login.session.get_certs()
            disabled = await login.session.disable_cert(items[0].name) if items else None
            after = await login.session.get_certs()
        finally:
            await login.session.close()
        return appended, items, disabled, after

    appended, items, disabled, after = run_async(scenario())

    assert appended.ok, appended.xml
    assert [item.name for item in items] == [name]
    assert items[0].x509cert == cert.b64
    assert disabled is not None and disabled.ok, disabled
    assert after == []
