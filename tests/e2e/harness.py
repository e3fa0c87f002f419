"""Run a private Prosody server for end-to-end tests.

The server listens on 127.0.0.1 only, on a c2s port picked at runtime, with
its own config, data folder, pidfile and debug log inside a folder the caller
owns. Nothing here touches the system Prosody configuration: every call to
prosody or prosodyctl passes `--config` with the generated file.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from cryptography import x509

from certs import CertFiles

HOST = "localhost"
ALICE = "alice"
ALICE_JID = f"{ALICE}@{HOST}"
ALICE_PASSWORD = "alice-password"
BOB = "bob"
BOB_JID = f"{BOB}@{HOST}"
BOB_PASSWORD = "bob-password"
LISTEN_ADDRESS = "127.0.0.1"
# Another service on this machine listens on 2024, so it is never handed out.
RESERVED_PORTS = {2024}

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
PROSODYCTL_TIMEOUT = 30.0

# stanza_debug writes every stanza in full to the debug log, which the
# failure report of a test includes.
BASE_MODULES = (
    "roster", "saslauth", "tls", "disco", "register", "ping", "posix", "stanza_debug",
)


class ProsodyError(RuntimeError):
    """Prosody or prosodyctl failed; the message includes the relevant output."""


def prosody_bin() -> str:
    return os.environ.get("PROSODY_BIN", "/usr/bin/prosody")


def prosodyctl_bin() -> str:
    return os.environ.get("PROSODYCTL_BIN", "/usr/bin/prosodyctl")


def pick_free_port() -> int:
    """Ask the kernel for an unused TCP port on 127.0.0.1.

    The port is free when this returns but not reserved, so another process
    could take it before Prosody binds it. start() then fails with the
    Prosody log in its message.
    """
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LISTEN_ADDRESS, 0))
            port = probe.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port
    raise ProsodyError("no free TCP port found on 127.0.0.1 after 20 attempts")


def lua_string(value: str) -> str:
    """Quote value as a Lua string literal."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\r", "\\r").replace("\0", "\\000"))
    return f'"{escaped}"'


