"""Measure how long mod_client_certs takes to rebuild its fingerprint index at startup.

Run from the repository root after `make build`:

    /usr/bin/python3 bench/index_rebuild.py [N] [--users U]

The script generates N distinct self-signed Ed25519 certificates (one key,
different serial numbers and subjects). It writes them as records in the
module's format into the internal storage of a new data folder, spread
evenly over U accounts (default N / 10). Then it starts a private Prosody on
127.0.0.1 with the end-to-end test harness. A fresh data folder has no index, so the
module rebuilds it from storage at load. The script prints:

- the time and count from the module's log line "Rebuilt the fingerprint
  index ... in X s", the wall-clock time of the rebuild alone;
- the wall-clock time from launching Prosody until its c2s port accepts
  connections, and until it replies to a stream header with its features.
  The rebuild runs while the module loads, before Prosody serves any
  client, so the second time always includes it. The first includes it
  only when Prosody happened to load mod_c2s after mod_client_certs, as the
  load order of modules_enabled varies between runs;
- the same two times for a second start on the same data folder, whose
  index is intact so no rebuild runs. The difference between the two
  stream-open times estimates the rebuild's wall-clock cost.

PROSODY_BIN and PROSODYCTL_BIN select the Prosody binaries, as for the
end-to-end tests. Accounts are not created, because the rebuild reads the
certificate store of every user that has one.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from certs import make_server_cert, xmpp_addr_other_name  # noqa: E402
from clients import RawClient  # noqa: E402
from harness import (BASE_MODULES, HOST, ProsodyServer, prosody_bin,  # noqa: E402
                     write_store_records)

BUILD_DIR = REPO_ROOT / "build"
START_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0
REBUILT_LINE = re.compile(
    r"Rebuilt the fingerprint index of (\S+) from storage: (\d+) certificates in ([0-9.]+) s")


def generate_records(count: int, users: int):
    """Yield (username, record) for count certificates, round-robin over users accounts."""
    key = ed25519.Ed25519PrivateKey.generate()
    public_key = key.public_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=365)
    added = int(now.timestamp())
    for number in range(count):
        username = f"user{number % users}"
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"device-{number}")])
        san = x509.SubjectAlternativeName([xmpp_addr_other_name(f"{username}@{HOST}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(number + 1)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .sign(key, None)
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        yield username, {
            "name": f"device-{number}",
            "x509cert": base64.b64encode(der).decode("ascii"),
            "fingerprint": hashlib.sha256(der).hexdigest(),
            "no_cert_management": False,
            "not_before": int(not_before.timestamp()),
            "not_after": int(not_after.timestamp()),
            "added": added,
        }


def fill_storage(data_path: Path, count: int, users: int) -> None:
    """Generate the certificates and write one store file per account."""
    by_user = {}
    for username, record in generate_records(count, users):
        by_user.setdefault(username, []).append(record)
    for username, records in by_user.items():
        write_store_records(data_path, username, records)


def timed_start(server: ProsodyServer) -> tuple:
    """Start server and return (seconds to port open, seconds to stream features).

    The c2s port may open before mod_client_certs loads, but the module
    rebuilds the index while it loads, and Prosody serves no client before
    every module has loaded. So the stream features always arrive after the
    rebuild.
    """
    started = time.monotonic()
    server.start(timeout=START_TIMEOUT)
    port_open = time.monotonic() - started
    remaining = START_TIMEOUT - port_open
    with RawClient(server.address, timeout=remaining) as client:
        client.open_stream()
    return port_open, time.monotonic() - started


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000,
                        help="number of certificates to store (default 100000)")
    parser.add_argument("--users", type=int, default=None,
                        help="number of accounts to spread them over (default count / 10)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder with config, data and log")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("count must be at least 1")
    if args.users is None:
        args.users = max(1, args.count // 10)
    if not 1 <= args.users <= args.count:
        parser.error("--users must be between 1 and count")
    return args


def main() -> int:
    args = parse_args()
    if not (BUILD_DIR / "mod_client_certs" / "mod_client_certs.lua").exists():
        print(f"{BUILD_DIR}/mod_client_certs is missing; run `make build` first", file=sys.stderr)
        return 1

    folder = Path(tempfile.mkdtemp(prefix="client-certs-bench-"))
    server_cert = make_server_cert(folder / "server-cert", HOST)
    # The same modules and debug log as the end-to-end tests.
    server = ProsodyServer(
        folder=folder / "prosody",
        server_cert=server_cert.cert_path,
        server_key=server_cert.key_path,
        plugin_paths=[BUILD_DIR],
        modules=[*BASE_MODULES, "client_certs"],
    )

    try:
        print(f"Prosody: {prosody_bin()}")
        print(f"Generating {args.count} certificates for {args.users} accounts...", flush=True)
        generation_started = time.monotonic()
        fill_storage(server.data_path, args.count, args.users)
        print(f"  generated and written in {time.monotonic() - generation_started:.1f} s")

        print("Starting Prosody with no index (rebuild at load)...", flush=True)
        port_with_rebuild, with_rebuild = timed_start(server)
        server.stop(timeout=STOP_TIMEOUT)
        match = REBUILT_LINE.search(server.log_text())
        if not match:
            print("The module logged no rebuild line; log tail:\n" + server.log_tail(),
                  file=sys.stderr)
            return 1
        with sqlite3.connect(server.data_path / "client_certs.sqlite") as connection:
            rows = connection.execute("SELECT COUNT(*) FROM certs").fetchone()[0]
        connection.close()

        print("Starting Prosody again with the index in place (no rebuild)...", flush=True)
        log_size = len(server.log_text())
        port_without_rebuild, without_rebuild = timed_start(server)
        server.stop(timeout=STOP_TIMEOUT)
        rebuilt_again = REBUILT_LINE.search(server.log_text()[log_size:])

        results = [
            ("certificates stored", f"{args.count} in {args.users} accounts"),
            ("certificates in the rebuild line", match.group(2)),
            ("rows in the index file", str(rows)),
            ("rebuild, as logged (wall clock)", f"{float(match.group(3)):.2f} s"),
            ("with rebuild, start to port open", f"{port_with_rebuild:.2f} s"),
            ("with rebuild, start to stream open", f"{with_rebuild:.2f} s"),
            ("index in place, start to port open", f"{port_without_rebuild:.2f} s"),
            ("index in place, start to stream open", f"{without_rebuild:.2f} s"
             + ("  (but the module rebuilt again)" if rebuilt_again else "")),
            ("difference (rebuild, wall clock)", f"{with_rebuild - without_rebuild:.2f} s"),
        ]
        print()
        for label, value in results:
            print(f"{label + ':':40} {value}")
        return 0
    finally:
        server.stop(timeout=STOP_TIMEOUT)
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
