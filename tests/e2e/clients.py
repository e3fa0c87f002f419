"""XMPP clients for the end-to-end tests: slixmpp sessions and a raw SASL client.

The slixmpp helpers are coroutines, and every wait in them is bounded by
asyncio.wait_for. Tests run them with run_async(), which bounds the whole
scenario as well. RawClient is a blocking client over a plain socket for
what slixmpp hides: the offered SASL mechanisms, EXTERNAL without an initial
response, and the exact SASL failure condition.

Neither client verifies the server certificate, because the test server's
certificate is self-signed.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Awaitable, List, Optional, Sequence, Set, TypeVar
from xml.sax.saxutils import escape, quoteattr

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from certs import CertFiles

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

DEFAULT_TIMEOUT = 10.0
SCENARIO_TIMEOUT = 90.0

T = TypeVar("T")


def run_async(scenario: Awaitable[T], timeout: float = SCENARIO_TIMEOUT) -> T:
    """Run a coroutine to completion on a new event loop, failing after timeout seconds."""
    return asyncio.run(asyncio.wait_for(scenario, timeout))


def _client_ssl_context(cert: Optional[CertFiles]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        # Loaded here instead of through XMLStream.certfile/keyfile, because
        # slixmpp 1.8.3 logs a load failure at debug level and then connects
        # without a certificate.
        context.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    return context


# --- slixmpp sessions ------------------------------------------------------


@dataclass
class IqOutcome:
    """The reply to an IQ request: a result, or an error with its condition and text."""

    ok: bool
    condition: Optional[str] = None
    error_type: Optional[str] = None
    text: Optional[str] = None
    xml: str = ""


NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def stanza_error_condition(xml: str) -> Optional[str]:
    """Return the defined condition of the <error/> in a stanza's XML, or None.

    slixmpp 1.8 parses only the RFC 3920 conditions, so IqOutcome.condition
    is empty for RFC 6120 additions such as policy-violation.
    """
    if not xml:
        return None
    error = ET.fromstring(xml).find("{*}error")
    if error is None:
        return None
    for child in error:
        namespace, _, name = child.tag[1:].partition("}")
        if namespace == NS_STANZAS and name != "text":
            return name
    return None


@dataclass
class CertItem:
    """One <item/> of an XEP-0257 <items/> result."""

    name: str
    x509cert: str
    users: Set[str] = field(default_factory=set)


@dataclass
class LoginResult:
    """How a login attempt ended.

    On success, session is connected and bound_jid is the full JID from
    resource binding. On failure, failure_condition is the SASL failure
    condition, or "no-mechanism" when none of the allowed mechanisms was
    offered, or "connection-failed". offered_mechanisms is the list from the
    last <mechanisms/> feature seen.
    """

    success: bool
    session: Optional["Session"] = None
    bound_jid: Optional[str] = None
    failure_condition: Optional[str] = None
    failure_text: Optional[str] = None
    offered_mechanisms: Set[str] = field(default_factory=set)


class Session:
    """A slixmpp ClientXMPP connected to the test server, with XEP-0257 helpers.

    It records the stream error and the disconnection that the server may
    send later, for tests that expect the server to close the session.
    """

    def __init__(self, xmpp: slixmpp.ClientXMPP, domain: str):
        self.xmpp = xmpp
        self.domain = domain
        self.stream_error_condition: Optional[str] = None
        self.stream_error_text: Optional[str] = None
        self.disconnected = asyncio.Event()
        xmpp.add_event_handler("stream_error", self._on_stream_error)
        xmpp.add_event_handler("disconnected", self._on_disconnected)

    def _on_stream_error(self, error) -> None:
        self.stream_error_condition = error["condition"]
        self.stream_error_text = error["text"]

    def _on_disconnected(self, _reason) -> None:
        self.disconnected.set()

    @property
    def bound_jid(self) -> str:
        return str(self.xmpp.boundjid.full)

    async def _send_iq(self, iq, timeout: float) -> IqOutcome:
        try:
            reply = await asyncio.wait_for(iq.send(timeout=timeout), timeout + 1)
        except IqError as error:
            reply = error.iq
            return IqOutcome(ok=False, condition=reply["error"]["condition"],
                             error_type=reply["error"]["type"],
                             text=reply["error"]["text"] or None, xml=str(reply))
        except (IqTimeout, asyncio.TimeoutError):
            return IqOutcome(ok=False, condition="timeout", xml="")
        return IqOutcome(ok=True, xml=str(reply))

    async def get_certs(self, timeout: float = DEFAULT_TIMEOUT) -> List[CertItem]:
        """List the account's certificates with an XEP-0257 <items/> request.

        Raises AssertionError with the stanza when the server returns an error.
        """
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq.enable("sasl_certs")
        error_reply = None
        try:
            reply = await asyncio.wait_for(iq.send(timeout=timeout), timeout + 1)
        except IqError as error:
            error_reply = error.iq
        # Raised outside the except block to keep asyncio frames out of the report.
        if error_reply is not None:
            raise AssertionError(f"<items/> request returned an error: {error_reply}")
        items = []
        for item in reply["sasl_certs"]["items"]:
            items.append(CertItem(name=item["name"],
                                  x509cert="".join(item["x509cert"].split()),
                                  users=set(item["users"])))
        return items

    async def add_cert(self, name: str, x509cert: str, allow_management: bool = True,
                       timeout: float = DEFAULT_TIMEOUT) -> IqOutcome:
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["sasl_cert_append"]["name"] = name
        iq["sasl_cert_append"]["x509cert"] = x509cert
        iq["sasl_cert_append"]["cert_management"] = allow_management
        return await self._send_iq(iq, timeout)

    async def disable_cert(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> IqOutcome:
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["sasl_cert_disable"]["name"] = name
        return await self._send_iq(iq, timeout)

    async def revoke_cert(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> IqOutcome:
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["sasl_cert_revoke"]["name"] = name
        return await self._send_iq(iq, timeout)

    async def send_iq_payload(self, iq_type: str, payload_xml: str,
                              timeout: float = DEFAULT_TIMEOUT) -> IqOutcome:
        """Send an IQ of iq_type to the account's server with payload_xml as its child.

        IqOutcome.xml contains the whole reply, for checks on more than the
        error condition.
        """
        iq = self.xmpp.Iq()
        iq["type"] = iq_type
        iq.append(ET.fromstring(payload_xml))
        return await self._send_iq(iq, timeout)

    async def disco_features(self, timeout: float = DEFAULT_TIMEOUT) -> Set[str]:
        """Return the features the server host lists in disco#info."""
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = self.domain
        iq.enable("disco_info")
        reply = await asyncio.wait_for(iq.send(timeout=timeout), timeout + 1)
        return set(reply["disco_info"]["features"])

    async def ping(self, timeout: float = DEFAULT_TIMEOUT) -> IqOutcome:
        """Send an XEP-0199 ping to the server host."""
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = self.domain
        iq.enable("ping")
        return await self._send_iq(iq, timeout)

    async def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Wait up to timeout seconds for the server to end the stream; return whether it did."""
        try:
            await asyncio.wait_for(self.disconnected.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Close the stream, or abort the connection when the server does not respond."""
        if self.disconnected.is_set():
            return
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=2.0), timeout)
        except asyncio.TimeoutError:
            self.xmpp.abort()


