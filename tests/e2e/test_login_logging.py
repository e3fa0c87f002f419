"""Log every certificate login and failure at info, and fire the authentication events.

Neither Prosody 0.12 nor 13 ships mod_limit_auth, so a small probe module
written by the test logs the authentication-success and
authentication-failure events that a rate limiter would see.
"""

from clients import RawClient, login_cert, run_async
from harness import (ALICE, ALICE_JID, BOB_JID, LISTEN_ADDRESS, ProsodyServer,
                     write_legacy_record)

CERT_NAME = "laptop"


def info_lines(server):
    return [line for line in server.log_text().splitlines() if "\tinfo\t" in line]


def test_login_and_failures_logged(prosody_factory, make_cert):
    cert = make_cert(CERT_NAME)
    server = prosody_factory()
    # Register the certificate through storage, so that no stanza carries it
    # and any copy of it in the log comes from a log call.
    write_legacy_record(server, ALICE, CERT_NAME, cert)
    server.start()

    async def scenario():
        # A successful login, then two failed ones from the same address.
        success = await login_cert(server.address, f"{ALICE_JID}/logged", cert)
        if success.success:
            await success.session.close()
        wrong_account = await login_cert(server.address, BOB_JID, cert, authzid=BOB_JID)
        other_host = await login_cert(server.address, ALICE_JID, cert,
                                      authzid="alice@example.org")
        return success, wrong_account, other_host

    success, wrong_account, other_host = run_async(scenario())

    assert success.success, f"{success.failure_condition}: {success.failure_text}"
    assert wrong_account.failure_condition == "not-authorized", wrong_account
    assert other_host.failure_condition == "invalid-authzid", other_host

    lines = info_lines(server)
    # The module writes fingerprints as lowercase hex.
    fingerprint_prefix = cert.sha256_hex[:8]

    # The login names the account, the certificate and the client address.
    logins = [line for line in lines
              if ALICE_JID in line and f'"{CERT_NAME}"' in line and LISTEN_ADDRESS in line]
    assert logins, "no info line for the certificate login:\n" + "\n".join(lines)

    # Each failure names the address, the certificate fingerprint and the requested identity.
    for requested in (BOB_JID, "alice@example.org"):
        failures = [line for line in lines
                    if requested in line and LISTEN_ADDRESS in line
                    and fingerprint_prefix in line]
        assert failures, f"no info line for the failure as {requested}:\n" + "\n".join(lines)


def test_log_has_no_cert_body(prosody_factory, make_cert):
    cert = make_cert(CERT_NAME)
    server = prosody_factory()
    write_legacy_record(server, ALICE, CERT_NAME, cert)
    server.start()

    async def scenario():
        # One login and one failure, the two paths that log about a certificate.
        success = await login_cert(server.address, f"{ALICE_JID}/logged", cert)
        if success.success:
            await success.session.close()
        failure = await login_cert(server.address, BOB_JID, cert, authzid=BOB_JID)
        return success, failure

    success, failure = run_async(scenario())
    assert success.success, f"{success.failure_condition}: {success.failure_text}"
    assert not failure.success, failure

    # No line of the PEM body and no base64 DER appears in the debug log.
    log = server.log_text()
    pem_lines = [line for line in cert.pem.splitlines() if line and not line.startswith("-----")]
    assert cert.b64 not in log
    for pem_line in pem_lines:
        assert pem_line not in log, f"PEM line {pem_line!r} found in {server.log_path}"


# Logs each authentication event at info with a fixed prefix. Priority -100
# runs it after the handlers of mod_client_certs and mod_saslauth.
PROBE_MODULE = """
module:hook("authentication-success", function (event)
	module:log("info", "probe authentication-success %s", tostring(event.session.username));
end, -100);
module:hook("authentication-failure", function (event)
	module:log("info", "probe authentication-failure %s", tostring(event.condition));
end, -100);
"""


def add_probe_module(server: ProsodyServer, folder) -> None:
    """Write mod_auth_events_probe.lua into folder and load it on server at its next start."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mod_auth_events_probe.lua").write_text(PROBE_MODULE)
    server.plugin_paths = [*server.plugin_paths, folder]
    server.modules = [*server.modules, "auth_events_probe"]


def probe_events(server) -> list:
    """Return the probe's lines as (event, detail) pairs, in log order."""
    events = []
    for line in info_lines(server):
        _, found, rest = line.partition("probe authentication-")
        if found:
            event, _, detail = rest.partition(" ")
            events.append((event, detail))
    return events


def test_auth_events_fired(prosody_factory, make_cert, tmp_path):
    cert = make_cert(CERT_NAME)
    server = prosody_factory()
    write_legacy_record(server, ALICE, CERT_NAME, cert)
    add_probe_module(server, tmp_path / "probe-module")
    server.start()

    # Two failed EXTERNAL attempts and one successful one, one connection each.
    outcomes = []
    for authzid in (BOB_JID, "alice@example.org", ""):
        with RawClient(server.address) as raw:
            raw.starttls(cert)
            outcomes.append(raw.auth_external(authzid))

    assert [outcome.kind for outcome in outcomes] == ["failure", "failure", "success"], outcomes
    assert probe_events(server) == [
        ("failure", "not-authorized"),
        ("failure", "invalid-authzid"),
        ("success", ALICE),
    ]
