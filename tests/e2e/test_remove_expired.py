"""Delete expired certificates after client_certs_remove_expired_after seconds.

The module runs the deletion 1 s after it loads and then hourly. The records
are written into the internal store before Prosody starts, because append
rejects expired certificates.
"""

import datetime
import time

import pytest

from clients import RawClient, login_cert, login_password, run_async
from harness import (ALICE, ALICE_JID, ALICE_PASSWORD, BOB, BOB_JID, BOB_PASSWORD,
                     module_record, write_legacy_record, write_store_records)

GRACE_SECONDS = 3600
# The first run is due 1 s after load. The rest is room for a slow machine.
DELETION_TIMEOUT = 15.0
# How long a test without the option waits before it checks that nothing
# was deleted: well past the 1 s at which a deletion run would happen.
UNSET_WAIT = 3.0


@pytest.fixture
def expiry_certs(make_cert):
    """Certificates that expired two days ago, ten minutes ago, and one that is valid."""
    now = datetime.datetime.now(datetime.timezone.utc)
    long_ago = dict(not_before=now - datetime.timedelta(days=60),
                    not_after=now - datetime.timedelta(days=2))
    return {
        "long-expired": make_cert("long-expired", **long_ago),
        "recently-expired": make_cert(
            "recently-expired", not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(minutes=10)),
        "valid": make_cert("valid"),
        "legacy-expired": make_cert("legacy-expired", xmpp_addrs=(BOB_JID,), **long_ago),
    }


def write_records(server, certs):
    """Write alice's records in the module's format and bob's in the community module's."""
    write_store_records(server.data_path, ALICE, [
        module_record(name, certs[name]) for name in ("long-expired", "recently-expired", "valid")
    ])
    write_legacy_record(server, BOB, "legacy-expired", certs["legacy-expired"])


def list_names(address, jid, password):
    async def scenario():
        login = await login_password(address, jid, password)
        assert login.success, login.failure_condition
        try:
            items = await login.session.get_certs()
        finally:
            await login.session.close()
        return sorted(item.name for item in items)

    return run_async(scenario())


def offered_mechanisms(address, cert):
    with RawClient(address) as raw:
        raw.starttls(cert)
        return raw.mechanisms()


def deletion_lines(server):
    return [line for line in server.log_text().splitlines() if "Deleted certificate" in line]


def wait_for_deletions(server, count, timeout=DELETION_TIMEOUT):
    """Wait until the log has count deletion lines, and return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = deletion_lines(server)
        if len(lines) >= count:
            return lines
        time.sleep(0.2)
    return deletion_lines(server)


def test_expired_certs_deleted(prosody_factory, expiry_certs):
    server = prosody_factory(extra_options={"client_certs_remove_expired_after": GRACE_SECONDS})
    write_records(server, expiry_certs)
    server.start()

    lines = wait_for_deletions(server, 2)
    alice_names = list_names(server.address, ALICE_JID, ALICE_PASSWORD)
    bob_names = list_names(server.address, BOB_JID, BOB_PASSWORD)

    assert len(lines) == 2, server.log_tail()
    assert any('"long-expired" of alice@localhost' in line for line in lines), lines
    assert any('"legacy-expired" of bob@localhost' in line for line in lines), lines
    assert all(f"older than {GRACE_SECONDS} seconds" in line for line in lines), lines
    # A certificate that expired less than GRACE_SECONDS ago stays.
    assert alice_names == ["recently-expired", "valid"]
    assert bob_names == []


def test_expired_certs_kept_without_option(prosody_factory, expiry_certs):
    server = prosody_factory()
    write_records(server, expiry_certs)
    server.start()

    time.sleep(UNSET_WAIT)
    alice_names = list_names(server.address, ALICE_JID, ALICE_PASSWORD)
    bob_names = list_names(server.address, BOB_JID, BOB_PASSWORD)

    assert deletion_lines(server) == []
    assert alice_names == ["long-expired", "recently-expired", "valid"]
    assert bob_names == ["legacy-expired"]


@pytest.mark.parametrize("option", ["unset", "set"])
def test_expired_certs_never_log_in(prosody_factory, expiry_certs, option):
    options = {"client_certs_remove_expired_after": GRACE_SECONDS} if option == "set" else {}
    server = prosody_factory(extra_options=options)
    write_records(server, expiry_certs)
    server.start()

    for name in ("long-expired", "recently-expired", "legacy-expired"):
        assert "EXTERNAL" not in offered_mechanisms(server.address, expiry_certs[name]), name

    # The valid record written the same way logs in.
    async def scenario():
        result = await login_cert(server.address, ALICE_JID, expiry_certs["valid"])
        if result.success:
            await result.session.close()
        return result

    result = run_async(scenario())
    assert result.success, f"{result.failure_condition}: {result.failure_text}"