def _make_client(jid: str, password: str, address: tuple,
                 cert: Optional[CertFiles], mechanisms: Optional[Sequence[str]]
                 ) -> slixmpp.ClientXMPP:
    xmpp = slixmpp.ClientXMPP(jid, password)
    for plugin in ("xep_0030", "xep_0199", "xep_0257"):
        xmpp.register_plugin(plugin)
    if mechanisms is not None:
        xmpp["feature_mechanisms"].use_mechs = set(mechanisms)
    xmpp.ssl_context = _client_ssl_context(cert)
    # Fail the connection attempt instead of letting slixmpp reconnect.
    xmpp.add_event_handler("connection_failed", lambda _e: xmpp.cancel_connection_attempt())
    xmpp.address = address
    return xmpp


async def login(address: tuple, jid: str, password: str = "",
                cert: Optional[CertFiles] = None,
                mechanisms: Optional[Sequence[str]] = None,
                authzid: Optional[str] = None,
                timeout: float = DEFAULT_TIMEOUT) -> LoginResult:
    """Connect with STARTTLS, authenticate and bind a resource.

    jid may carry a resource to request. cert is presented in the TLS
    handshake. mechanisms limits which SASL mechanisms slixmpp may use.
    slixmpp prefers EXTERNAL over every other mechanism when the server offers
    it, and it sends the credential "authzid" as the EXTERNAL initial
    response: unset gives the empty response "=", a JID gives its base64.
    """
    xmpp = _make_client(jid, password, address, cert, mechanisms)
    if authzid is not None:
        xmpp.credentials["authzid"] = authzid
    session = Session(xmpp, domain=slixmpp.JID(jid).domain)
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future = loop.create_future()
    last_failure = {}

    def finish(value) -> None:
        if not outcome.done():
            outcome.set_result(value)

    def on_failed_auth(failure) -> None:
        last_failure["condition"] = failure["condition"]
        last_failure["text"] = failure["text"] or None

    def on_failed_all_auth(_event) -> None:
        finish("failed")

    xmpp.add_event_handler("session_start", lambda _e: finish("session"))
    xmpp.add_event_handler("failed_auth", on_failed_auth)
    xmpp.add_event_handler("failed_all_auth", on_failed_all_auth)
    xmpp.add_event_handler("connection_failed", lambda _e: finish("connection-failed"))
    xmpp.add_event_handler("disconnected", lambda _e: finish("disconnected"))

    xmpp.connect(address=address)
    try:
        result = await asyncio.wait_for(outcome, timeout)
    except asyncio.TimeoutError:
        result = "timeout"
    offered = set(xmpp["feature_mechanisms"].mech_list)

    if result == "session":
        return LoginResult(success=True, session=session, bound_jid=session.bound_jid,
                           offered_mechanisms=offered)

    await session.close()
    condition = last_failure.get("condition")
    if condition is None:
        condition = {"failed": "no-mechanism"}.get(result, result)
    return LoginResult(success=False, failure_condition=condition,
                       failure_text=last_failure.get("text"),
                       offered_mechanisms=offered)


