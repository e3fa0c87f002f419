"""A secure session without a TLS socket gets no EXTERNAL and no Lua error.

BOSH (and WebSocket) behind a TLS-terminating proxy are marked secure with
consider_bosh_secure, but there is no TLS socket to read a client
certificate from. EXTERNAL must not be offered, an attempt must fail with a
SASL failure, and the password must still work. The harness fails the test
when Prosody logs an error line.
"""

import base64
import re
import urllib.request

from harness import ALICE, ALICE_PASSWORD, HOST, LISTEN_ADDRESS, pick_free_port

NS_BOSH = "http://jabber.org/protocol/httpbind"


class BoshClient:
    """A minimal BOSH (XEP-0124/0206) client: one request at a time."""

    def __init__(self, port: int):
        self.url = f"http://{LISTEN_ADDRESS}:{port}/http-bind"
        self.rid = 4242
        self.sid = None

    def post(self, payload: str = "", **attributes) -> str:
        self.rid += 1
        attrs = {"rid": str(self.rid), "xmlns": NS_BOSH, **attributes}
        if self.sid:
            attrs["sid"] = self.sid
        body = "<body " + " ".join(f"{key}='{value}'" for key, value in attrs.items()) + ">" + payload + "</body>"
        request = urllib.request.Request(self.url, data=body.encode(),
                                         headers={"Content-Type": "text/xml; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def start(self) -> str:
        """Create the session and return the response that carries the stream features."""
        answer = self.post(**{"to": HOST, "wait": "1", "hold": "1", "ver": "1.6",
                              "xmpp:version": "1.0", "xmlns:xmpp": "urn:xmpp:xbosh"})
        self.sid = re.search(r"sid=['\"]([^'\"]+)", answer).group(1)
        # The features may come in the session creation response or the next one.
        if "mechanisms" not in answer:
            answer = self.post()
        return answer


def test_bosh_session_gets_no_external(prosody_factory):
    http_port = pick_free_port()
    server = prosody_factory(
        extra_options={"http_ports": [http_port], "consider_bosh_secure": True,
                       "http_interfaces": [LISTEN_ADDRESS]},
        extra_modules=("bosh",))
    server.start()
    bosh = BoshClient(http_port)

    # The session is secure, but EXTERNAL is not offered.
    features = bosh.start()
    mechanisms = re.findall(r"<mechanism>([^<]+)</mechanism>", features)
    assert "PLAIN" in mechanisms, features
    assert "EXTERNAL" not in mechanisms, features

    # Sending EXTERNAL anyway gets a SASL failure.
    failure = bosh.post("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
    assert "<failure" in failure, failure

    # The password still logs in on the same session.
    plain = base64.b64encode(f"\0{ALICE}\0{ALICE_PASSWORD}".encode()).decode()
    success = bosh.post(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>")
    assert "<success" in success, success
