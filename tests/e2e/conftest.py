"""Fixtures for the end-to-end tests: certificates, a private Prosody, test accounts.

Run from the repository root with `/usr/bin/python3 -m pytest tests/e2e`.
PROSODY_BIN and PROSODYCTL_BIN select the Prosody binaries (defaults
/usr/bin/prosody and /usr/bin/prosodyctl). The module is loaded from
build/mod_client_certs/, which `make build` produces; the session runs
`make build` once when that folder has no mod_client_certs.lua.
CLIENT_CERTS_BUILD_DIR replaces build/ with another folder that contains
mod_client_certs/.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, List

import pytest

from certs import CertFiles, make_client_cert, make_server_cert
from harness import (ALICE, ALICE_JID, ALICE_PASSWORD, BASE_MODULES, BOB, BOB_PASSWORD,
                     HOST, ProsodyServer)

REPO_ROOT = Path(__file__).resolve().parents[2]
# CLIENT_CERTS_BUILD_DIR points the tests at a module built elsewhere; the
# session then never runs `make build`.
BUILD_DIR_OVERRIDE = os.environ.get("CLIENT_CERTS_BUILD_DIR")
BUILD_DIR = Path(BUILD_DIR_OVERRIDE) if BUILD_DIR_OVERRIDE else REPO_ROOT / "build"
MODULE_FILE = BUILD_DIR / "mod_client_certs" / "mod_client_certs.lua"
BUILD_TIMEOUT = 1800


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach each test's Prosody log tail to its report when the test fails."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in getattr(item, "prosody_servers", []):
            report.sections.append((f"Prosody {server.folder}", server.diagnostics()))


@pytest.fixture(scope="session")
def module_build() -> Path:
    """Return build/, running `make build` first when the module is missing."""
    if not MODULE_FILE.exists():
        if BUILD_DIR_OVERRIDE:
            pytest.fail(f"CLIENT_CERTS_BUILD_DIR is set but {MODULE_FILE} does not exist",
                        pytrace=False)
        if not (REPO_ROOT / "Makefile").exists():
            pytest.fail(f"{MODULE_FILE} is missing and there is no Makefile to build it; "
                        "run `make build` in the repository root first", pytrace=False)
        try:
            result = subprocess.run(["make", "build"], cwd=REPO_ROOT, capture_output=True,
                                    text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`make build` timed out after {BUILD_TIMEOUT} s", pytrace=False)
        if result.returncode != 0:
            pytest.fail(f"`make build` failed with exit code {result.returncode}:\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
        if not MODULE_FILE.exists():
            pytest.fail(f"`make build` succeeded but did not produce {MODULE_FILE}",
                        pytrace=False)
    return BUILD_DIR


@pytest.fixture(scope="session")
def server_cert(tmp_path_factory) -> CertFiles:
    return make_server_cert(tmp_path_factory.mktemp("server-cert"), HOST)


@pytest.fixture
def make_cert(tmp_path) -> Callable[..., CertFiles]:
    """Return make_client_cert bound to this test's folder.

    Without xmpp_addrs the certificate names alice@localhost, the account
    most tests log in to; pass xmpp_addrs=() for a certificate without any.
    """
    folder = tmp_path / "client-certs"

    def make(name: str, xmpp_addrs=(ALICE_JID,), **options) -> CertFiles:
        return make_client_cert(folder, name, xmpp_addrs=xmpp_addrs, **options)

    return make


@pytest.fixture
def prosody_factory(request, tmp_path, module_build, server_cert) -> Callable[..., ProsodyServer]:
    """Return a function that creates a Prosody with mod_client_certs, not yet started.

    Each server gets alice and bob registered. Every server created is
    stopped at teardown, and its log is added to the report of a failed test.
    Teardown fails the test when a server logged a line at level error.
    """
    servers: List[ProsodyServer] = []
    request.node.prosody_servers = servers

    def create(storage: str = "internal", extra_options=None,
               extra_modules=()) -> ProsodyServer:
        server = ProsodyServer(
            folder=tmp_path / f"prosody-{len(servers)}",
            server_cert=server_cert.cert_path,
            server_key=server_cert.key_path,
            plugin_paths=[module_build],
            modules=[*BASE_MODULES, "client_certs", *extra_modules],
            storage=storage,
            # A copy, so that a test changing server.extra_options cannot
            # change a dict that other tests share.
            extra_options=dict(extra_options or {}),
        )
        servers.append(server)
        server.register(ALICE, ALICE_PASSWORD)
        server.register(BOB, BOB_PASSWORD)
        return server

    yield create

    for server in servers:
        server.stop()

    # An error-level log line, such as a Lua traceback in a hook, fails the
    # test even when the client saw the expected replies.
    logged_errors = [line for server in servers for line in server.log_errors()]
    if logged_errors:
        pytest.fail("Prosody logged errors:\n" + "\n".join(logged_errors), pytrace=False)


@pytest.fixture
def prosody(prosody_factory) -> ProsodyServer:
    """A running Prosody with internal storage, mod_client_certs, alice and bob."""
    server = prosody_factory()
    server.start()
    return server