def lua_value(value) -> str:
    """Render a Python bool, int, str, list or dict as a Lua expression."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(lua_value(item) for item in value) + " }"
    if isinstance(value, dict):
        entries = [f"[{lua_string(key)}] = {lua_value(item)}" for key, item in value.items()]
        return "{ " + "; ".join(entries) + " }"
    raise TypeError(f"cannot render {type(value).__name__} as Lua: {value!r}")


@dataclass
class ProsodyServer:
    """One Prosody process with its own folder.

    folder contains prosody.cfg.lua, data/ (data_path), prosody.log and
    prosody.pid. storage is "internal" or "sql" (SQLite in data/prosody.sqlite).
    """

    folder: Path
    server_cert: Path
    server_key: Path
    plugin_paths: Sequence[Path] = ()
    modules: Sequence[str] = BASE_MODULES
    storage: str = "internal"
    extra_options: dict = field(default_factory=dict)
    c2s_port: int = 0
    process: Optional[subprocess.Popen] = None
    # c2s_require_encryption. Set here and not in extra_options, because
    # Prosody fails to load a config that sets an option twice.
    require_encryption: bool = True
    # Substrings of error-level log lines that a test expects, such as a
    # module load failure; log_errors() leaves those lines out.
    allowed_log_errors: Sequence[str] = ()

    def __post_init__(self):
        if self.storage not in ("internal", "sql"):
            raise ValueError(f"storage must be 'internal' or 'sql', not {self.storage!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data_path.mkdir(exist_ok=True)
        if not self.c2s_port:
            self.c2s_port = pick_free_port()

    @property
    def config_path(self) -> Path:
        return self.folder / "prosody.cfg.lua"

    @property
    def data_path(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "prosody.log"

    @property
    def console_path(self) -> Path:
        return self.folder / "prosody.console"

    @property
    def pid_path(self) -> Path:
        return self.folder / "prosody.pid"

    @property
    def address(self) -> tuple:
        return (LISTEN_ADDRESS, self.c2s_port)

    def write_config(self) -> Path:
        """Write prosody.cfg.lua for the current settings and return its path."""
        ssl = {"certificate": str(self.server_cert), "key": str(self.server_key)}
        # "peer" makes OpenSSL request a client certificate and "client_once"
        # skips the request on renegotiation. Without "peer", clients never
        # send a certificate and EXTERNAL cannot be offered. The verifyext
        # flags let a self-signed client certificate through the handshake on
        # Prosody 13; Prosody 0.12 accepts and ignores them.
        c2s_ssl = {
            "verify": ["peer", "client_once"],
            "verifyext": ["lsec_continue", "lsec_ignore_purpose"],
        }

        lines = [
            "-- Generated by tests/e2e/harness.py for one test; safe to delete.",
            f"data_path = {lua_string(str(self.data_path))}",
            f"pidfile = {lua_string(str(self.pid_path))}",
            f"log = {{ debug = {lua_string(str(self.log_path))} }}",
            # Running the suite as root must not make Prosody switch to the
            # 'prosody' user, which cannot read the test folder.
            "run_as_root = true",
            f"interfaces = {{ {lua_string(LISTEN_ADDRESS)} }}",
            f"local_interfaces = {{ {lua_string(LISTEN_ADDRESS)} }}",
            f"c2s_ports = {{ {self.c2s_port} }}",
            "legacy_ssl_ports = {}",
            "s2s_ports = {}",
            "s2s_direct_tls_ports = {}",
            "component_ports = {}",
            "https_ports = {}",
            f"plugin_paths = {lua_value([str(path) for path in self.plugin_paths])}",
            f"modules_enabled = {lua_value(list(self.modules))}",
            'authentication = "internal_hashed"',
            f"c2s_require_encryption = {lua_value(self.require_encryption)}",
            "allow_registration = false",
            f"certificates = {lua_string(str(self.server_cert.parent))}",
            f"ssl = {lua_value(ssl)}",
        ]

        # Defaults that a test may replace. Prosody rejects an option set
        # twice, so a value in extra_options takes the place of the default.
        replaceable = {"c2s_ssl": c2s_ssl, "http_ports": [], "c2s_direct_tls_ports": []}
        for key, value in replaceable.items():
            if key not in self.extra_options:
                lines.append(f"{key} = {lua_value(value)}")

        if self.storage == "sql":
            lines.append('storage = "sql"')
            lines.append('sql = { driver = "SQLite3", database = "prosody.sqlite" }')
        else:
            lines.append('storage = "internal"')

        for key, value in self.extra_options.items():
            lines.append(f"{key} = {lua_value(value)}")

        lines.append(f"VirtualHost {lua_string(HOST)}")
        lines.append(f"    ssl = {lua_value(ssl)}")
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def prosodyctl(self, *args: str, timeout: float = PROSODYCTL_TIMEOUT) -> subprocess.CompletedProcess:
        """Run prosodyctl with this server's config and raise ProsodyError on a nonzero exit."""
        if not self.config_path.exists():
            self.write_config()
        command = [prosodyctl_bin(), "--config", str(self.config_path), *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise ProsodyError(f"{' '.join(command)} timed out after {timeout} s") from error
        if result.returncode != 0:
            raise ProsodyError(
                f"{' '.join(command)} failed with exit code {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def register(self, user: str, password: str) -> None:
        """Create the account user@localhost, whether or not the server is running."""
        self.prosodyctl("register", user, HOST, password)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start Prosody in the foreground (-F) and wait until it serves a c2s stream."""
        if self.is_running():
            raise ProsodyError(f"Prosody is already running with PID {self.process.pid}")
        self.write_config()
        console = open(self.console_path, "ab")
        try:
            self.process = subprocess.Popen(
                [prosody_bin(), "--config", str(self.config_path), "-F"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                cwd=self.folder)
        finally:
            console.close()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise ProsodyError(
                    f"Prosody exited with code {code} during startup\n{self.diagnostics()}")
            if self._port_accepts():
                return
            time.sleep(0.1)
        self.stop()
        raise ProsodyError(
            f"Prosody did not accept connections on {LISTEN_ADDRESS}:{self.c2s_port} "
            f"within {timeout} s\n{self.diagnostics()}")

    def _port_accepts(self) -> bool:
        """Return whether Prosody replies to a stream header with its features.

        The kernel accepts connections as soon as Prosody binds the port,
        which can happen before every module has loaded; an answer means the
        event loop runs, so loading is over and its log lines are written.
        """
        header = (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
                  f" xmlns:stream='http://etherx.jabber.org/streams' to='{HOST}' version='1.0'>")
        try:
            with socket.create_connection(self.address, timeout=0.5) as probe:
                probe.sendall(header.encode())
                probe.settimeout(2.0)
                received = b""
                while b"features" not in received and len(received) < 65536:
                    chunk = probe.recv(4096)
                    if not chunk:
                        return False
                    received += chunk
                return b"features" in received
        except OSError:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Stop the process this object started: SIGTERM, then SIGKILL after timeout seconds.

        Returns the exit code, or None when nothing was running.
        """
        process = self.process
        if process is None:
            return None
        self.process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        return process.returncode

    def restart(self) -> None:
        """Stop and start again on the same port with the same data folder."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def diagnostics(self, lines: int = 60) -> str:
        """Format the tails of the debug log and of stdout/stderr for a failure message."""
        try:
            console = self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            console = ""
        console_tail = "\n".join(console.splitlines()[-20:])
        return (f"--- last {lines} lines of {self.log_path} ---\n{self.log_tail(lines)}\n"
                f"--- stdout/stderr ({self.console_path}) ---\n{console_tail}")

    def log_errors(self) -> list:
        """Return the log lines at level error, except those in allowed_log_errors.

        Tests use it to check that they caused no unexpected error.
        """
        return [line for line in self.log_text().splitlines()
                if "\terror\t" in line
                and not any(allowed in line for allowed in self.allowed_log_errors)]


def write_legacy_record(server: ProsodyServer, user: str, name: str, cert: CertFiles,
                        no_cert_management: bool = False) -> Path:
    """Write user's certificate store file as the community mod_client_certs wrote it.

    The internal storage keeps keyval stores in
    `<data_path>/<host>/<store>/<user>.dat` as a Lua chunk that returns the
    table. Host and user are written as they are because `localhost` and the
    test user names contain no characters that Prosody escapes.
    """
    folder = server.data_path / HOST / "client_certs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{user}.dat"
    flag = "true" if no_cert_management else "false"
    path.write_text(
        "return {\n"
        f"\t[{lua_string(name)}] = {{\n"
        f"\t\t[\"name\"] = {lua_string(name)};\n"
        f"\t\t[\"x509cert\"] = {lua_string(cert.b64)};\n"
        f"\t\t[\"no_cert_management\"] = {flag};\n"
        f"\t\t[\"pem\"] = {lua_string(cert.pem)};\n"
        f"\t\t[\"digest\"] = {lua_string(cert.sha1_hex)};\n"
        "\t};\n"
        "};\n")
    return path


def module_record(name: str, cert: CertFiles, no_cert_management: bool = False,
                  added: Optional[int] = None) -> dict:
    """Build a certificate record in the format mod_client_certs stores.

    Times are seconds since the Unix epoch. added defaults to now.
    """
    parsed = x509.load_der_x509_certificate(cert.der)
    utc = datetime.timezone.utc
    return {
        "name": name,
        "x509cert": cert.b64,
        "fingerprint": cert.sha256_hex,
        "no_cert_management": no_cert_management,
        "not_before": int(parsed.not_valid_before.replace(tzinfo=utc).timestamp()),
        "not_after": int(parsed.not_valid_after.replace(tzinfo=utc).timestamp()),
        "added": int(time.time()) if added is None else added,
    }


def write_store_records(data_path: Path, user: str, records: Sequence[dict]) -> Path:
    """Write user's certificate store file in the internal storage format.

    records are dicts from module_record(), keyed by their name in the file.
    The file replaces any earlier one. As in write_legacy_record, host and
    user names must need no escaping. Takes the data folder, not the server,
    so that the benchmark can fill a folder before any server exists.
    """
    folder = data_path / HOST / "client_certs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{user}.dat"
    table = {record["name"]: record for record in records}
    path.write_text(f"return {lua_value(table)};\n")
    return path
