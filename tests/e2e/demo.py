"""Show mod_client_certs working on a throwaway Prosody.

Run with `make demo`. It starts Prosody on 127.0.0.1 with the module from
build/, creates alice@localhost, makes a client certificate that names her,
uploads it with XEP-0257 from a password session, and then logs in with the
certificate alone through SASL EXTERNAL. Everything lives in a temporary
folder that is deleted at the end, and the server is stopped by PID.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from certs import make_client_cert, make_server_cert
from clients import login_cert, login_password
from harness import ALICE, ALICE_JID, ALICE_PASSWORD, BASE_MODULES, HOST, ProsodyServer

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO_ROOT / "build"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


async def scenario(server: ProsodyServer, cert) -> bool:
    step(f"Log in as {ALICE_JID} with her password and upload the certificate as 'laptop'")
    login = await login_password(server.address, ALICE_JID, ALICE_PASSWORD)
    if not login.success:
        print(f"    password login failed: {login.failure_condition}")
        return False
    reply = await login.session.add_cert("laptop", cert.b64)
    if not reply.ok:
        print(f"    upload rejected: {reply.condition}: {reply.text}")
        return False
    print("    upload accepted")

    step("List the account's certificates (XEP-0257 items)")
    for item in await login.session.get_certs():
        print(f"    {item.name}: {len(item.x509cert)} characters of base64 DER")
    await login.session.close()

    step("Log in again with the certificate alone (SASL EXTERNAL, no password)")
    result = await login_cert(server.address, ALICE_JID, cert)
    print(f"    mechanisms offered: {', '.join(sorted(result.offered_mechanisms))}")
    if not result.success:
        print(f"    certificate login failed: {result.failure_condition}")
        return False
    print(f"    logged in and bound {result.bound_jid}")
    await result.session.close()
    return True


def main() -> int:
    if not (BUILD_DIR / "mod_client_certs" / "mod_client_certs.lua").exists():
        print("build/mod_client_certs is missing: run `make build` first", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="client-certs-demo-") as folder:
        folder = Path(folder)
        server_cert = make_server_cert(folder / "server-cert", HOST)
        step(f"Make a self-signed client certificate with id-on-xmppAddr {ALICE_JID}")
        cert = make_client_cert(folder / "client-cert", "alice-laptop", xmpp_addrs=(ALICE_JID,))
        print(f"    SHA-256 {cert.sha256_hex}")

        server = ProsodyServer(folder=folder / "prosody", server_cert=server_cert.cert_path,
                               server_key=server_cert.key_path, plugin_paths=[BUILD_DIR],
                               modules=[*BASE_MODULES, "client_certs"])
        server.register(ALICE, ALICE_PASSWORD)
        step(f"Start Prosody on {server.address[0]}:{server.address[1]}")
        server.start()
        try:
            ok = asyncio.run(asyncio.wait_for(scenario(server, cert), 60))
        finally:
            server.stop()

        step("What the module logged")
        for line in server.log_text().splitlines():
            if "client_certs" in line and "\tinfo\t" in line or "logged in from" in line:
                print("    " + line)

    print("\nDemo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
