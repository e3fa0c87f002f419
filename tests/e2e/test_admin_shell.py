"""Administrators manage certificates with prosodyctl shell client_certs.

Prosody 13 registers the commands as shell-command items and picks the host
from the JID argument; Prosody 0.12 has one shared shell environment, where
the module dispatches by the JID's host. Both must behave the same.
"""

import pytest

from clients import login_cert, run_async
from harness import ALICE_JID, ProsodyError

SHELL_MODULES = ("admin_shell", "admin_socket")


def shell(server, *args):
    """Run a client_certs shell command and return (succeeded, output)."""
    try:
        result = server.prosodyctl("shell", "client_certs", *args)
    except ProsodyError as error:
        return False, str(error)
    return True, result.stdout + result.stderr


async def login_and_close(address, cert):
    """Log in as alice with cert, close the session, and return the result."""
    result = await login_cert(address, ALICE_JID, cert)
    if result.success:
        await result.session.close()
    return result


@pytest.fixture
def shell_server(prosody_factory):
    server = prosody_factory(extra_modules=SHELL_MODULES)
    server.start()
    return server


def test_shell_add_list_disable(shell_server, make_cert):
    cert = make_cert("laptop")

    # Add the certificate file to alice's account.
    added, output = shell(shell_server, "add", ALICE_JID, "laptop", str(cert.cert_path))
    assert added, output
    assert cert.sha256_hex in output

    # The list shows its name and fingerprint.
    listed, output = shell(shell_server, "list", ALICE_JID)
    assert listed, output
    assert "laptop" in output
    assert cert.sha256_hex in output

    # The certificate logs in.
    login = run_async(login_and_close(shell_server.address, cert))
    assert login.success, login.failure_condition

    # Disable removes it from the list.
    disabled, output = shell(shell_server, "disable", ALICE_JID, "laptop")
    assert disabled, output
    listed, output = shell(shell_server, "list", ALICE_JID)
    assert listed, output
    assert "laptop" not in output


def test_shell_add_rejects_missing_account(shell_server, make_cert):
    cert = make_cert("ghost", xmpp_addrs=("ghost@localhost",))

    added, output = shell(shell_server, "add", "ghost@localhost", "laptop", str(cert.cert_path))

    assert not added
    assert "ghost@localhost does not exist" in output


def test_shell_missing_argument_prints_usage(shell_server):
    listed, output = shell(shell_server, "add", ALICE_JID)

    assert not listed
    assert "missing argument name" in output
    assert "usage: client_certs:add" in output


def test_shell_unknown_name_is_error(shell_server):
    revoked, output = shell(shell_server, "revoke", ALICE_JID, "nope")

    assert not revoked
    assert 'no certificate named "nope"' in output
