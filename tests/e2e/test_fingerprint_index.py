"""Rebuild the fingerprint index from storage, and log in when it cannot be opened.

Only certificates without id-on-xmppAddr need the index to find their
account, so these tests register such a certificate
(client_certs_require_xmpp_addr = false) and log in with the empty authzid.
"""

import sqlite3

import pytest

from clients import RawClient, append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD, BOB_JID, BOB_PASSWORD

OPTIONAL = {"client_certs_require_xmpp_addr": False}
INDEX_NAME = "client_certs.sqlite"
SIDE_FILES = ("-wal", "-shm")
REBUILT = "Rebuilt the fingerprint index of localhost from storage: 1 certificates in"
RECREATED = "was corrupt or of another version and was recreated"
OPEN_FAILED = "Cannot open the fingerprint index"


def register_and_stop(server, cert):
    """Start server, register cert on alice, and stop the server."""
    server.start()
    appended = run_async(append_with_password(
        server.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    assert appended.ok, appended.xml
    server.stop()


def restart_and_read_log(server):
    """Start server again and return the log text written by this start."""
    before = len(server.log_text())
    server.start()
    return server.log_text()[before:]


def login_without_authzid(server, cert):
    """Log in with EXTERNAL and the empty authzid, and return the LoginResult."""
    async def scenario():
        result = await login_cert(server.address, f"{ALICE_JID}/cert", cert)
        if result.success:
            await result.session.close()
        return result

    return run_async(scenario())


def delete_index(index):
    index.unlink()


def delete_index_and_side_files(index):
    index.unlink()
    for suffix in SIDE_FILES:
        index.with_name(index.name + suffix).unlink(missing_ok=True)


def overwrite_with_garbage(index):
    # The index uses a rollback journal, so every committed page is in the
    # main file and damaging that file alone must be noticed.
    index.write_bytes(b"not an SQLite database\n" * 200)


def set_other_schema_version(index):
    with sqlite3.connect(index) as connection:
        connection.execute("PRAGMA user_version = 99")
    connection.close()


# How each case damages the index while Prosody is stopped, and whether
# Prosody logs that it recreated the file.
DAMAGE = {
    # What an administrator does with `rm client_certs.sqlite`; side files
    # from a version that used WAL may stay.
    "deleted": (delete_index, False),
    "deleted-with-side-files": (delete_index_and_side_files, False),
    "garbage": (overwrite_with_garbage, True),
    "other-schema-version": (set_other_schema_version, True),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_index_rebuilt_from_storage(prosody_factory, make_cert, case):
    damage, recreated = DAMAGE[case]
    cert = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(extra_options=OPTIONAL)
    index = server.data_path / INDEX_NAME
    register_and_stop(server, cert)
    assert index.exists()

    damage(index)
    log = restart_and_read_log(server)
    result = login_without_authzid(server, cert)

    assert OPEN_FAILED not in log
    assert REBUILT in log
    assert (RECREATED in log) == recreated
    assert result.success, f"{result.failure_condition}: {result.failure_text}"
    assert result.bound_jid.split("/", 1)[0] == ALICE_JID


def test_index_kept_across_restart(prosody_factory, make_cert):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(extra_options=OPTIONAL)
    register_and_stop(server, cert)

    log = restart_and_read_log(server)
    result = login_without_authzid(server, cert)

    # An intact index is used as it is.
    assert "Rebuilt the fingerprint index" not in log
    assert result.success, f"{result.failure_condition}: {result.failure_text}"


@pytest.mark.parametrize("setting", ["absolute", "relative"])
def test_custom_index_path(prosody_factory, make_cert, tmp_path, setting):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(extra_options=OPTIONAL)
    if setting == "absolute":
        index = tmp_path / "elsewhere" / "certs-index.sqlite"
        index.parent.mkdir()
        server.extra_options["client_certs_index_path"] = str(index)
    else:
        # A relative path is resolved against data_path.
        index = server.data_path / "certs-index.sqlite"
        server.extra_options["client_certs_index_path"] = "certs-index.sqlite"

    register_and_stop(server, cert)
    index.unlink()
    log = restart_and_read_log(server)
    result = login_without_authzid(server, cert)

    assert index.exists()
    assert not (server.data_path / INDEX_NAME).exists()
    assert REBUILT in log
    assert result.success, f"{result.failure_condition}: {result.failure_text}"


def unusable_index_path(server, case):
    """Return an index path that SQLite cannot open, for the given case.

    Tests run as root, where a read-only file mode does not stop writes, so
    the unusable paths are a folder and a file in a folder that is missing.
    """
    if case == "is-a-folder":
        folder = server.folder / "index-folder"
        folder.mkdir()
        return folder
    return server.folder / "missing-folder" / INDEX_NAME


@pytest.mark.parametrize("case", ["is-a-folder", "missing-folder"])
def test_unusable_index_path(prosody_factory, make_cert, case):
    with_addr = make_cert("named-device")
    without_addr = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(extra_options=OPTIONAL)
    server.extra_options["client_certs_index_path"] = str(unusable_index_path(server, case))
    server.allowed_log_errors = (OPEN_FAILED,)
    server.start()

    async def scenario():
        login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            named = await login.session.add_cert("named", with_addr.b64)
            anonymous = await login.session.add_cert("anonymous", without_addr.b64)
        finally:
            await login.session.close()
        named_login = await login_cert(server.address, ALICE_JID, with_addr)
        if named_login.success:
            await named_login.session.close()
        return named, anonymous, named_login

    named, anonymous, named_login = run_async(scenario())
    with RawClient(server.address) as raw:
        raw.starttls(without_addr)
        anonymous_mechanisms = raw.mechanisms()

    open_errors = [line for line in server.log_text().splitlines()
                   if OPEN_FAILED in line and "\terror\t" in line]
    assert open_errors, server.log_tail()
    assert named.ok, named.xml
    assert anonymous.ok, anonymous.xml
    # A certificate with an id-on-xmppAddr does not need the index.
    assert named_login.success, f"{named_login.failure_condition}: {named_login.failure_text}"
    # Without the index, the account of the other one cannot be found, as
    # the logged error states.
    assert "EXTERNAL" not in anonymous_mechanisms


def test_conflict_checked_without_index(prosody_factory, make_cert):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(extra_options=OPTIONAL)
    server.extra_options["client_certs_index_path"] = str(
        unusable_index_path(server, "missing-folder"))
    server.allowed_log_errors = (OPEN_FAILED,)
    server.start()

    first = run_async(append_with_password(
        server.address, ALICE_JID, ALICE_PASSWORD, "device", cert))
    second = run_async(append_with_password(
        server.address, BOB_JID, BOB_PASSWORD, "device", cert))

    assert first.ok, first.xml
    # The module cannot see alice's registration without the index, so it
    # must reject bob's append instead of registering the certificate twice.
    assert not second.ok, second.xml


def test_index_rebuilt_with_sql_storage(prosody_factory, make_cert):
    cert = make_cert("anonymous-device", xmpp_addrs=())
    server = prosody_factory(storage="sql", extra_options=OPTIONAL)
    index = server.data_path / INDEX_NAME
    register_and_stop(server, cert)

    # Delete the index: mod_storage_sql must list the accounts to rebuild it.
    delete_index(index)
    log = restart_and_read_log(server)
    result = login_without_authzid(server, cert)

    assert REBUILT in log
    assert result.success, f"{result.failure_condition}: {result.failure_text}"
