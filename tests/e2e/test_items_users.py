"""List in <users/> the resource of every session logged in with a certificate."""

from clients import append_with_password, login_cert, login_password, run_async
from harness import ALICE_JID, ALICE_PASSWORD


def test_users_lists_every_cert_session(prosody, make_cert):
    phone = make_cert("phone")
    laptop = make_cert("laptop")

    async def scenario():
        # Register two certificates.
        for name, cert in (("phone", phone), ("laptop", laptop)):
            appended = await append_with_password(
                prosody.address, ALICE_JID, ALICE_PASSWORD, name, cert)
            assert appended.ok, appended.xml

        # Two sessions log in with the phone certificate, none with the laptop one.
        first = await login_cert(prosody.address, f"{ALICE_JID}/one", phone)
        assert first.success, f"{first.failure_condition}: {first.failure_text}"
        second = await login_cert(prosody.address, f"{ALICE_JID}/two", phone)
        assert second.success, f"{second.failure_condition}: {second.failure_text}"

        # A password session lists the certificates.
        password = await login_password(prosody.address, f"{ALICE_JID}/desk", ALICE_PASSWORD)
        assert password.success, password.failure_condition
        try:
            items = await password.session.get_certs()
        finally:
            for session in (password.session, first.session, second.session):
                await session.close()
        return first.bound_jid, second.bound_jid, password.bound_jid, items

    first_jid, second_jid, password_jid, items = run_async(scenario())

    by_name = {item.name: item for item in items}
    assert sorted(by_name) == ["laptop", "phone"]
    expected = {first_jid.split("/", 1)[1], second_jid.split("/", 1)[1]}
    assert len(expected) == 2, (first_jid, second_jid)
    assert by_name["phone"].users == expected
    assert by_name["laptop"].users == set()
    # The password session uses no certificate, so no <users/> lists it.
    password_resource = password_jid.split("/", 1)[1]
    assert all(password_resource not in item.users for item in items)


def test_users_drops_closed_session(prosody, make_cert):
    phone = make_cert("phone")

    async def scenario():
        appended = await append_with_password(
            prosody.address, ALICE_JID, ALICE_PASSWORD, "phone", phone)
        assert appended.ok, appended.xml

        # Log in with the certificate, list from that session, then close it.
        login = await login_cert(prosody.address, f"{ALICE_JID}/one", phone)
        assert login.success, f"{login.failure_condition}: {login.failure_text}"
        while_open = await login.session.get_certs()
        await login.session.close()

        # A password session lists the certificates after the close.
        password = await login_password(prosody.address, f"{ALICE_JID}/desk", ALICE_PASSWORD)
        assert password.success, password.failure_condition
        try:
            after_close = await password.session.get_certs()
        finally:
            await password.session.close()
        return login.bound_jid, while_open, after_close

    bound_jid, while_open, after_close = run_async(scenario())

    assert [item.users for item in while_open] == [{bound_jid.split("/", 1)[1]}]
    assert [item.users for item in after_close] == [set()]
