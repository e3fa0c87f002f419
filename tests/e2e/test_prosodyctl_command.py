"""Administrators manage certificates with prosodyctl mod_client_certs.

The command runs in its own process, with or without a running server, and
writes to the same storage and index as the server.
"""

import pytest

from clients import login_cert, run_async
from harness import ALICE_JID, ProsodyError


def prosodyctl_certs(server, *args):
    """Run prosodyctl mod_client_certs and return (succeeded, output)."""
    try:
        result = server.prosodyctl("mod_client_certs", *args)
    except ProsodyError as error:
        return False, str(error)
    return True, result.stdout + result.stderr


async def login_and_close(address, cert):
    result = await login_cert(address, ALICE_JID, cert)
    if result.success:
        await result.session.close()
    return result


@pytest.mark.parametrize("server_running", [False, True])
def test_added_certificate_logs_in(prosody_factory, make_cert, server_running):
    cert = make_cert("laptop")
    server = prosody_factory()
    if server_running:
        server.start()

    # Add the certificate file from the command line.
    added, output = prosodyctl_certs(server, "add", ALICE_JID, "laptop", str(cert.cert_path))
    assert added, output
    assert cert.sha256_hex in output

    # The server lets the certificate log in.
    if not server_running:
        server.start()
    result = run_async(login_and_close(server.address, cert))

    assert result.success, f"{result.failure_condition}: {result.failure_text}"


def test_list_and_disable(prosody_factory, make_cert):
    cert = make_cert("laptop")
    server = prosody_factory()
    added, output = prosodyctl_certs(server, "add", ALICE_JID, "laptop", str(cert.cert_path))
    assert added, output

    # The list shows the certificate; after disable it is gone.
    listed, before = prosodyctl_certs(server, "list", ALICE_JID)
    disabled, output = prosodyctl_certs(server, "disable", ALICE_JID, "laptop")
    listed_again, after = prosodyctl_certs(server, "list", ALICE_JID)

    assert listed, before
    assert cert.sha256_hex in before
    assert disabled, output
    assert listed_again, after
    assert cert.sha256_hex not in after


def test_usage_and_errors(prosody_factory):
    server = prosody_factory()

    missing, usage = prosodyctl_certs(server, "add", ALICE_JID)
    unknown_host, host_error = prosodyctl_certs(server, "list", "alice@elsewhere.test")
    unknown_name, name_error = prosodyctl_certs(server, "revoke", ALICE_JID, "nope")

    assert not missing
    assert "usage: prosodyctl mod_client_certs" in usage
    assert not unknown_host
    assert "not a user JID of a host in this configuration" in host_error
    assert not unknown_name
    assert 'no certificate named "nope"' in name_error
