"""Hostile and broken ActiveSync input: clear status or 400/413, logged once, no state advanced."""

from __future__ import annotations

import logging

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E, encode
from oxsync.model import Contact, Module
from tests.eas_client import client, collection, items

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""Protocol-level behaviour that does not depend on the database: run once, on SQLite."""

@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install, eas={"max_request_bytes": 4096})


@pytest.fixture
def phone(running):  # type: ignore[no-untyped-def]
    c = client(running)
    c.provision()
    return c


def bad_requests(caplog) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in caplog.records if getattr(r, "event", "") == "eas.bad_request")


def test_broken_wbxml_is_400_logged_once_and_changes_nothing(phone, world, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    key = phone.keys[folder]
    with world.as_user(world.alice, write=True) as session:
        session.create_object(int(folder), Contact(first_name="Kept"))
    good = encode(E("AirSync:Sync", E("AirSync:Collections", E("AirSync:Collection", E("AirSync:SyncKey", key),
                                                                 E("AirSync:CollectionId", folder)))))
    cases = {
        "truncated": good[:-3],
        "unknown page": b"\x03\x01\x6a\x00\x00\x1f\x45\x01",
        "unknown token": b"\x03\x01\x6a\x00\x7e\x01",
        "bad header": b"\x02\x01\x6a\x00\x45\x01",
        "attributes": b"\x03\x01\x6a\x00\xc5\x01\x01",
        "trailing": good + b"\x45\x01",
        "wrong root": encode(E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))),
        "string table abuse": b"\x03\x01\x6a\x7f" + b"\x00" * 4,
    }
    for name, body in cases.items():
        before = bad_requests(caplog)
        reply = phone.post("Sync", body)
        assert reply.status == 400, name
        assert bad_requests(caplog) == before + 1, name
    # nothing advanced: the old key still works and delivers the item
    reply = phone.sync(folder, key)
    assert [d.findtext("Contacts:FirstName") for d in items(reply).values()] == ["Kept"]


@SQLITE_ONLY
def test_oversized_body_is_413_and_server_keeps_serving(phone) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    huge = E("AirSync:Sync", E("AirSync:Collections", E("AirSync:Collection", E("AirSync:SyncKey", "0"),
                                                          E("AirSync:CollectionId", folder),
                                                          E("AirSync:Commands", *[E("AirSync:Fetch", E("AirSync:ServerId", "x" * 60))
                                                                                  for _ in range(100)]))))
    assert phone.post("Sync", huge).status == 413
    assert collection(phone.sync(folder, "0")).findtext("AirSync:Status") == "1"


def test_bogus_keys_ids_and_values(phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    key = phone.keys[folder]
    assert phone.sync(folder, "k" * 100).text("AirSync:Status") == "4"
    assert collection(phone.sync(folder, "'; DROP TABLE x; --")).findtext("AirSync:Status") == "3"
    assert collection(phone.sync("99999999999999999999999", "0")).findtext("AirSync:Status") == "12"
    assert phone.sync(folder, key, options=[E("AirSync:FilterType", "42")]).text("AirSync:Status") == "4"
    bad_add = E("AirSync:Add", E("AirSync:ClientId", "x1"), E("AirSync:ApplicationData",
                                                               E("Contacts:Birthday", "not a date"),
                                                               E("Contacts:Picture", "!!!notbase64")))
    reply = phone.sync(folder, key, commands=[bad_add, E("AirSync:Delete", E("AirSync:ServerId", "abc"))])
    response = collection(reply).find("AirSync:Responses").find("AirSync:Add")
    assert response.findtext("AirSync:Status") == "6"
    with world.as_user(world.alice) as session:
        assert session.list_objects(int(folder)) == []
    assert phone.post("Ping", E("Ping:Ping", E("Ping:HeartbeatInterval", "abc"))).text("Ping:Status") == "4"
    assert phone.post("FolderSync", E("FolderHierarchy:FolderSync")).text("FolderHierarchy:Status") == "10"
    bad_cal = E("AirSync:Add", E("AirSync:ClientId", "c1"), E("AirSync:ApplicationData",
                                                               E("Calendar:StartTime", "20260101T100000Z"),
                                                               E("Calendar:EndTime", "20250101T100000Z"),
                                                               E("Calendar:Recurrence", E("Calendar:Type", "9"))))
    cal = phone.folder_of_type(8)
    phone.sync(cal, "0")
    reply = phone.sync(cal, commands=[bad_cal])
    assert collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:Status") == "6"
    assert world.default_folder(world.alice, Module.CALENDAR) == int(cal)


@SQLITE_ONLY
def test_bad_query_strings(running) -> None:  # type: ignore[no-untyped-def]
    from tests.live import http_request
    for query in ("", "?Cmd=", "?QUJD", "?" + "A" * 30, "?Cmd=Sync&User=alice&DeviceId=" + "d" * 80 + "&DeviceType=x"):
        status, _, _ = http_request(running.port, "POST", "/Microsoft-Server-ActiveSync" + query,
                                    auth=("alice", "alice-pw"), headers={"MS-ASProtocolVersion": "14.1"})
        assert status == 400, query
