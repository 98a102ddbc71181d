"""Find (EAS 16.1) over real HTTP: the mailbox in a real Dovecot (subject/sender, folder scope, newest first
across folders, Range paging, the short property set) and the GAL; bad Find input is Find Status 2."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.dovecot import make_message
from tests.eas_client import client
from tests.test_eas_mail import inbox_of


@pytest.fixture
def running(live_server, mail):  # type: ignore[no-untyped-def]
    return live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                       eas={"min_heartbeat_seconds": 1})


@pytest.fixture
def phone(running, mail):  # type: ignore[no-untyped-def]
    c = client(running, user=mail.alice_address, version="16.1")
    c.provision()
    return c


def find_mail(phone, text: str, folder: str | None = None, rng: str | None = "0-9"):  # type: ignore[no-untyped-def]
    query = [E("Find:FreeText", text), E("AirSync:Class", "Email")]
    if folder is not None:
        query.append(E("AirSync:CollectionId", folder))
    options = [E("Find:Options", E("Find:Range", rng))] if rng is not None else []
    return phone.post("Find", E("Find:Find", E("Find:SearchId", str(uuid.uuid4())), E(
        "Find:ExecuteSearch", E("Find:MailBoxSearchCriterion", E("Find:Query", *query), *options))))


def subjects(reply) -> list[str]:  # type: ignore[no-untyped-def]
    assert reply.body.findtext("Find:Status") == "1", reply.body
    response = reply.body.find("Find:Response")
    assert response.findtext("Find:Status") == "1"
    return [r.find("Find:Properties").findtext("Email:Subject") for r in response.findall("Find:Result")]


def test_find_mailbox_newest_first_across_folders_with_paging(phone, mail) -> None:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.create_folder("Archive")
    other.append("Archive", make_message("report from 2020"), msg_time=datetime(2020, 1, 2, 10, 0))
    other.append("Archive", make_message("report from 2025", sender="Carl <carl@example.net>"),
                 msg_time=datetime(2025, 1, 2, 10, 0))
    other.append("INBOX", make_message("report from 2022"), msg_time=datetime(2022, 1, 2, 10, 0))
    other.logout()
    mail.deliver(make_message("report today", "the figures", attachment=("q.pdf", b"%PDF-1.4")))
    mail.deliver(make_message("lunch"))
    inbox = inbox_of(phone)
    _, folders = phone.folder_sync("0")
    archive = next(k for k, v in folders.items() if v["name"] == "Archive")

    assert subjects(find_mail(phone, "report")) == [
        "report today", "report from 2025", "report from 2022", "report from 2020"]  # interleaved folders
    page = find_mail(phone, "report", rng="1-2").body.find("Find:Response")
    assert [r.find("Find:Properties").findtext("Email:Subject") for r in page.findall("Find:Result")] == [
        "report from 2025", "report from 2022"]
    assert page.findtext("Find:Range") == "1-2" and page.findtext("Find:Total") == "4"
    assert subjects(find_mail(phone, "report", folder=archive)) == ["report from 2025", "report from 2020"]
    assert subjects(find_mail(phone, "carl")) == ["report from 2025"]
    assert subjects(find_mail(phone, "nothing-like-this")) == []

    result = find_mail(phone, "report today", folder=inbox).body.find("Find:Response").find("Find:Result")
    assert result.findtext("AirSync:Class") == "Email" and result.findtext("AirSync:CollectionId") == inbox
    other = mail.imap()
    other.select_folder("INBOX")
    assert int(result.findtext("AirSync:ServerId")) in other.search(["SUBJECT", "report today"])
    other.logout()
    props = result.find("Find:Properties")
    assert props.findtext("Find:HasAttachments") == "1" and props.findtext("Email:Read") == "0"
    assert props.findtext("Find:Preview").startswith("the figures")
    assert "bob@example.net" in props.findtext("Email:From") and props.findtext("Email:DateReceived")


def test_find_gal(phone) -> None:  # type: ignore[no-untyped-def]
    reply = phone.post("Find", E("Find:Find", E("Find:SearchId", str(uuid.uuid4())), E(
        "Find:ExecuteSearch", E("Find:GALSearchCriterion", E("Find:Query", "Durand"),
                                E("Find:Options", E("Find:Range", "0-9"))))))
    response = reply.body.find("Find:Response")
    assert reply.body.findtext("Find:Status") == "1" and response.findtext("Find:Total") == "1"
    props = response.find("Find:Result").find("Find:Properties")
    assert props.findtext("GAL:LastName") == "Durand" and props.findtext("GAL:Alias").startswith("bob")


@pytest.mark.parametrize("body", [
    E("Find:Find", E("Find:SearchId", "x")),  # no ExecuteSearch
    E("Find:Find", E("Find:ExecuteSearch", E("Find:GALSearchCriterion", E("Find:Query", "Durand")))),  # no SearchId
    E("Find:Find", E("Find:SearchId", "x"), E("Find:ExecuteSearch", E("Find:MailBoxSearchCriterion", E(
        "Find:Query", E("Find:FreeText", "  "))))),  # empty query
    E("Find:Find", E("Find:SearchId", "x"), E("Find:ExecuteSearch", E("Find:MailBoxSearchCriterion", E(
        "Find:Query", E("Find:FreeText", "x" * 257))))),  # over-long query
    E("Find:Find", E("Find:SearchId", "x"), E("Find:ExecuteSearch", E("Find:GALSearchCriterion", E(
        "Find:Query", "Durand"), E("Find:Options", E("Find:Range", "9-2")))))  # backwards Range
])
def test_bad_find_is_status_2(phone, body) -> None:  # type: ignore[no-untyped-def]
    reply = phone.post("Find", body)
    assert reply.status == 200 and reply.body.findtext("Find:Status") == "2"
    assert reply.body.find("Find:Response") is None


def test_find_in_an_unknown_folder_is_status_3_and_needs_16_1(phone) -> None:  # type: ignore[no-untyped-def]
    assert find_mail(phone, "report", folder="m" + "0" * 32).body.findtext("Find:Status") == "3"
    phone.version = "16.0"
    assert find_mail(phone, "report").body.findtext("Find:Status") == "2"