async def login_password(address: tuple, jid: str, password: str,
                         cert: Optional[CertFiles] = None, **options) -> LoginResult:
    """Log in with a password, never EXTERNAL, optionally presenting cert in TLS."""
    mechanisms = ("SCRAM-SHA-1", "PLAIN")
    return await login(address, jid, password, cert=cert, mechanisms=mechanisms, **options)


async def login_cert(address: tuple, jid: str, cert: CertFiles,
                     authzid: Optional[str] = None, **options) -> LoginResult:
    """Log in with SASL EXTERNAL only, presenting cert in TLS.

    jid chooses the domain and the resource to request. With authzid None the
    initial response is empty ("="); otherwise it is the given authzid.
    """
    return await login(address, jid, cert=cert, mechanisms=("EXTERNAL",),
                       authzid=authzid, **options)


async def append_with_password(address: tuple, jid: str, password: str, name: str,
                               cert: CertFiles, allow_management: bool = True) -> IqOutcome:
    """Log in with a password, append cert under name, log out, and return the reply."""
    result = await login_password(address, jid, password)
    if not result.success:
        raise AssertionError(f"password login as {jid} failed: {result.failure_condition} "
                             f"({result.failure_text})")
    try:
        return await result.session.add_cert(name, cert.b64, allow_management=allow_management)
    finally:
        await result.session.close()


# --- raw client --------------------------------------------------------------


class StreamClosed(Exception):
    """The server closed the stream or the connection."""


@dataclass
class SaslOutcome:
    """The server's last SASL element: success, failure (with condition) or challenge."""

    kind: str
    condition: Optional[str] = None
    text: Optional[str] = None
    data: bytes = b""
    xml: str = ""


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


