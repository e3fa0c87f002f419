"""Reject XEP-0077 password change and account removal from a certificate session."""

import xml.etree.ElementTree as ET

import pytest

from clients import (append_with_password, login_cert, login_password, run_async,
                     stanza_error_condition)
from harness import ALICE, ALICE_JID, ALICE_PASSWORD

NEW_PASSWORD = "alice-new-password"
NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"

REQUESTS = {
    "password-change": (f"<query xmlns='{NS_REGISTER}'><username>{ALICE}</username>"
                        f"<password>{NEW_PASSWORD}</password></query>"),
    "account-removal": f"<query xmlns='{NS_REGISTER}'><remove/></query>",
}


def form_fields(reply_xml: str) -> dict:
    """Return {var: value text or None} of the data form inside the reply's register query."""
    reply = ET.fromstring(reply_xml)
    form = reply.find(f"{{{NS_REGISTER}}}query/{{{NS_DATA}}}x")
    if form is None:
        return {}
    return {field.get("var"): field.findtext(f"{{{NS_DATA}}}value")
            for field in form.findall(f"{{{NS_DATA}}}field")}


async def password_login_works(address, password) -> bool:
    result = await login_password(address, ALICE_JID, password)
    if result.success:
        await result.session.close()
    return result.success


@pytest.mark.parametrize("case", list(REQUESTS))
def test_register_rejected_for_cert_session(prosody, make_cert, case):
    cert = make_cert("device")

    async def scenario():
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "device", cert)
        assert appended.ok, appended.xml

        # Log in with the certificate and send the XEP-0077 request.
        login = await login_cert(prosody.address, f"{ALICE_JID}/cert", cert)
        assert login.success, f"{login.failure_condition}: {login.failure_text}"
        try:
            reply = await login.session.send_iq_payload("set", REQUESTS[case])
        finally:
            await login.session.close()

        # The account still exists and the old password still works.
        old_works = await password_login_works(prosody.address, ALICE_PASSWORD)
        new_works = await password_login_works(prosody.address, NEW_PASSWORD)
        return reply, old_works, new_works

    reply, old_works, new_works = run_async(scenario())

    assert not reply.ok, reply.xml
    assert stanza_error_condition(reply.xml) == "not-authorized", reply.xml
    fields = form_fields(reply.xml)
    assert fields.get("FORM_TYPE") == "jabber:iq:register:changepassword", reply.xml
    assert "old_password" in fields, reply.xml
    assert old_works
    assert not new_works


def test_password_session_changes_password(prosody):
    async def scenario():
        # Change the password from a password session.
        login = await login_password(prosody.address, f"{ALICE_JID}/desk", ALICE_PASSWORD)
        assert login.success, login.failure_condition
        try:
            reply = await login.session.send_iq_payload("set", REQUESTS["password-change"])
        finally:
            await login.session.close()

        # Only the new password works afterwards.
        old_works = await password_login_works(prosody.address, ALICE_PASSWORD)
        new_works = await password_login_works(prosody.address, NEW_PASSWORD)
        return reply, old_works, new_works

    reply, old_works, new_works = run_async(scenario())

    assert reply.ok, reply.xml
    assert new_works
    assert not old_works
