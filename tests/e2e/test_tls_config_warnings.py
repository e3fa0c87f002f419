"""The module warns at load about TLS settings that block client certificates.

Without verify "peer", OpenSSL never requests a client certificate, and
Prosody 13 without verifyext lsec_continue ends the handshake of a
self-signed client certificate. Each warning names the option to fix.
"""

import re
import time

from harness import pick_free_port

PEER_WARNING = "has no verify = "
VERIFYEXT_WARNING = "has no verifyext = "


def is_prosody_13(server) -> bool:
    # Prosody logs its version once at startup.
    match = re.search(r"Prosody version (\d+)\.", server.log_text())
    assert match, "no version line in the Prosody log"
    return int(match.group(1)) >= 13


# The module logs this after its TLS checks. Prosody may open the c2s port
# before it loads mod_client_certs, so tests wait for this line.
LOADED_MARKER = "Rebuilt the fingerprint index"


def module_warnings(server, timeout: float = 10.0) -> list:
    """Wait until the module has loaded, then return its warning lines."""
    deadline = time.monotonic() + timeout
    while LOADED_MARKER not in server.log_text():
        assert time.monotonic() < deadline, f"mod_client_certs did not load within {timeout} s"
        time.sleep(0.05)
    return [line for line in server.log_text().splitlines()
            if ":client_certs\twarn\t" in line]


def test_complete_tls_config_logs_no_warning(prosody):
    # The harness config has both verify and verifyext.
    warnings = module_warnings(prosody)

    assert warnings == []


def test_missing_verify_peer_is_named(prosody_factory):
    # Start with a c2s_ssl that never requests a client certificate.
    server = prosody_factory(extra_options={"c2s_ssl": {"verify": "none"}})
    server.start()

    warnings = module_warnings(server)

    assert any("c2s_ssl " + PEER_WARNING in line for line in warnings), warnings


def test_missing_verifyext_warned_on_13_only(prosody_factory):
    # Start with verify set but without verifyext.
    server = prosody_factory(extra_options={"c2s_ssl": {"verify": ["peer", "client_once"]}})
    server.start()

    warnings = module_warnings(server)

    named = any("c2s_ssl " + VERIFYEXT_WARNING in line for line in warnings)
    if is_prosody_13(server):
        assert named, warnings
    else:
        # Prosody 0.12 sets these verifyext flags by default.
        assert not named, warnings


def test_direct_tls_settings_checked_when_ports_set(prosody_factory):
    # Listen on a direct TLS port whose c2s_direct_tls_ssl lacks verify.
    server = prosody_factory(extra_options={
        "c2s_direct_tls_ports": [pick_free_port()],
        "c2s_direct_tls_ssl": {"verify": "none"},
    })
    server.start()

    warnings = module_warnings(server)

    assert any("c2s_direct_tls_ssl " + PEER_WARNING in line for line in warnings), warnings