class RawClient:
    """A blocking XMPP client that sends hand-written XML.

    Every read has a deadline of timeout seconds. Use it as a context manager
    so the socket is closed.
    """

    def __init__(self, address: tuple, domain: str = "localhost",
                 timeout: float = DEFAULT_TIMEOUT):
        self.domain = domain
        self.timeout = timeout
        self.sock: socket.socket = socket.create_connection(address, timeout=timeout)
        self.features: Optional[ET.Element] = None
        self._parser: Optional[ET.XMLPullParser] = None
        self._depth = 0
        self._pending: List[ET.Element] = []

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, xml: str) -> None:
        self.sock.sendall(xml.encode("utf-8"))

    def open_stream(self) -> ET.Element:
        """Send a stream header on a fresh parser and return the <stream:features/> element."""
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._pending = []
        self.send(
            "<?xml version='1.0'?>"
            f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'"
            f" to={quoteattr(self.domain)} version='1.0'>")
        features = self.read_element()
        if features.tag != _tag(NS_STREAM, "features"):
            raise AssertionError(f"expected <stream:features/>, got {ET.tostring(features)!r}")
        self.features = features
        return features

    def read_element(self) -> ET.Element:
        """Return the next complete top-level element of the stream.

        Raises StreamClosed when the server ends the stream or the
        connection, and socket.timeout when nothing arrives in time.
        """
        deadline = time.monotonic() + self.timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout(f"no complete element within {self.timeout} s")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise StreamClosed("connection closed by the server")
            self._parser.feed(data)
            for event, element in self._parser.read_events():
                if event == "start":
                    self._depth += 1
                    continue
                self._depth -= 1
                if self._depth == 0:
                    raise StreamClosed("server closed the stream")
                if self._depth == 1:
                    self._pending.append(element)
        return self._pending.pop(0)

    def mechanisms(self) -> List[str]:
        """Return the SASL mechanisms of the last stream features, in server order."""
        if self.features is None:
            return []
        container = self.features.find(_tag(NS_SASL, "mechanisms"))
        if container is None:
            return []
        return [mechanism.text for mechanism in container.findall(_tag(NS_SASL, "mechanism"))]

    def direct_tls(self, cert: Optional[CertFiles] = None) -> ET.Element:
        """Start TLS at once, as on a direct TLS port (XEP-0368), presenting cert; return the features."""
        context = _client_ssl_context(cert)
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=self.domain)
        return self.open_stream()

    def starttls(self, cert: Optional[CertFiles] = None) -> ET.Element:
        """Open the stream, negotiate STARTTLS presenting cert, and return the new features."""
        if self.features is None:
            self.open_stream()
        if self.features.find(_tag(NS_TLS, "starttls")) is None:
            raise AssertionError("server did not offer STARTTLS")
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        answer = self.read_element()
        if answer.tag != _tag(NS_TLS, "proceed"):
            raise AssertionError(f"STARTTLS refused: {ET.tostring(answer)!r}")
        context = _client_ssl_context(cert)
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=self.domain)
        return self.open_stream()

    def _sasl_outcome(self) -> SaslOutcome:
        element = self.read_element()
        xml = ET.tostring(element, encoding="unicode")
        kind = element.tag.split("}", 1)[-1]
        if element.tag == _tag(NS_SASL, "failure"):
            condition = None
            text = None
            for child in element:
                name = child.tag.split("}", 1)[-1]
                if name == "text":
                    text = child.text
                else:
                    condition = name
            return SaslOutcome(kind="failure", condition=condition, text=text, xml=xml)
        if element.tag in (_tag(NS_SASL, "success"), _tag(NS_SASL, "challenge")):
            content = (element.text or "").strip()
            data = b"" if content in ("", "=") else base64.b64decode(content)
            return SaslOutcome(kind=kind, data=data, xml=xml)
        raise AssertionError(f"expected a SASL element, got {xml}")

    def auth(self, mechanism: str, initial_response: Optional[bytes]) -> SaslOutcome:
        """Send <auth/>. None sends no initial response and b"" sends the empty one, "="."""
        if initial_response is None:
            body = ""
        elif initial_response == b"":
            body = "="
        else:
            body = base64.b64encode(initial_response).decode("ascii")
        self.send(f"<auth xmlns='{NS_SASL}' mechanism={quoteattr(mechanism)}>{body}</auth>")
        return self._sasl_outcome()

    def auth_text(self, mechanism: str, body: str) -> SaslOutcome:
        """Send <auth/> with body as its text content, unencoded, for malformed base64."""
        self.send(f"<auth xmlns='{NS_SASL}' mechanism={quoteattr(mechanism)}>"
                  f"{escape(body)}</auth>")
        return self._sasl_outcome()

    def respond(self, response: bytes) -> SaslOutcome:
        """Reply to a SASL challenge; b"" sends an empty <response/>."""
        body = base64.b64encode(response).decode("ascii") if response else ""
        self.send(f"<response xmlns='{NS_SASL}'>{body}</response>")
        return self._sasl_outcome()

    def auth_external(self, authzid: Optional[str] = "") -> SaslOutcome:
        """Run SASL EXTERNAL with authzid as the initial response ("" sends "=").

        With authzid None, the client sends no initial response, and when the
        server then sends a challenge, it replies with an empty response.
        """
        if authzid is not None:
            return self.auth("EXTERNAL", authzid.encode("utf-8"))
        outcome = self.auth("EXTERNAL", None)
        if outcome.kind == "challenge":
            outcome = self.respond(b"")
        return outcome

    def auth_plain(self, user: str, password: str) -> SaslOutcome:
        return self.auth("PLAIN", b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8"))

    def bind(self, resource: Optional[str] = None) -> str:
        """Restart the stream after SASL success, bind a resource, and return the full JID."""
        features = self.open_stream()
        if features.find(_tag(NS_BIND, "bind")) is None:
            raise AssertionError(f"no resource binding offered: {ET.tostring(features)!r}")
        resource_xml = f"<resource>{escape(resource)}</resource>" if resource else ""
        self.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{resource_xml}</bind></iq>")
        reply = self.read_element()
        jid = reply.find(f"{_tag(NS_BIND, 'bind')}/{_tag(NS_BIND, 'jid')}")
        if reply.get("type") != "result" or jid is None:
            raise AssertionError(f"resource binding failed: {ET.tostring(reply)!r}")
        return jid.text
