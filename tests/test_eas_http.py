"""ActiveSync HTTP layer, provisioning and folder hierarchy, over real loopback HTTP."""

from __future__ import annotations

import base64
import struct

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E, decode
from oxsync.model import Protocol
from oxsync.store import accounts
from tests.eas_client import EasClient, client
from tests.live import http_request

EAS = "/Microsoft-Server-ActiveSync"


SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""Protocol-level behaviour that does not depend on the database: run once, on SQLite."""

def test_the_command_table_binds_every_advertised_command() -> None:
    """One explicit table (oxsync.eas.commands.HANDLERS) binds every command advertised in
    MS-ASProtocolCommands, and only those: a command cannot exist by an import side effect alone."""
    from oxsync.eas import protocol
    from oxsync.eas.commands import HANDLERS

    assert set(HANDLERS) == set(protocol.COMMANDS)
    assert all(callable(handler) and handler.__module__.startswith("oxsync.eas.commands.")
               for handler in HANDLERS.values())


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install)


@SQLITE_ONLY
def test_options_headers_and_auth(running) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = http_request(running.port, "OPTIONS", EAS)
    assert status == 401 and body == b""
    status, headers, _ = http_request(running.port, "OPTIONS", EAS, auth=("alice", "alice-pw"))
    assert status == 200
    assert "16.1" in headers["ms-asprotocolversions"] and "14.1" in headers["ms-asprotocolversions"]
    assert "Sync" in headers["ms-asprotocolcommands"].split(",") and "Provision" in headers["ms-asprotocolcommands"]
    assert headers["ms-server-activesync"]
    status, _, _ = http_request(running.port, "OPTIONS", EAS, auth=("alice", "wrong"))
    assert status == 401  # never 403 for a bad password: Android would re-provision


@SQLITE_ONLY
def test_post_requires_auth_and_device(running) -> None:  # type: ignore[no-untyped-def]
    c = client(running)
    assert c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")),
                  auth=("alice", "nope")).status == 401
    status, _, _ = http_request(running.port, "POST", f"{EAS}?Cmd=FolderSync&User=alice&DeviceType=iPhone",
                                auth=("alice", "alice-pw"), headers={"MS-ASProtocolVersion": "14.1"})
    assert status == 400
    assert c.post("Bogus").status == 400
    bad_version = c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")),
                         headers={"MS-ASProtocolVersion": "9.9"})
    assert bad_version.status == 400


@SQLITE_ONLY
def test_mobile_right_and_suspension(running, store, world) -> None:  # type: ignore[no-untyped-def]
    with store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.bob, protocols=[Protocol.DAV])
        accounts.update_user(tx, world.carol, active=False)
    assert client(running, "bob", "bob-pw").post("Provision").status == 403
    assert client(running, "carol", "carol-pw").post("Provision").status == 403


@SQLITE_ONLY
def test_gate_before_provisioning_by_version(running) -> None:  # type: ignore[no-untyped-def]
    body = E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))
    old = client(running, version="12.1")
    assert old.post("FolderSync", body).status == 449
    new = client(running, version="14.1")
    reply = new.post("FolderSync", body)
    assert reply.status == 200 and reply.text("FolderHierarchy:Status") == "142"
    new.policy_key = "12345"
    assert new.post("FolderSync", body).text("FolderHierarchy:Status") == "144"
    new.provision()
    assert new.post("FolderSync", body).text("FolderHierarchy:Status") == "1"
    old.provision()
    assert old.post("FolderSync", body).status == 200


def test_provision_round_trips_and_device_information(running, store, world) -> None:  # type: ignore[no-untyped-def]
    c = client(running, version="16.1")
    first = c.post("Provision", E("Provision:Provision",
                                  E("Settings:DeviceInformation", E("Settings:Set", E("Settings:Model", "Pixel 9"),
                                                                    E("Settings:FriendlyName", "Phone"))),
                                  E("Provision:Policies", E("Provision:Policy",
                                                            E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")))))
    assert first.text("Provision:Status") == "1"
    assert first.text("Settings:DeviceInformation/Settings:Status") == "1"
    policy = first.body.find("Provision:Policies").find("Provision:Policy")
    assert policy.find("Provision:Data").find("Provision:EASProvisionDoc") is not None
    temp = policy.findtext("Provision:PolicyKey")
    assert temp and temp != "0"
    wrong = c.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
        "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"), E("Provision:PolicyKey", "1"),
        E("Provision:Status", "1")))))
    assert wrong.text("Provision:Policies/Provision:Policy/Provision:Status") == "5"
    ack = c.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
        "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"), E("Provision:PolicyKey", temp),
        E("Provision:Status", "1")))))
    final = ack.text("Provision:Policies/Provision:Policy/Provision:PolicyKey")
    assert final and final != temp
    with world.as_user(world.alice) as session:
        record = session.get_state(c.device_id, "")
    assert record["info"]["model"] == "Pixel 9" and record["policy_key"] == final and record["type"] == "iPhone"


def test_remote_wipe_flag(running, store, world) -> None:  # type: ignore[no-untyped-def]
    c = client(running)
    c.provision()
    with world.as_user(world.alice, write=True) as session:
        record = session.get_state(c.device_id, "")
        session.put_state(c.device_id, "", {**record, "wipe": "requested"})
    body = E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))
    assert c.post("FolderSync", body).text("FolderHierarchy:Status") == "140"
    reply = c.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
        "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")))))
    assert reply.body.find("Provision:RemoteWipe") is not None
    done = c.post("Provision", E("Provision:Provision", E("Provision:RemoteWipe", E("Provision:Status", "1"))))
    assert done.text("Provision:Status") == "1"
    with world.as_user(world.alice) as session:
        assert session.get_state(c.device_id, "")["wipe"] == "done"


@SQLITE_ONLY
def test_base64_query_form(running) -> None:  # type: ignore[no-untyped-def]
    c = client(running)
    key = c.provision()
    device = b"b64device"
    blob = bytes([141, 9]) + struct.pack("<H", 0x0409) + bytes([len(device)]) + device + bytes([4]) + \
        struct.pack("<I", 0) + bytes([6]) + b"iPhone"
    # a policy key of 0 is "not provisioned"
    status, headers, raw = http_request(running.port, "POST", f"{EAS}?{base64.b64encode(blob).decode()}",
                                        auth=("alice", "alice-pw"), body=b"\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01",
                                        headers={"Content-Type": "application/vnd.ms-sync.wbxml"})
    assert status == 200 and decode(raw).findtext("FolderHierarchy:Status") == "142"
    other = EasClient(running.port, "alice", "alice-pw", device_id=device.decode())
    other.provision()
    blob = blob[:5 + len(device)] + bytes([4]) + struct.pack("<I", int(other.policy_key)) + bytes([6]) + b"iPhone"
    status, _, raw = http_request(running.port, "POST", f"{EAS}?{base64.b64encode(blob).decode()}",
                                  auth=("alice", "alice-pw"), body=b"\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01\x01",
                                  headers={"Content-Type": "application/vnd.ms-sync.wbxml"})
    assert status == 200 and decode(raw).findtext("FolderHierarchy:Status") == "1"
    assert key


@SQLITE_ONLY
def test_autodiscover_schemas(running) -> None:  # type: ignore[no-untyped-def]
    request = ('<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/'
               'requestschema/2006"><Request><EMailAddress>alice@example.com</EMailAddress><AcceptableResponseSchema>'
               'http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006'
               '</AcceptableResponseSchema></Request></Autodiscover>')
    status, _, body = http_request(running.port, "POST", "/autodiscover/autodiscover.xml", auth=("alice", "alice-pw"),
                                   body=request, headers={"Content-Type": "text/xml"})
    assert status == 200 and b"<Type>MobileSync</Type>" in body and b"/Microsoft-Server-ActiveSync</Url>" in body
    outlook = request.replace("mobilesync/responseschema/2006", "outlook/responseschema/2006a")
    status, _, body = http_request(running.port, "POST", "/Autodiscover/Autodiscover.xml", auth=("alice", "alice-pw"),
                                   body=outlook)
    assert status == 200 and b"outlook/responseschema/2006a" in body and b"<Protocol>" in body
    other = request.replace("mobilesync/responseschema/2006", "other/responseschema/2006")
    _, _, body = http_request(running.port, "POST", "/autodiscover/autodiscover.xml", auth=("alice", "alice-pw"),
                              body=other)
    assert b"<ErrorCode>601</ErrorCode>" in body
    status, _, _ = http_request(running.port, "POST", "/autodiscover/autodiscover.xml", body=request)
    assert status == 401


def test_folder_sync_hierarchy_and_replay(running, store, world) -> None:  # type: ignore[no-untyped-def]
    c = client(running)
    c.provision()
    key, folders = c.folder_sync("0")
    types = sorted(v["type"] for v in folders.values())
    for kind in ("2", "3", "4", "5", "6", "7", "8", "9"):
        assert types.count(kind) == 1, types
    again = c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    assert again.text("FolderHierarchy:SyncKey") == key and again.text("FolderHierarchy:Changes/FolderHierarchy:Count") == "0"
    from oxsync.model import Module
    from oxsync.model.folder import PRIVATE_ROOT
    with world.as_user(world.alice, write=True) as session:
        created = session.create_folder(PRIVATE_ROOT, "Clients", Module.CONTACT)
    changed = c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    new_key = changed.text("FolderHierarchy:SyncKey")
    assert new_key != key
    adds = changed.body.find("FolderHierarchy:Changes").findall("FolderHierarchy:Add")
    assert [a.findtext("FolderHierarchy:ServerId") for a in adds] == [str(created.folder.id)]
    assert adds[0].findtext("FolderHierarchy:Type") == "14"
    replay = c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    assert replay.text("FolderHierarchy:SyncKey") == new_key
    assert len(replay.body.find("FolderHierarchy:Changes").findall("FolderHierarchy:Add")) == 1
    bogus = c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "{nope}7")))
    assert bogus.text("FolderHierarchy:Status") == "9"


def test_folder_create_update_delete(running, store, world) -> None:  # type: ignore[no-untyped-def]
    c = client(running)
    c.provision()
    key, _ = c.folder_sync("0")
    created = c.post("FolderCreate", E("FolderHierarchy:FolderCreate", E("FolderHierarchy:SyncKey", key),
                                       E("FolderHierarchy:ParentId", "0"), E("FolderHierarchy:DisplayName", "Family"),
                                       E("FolderHierarchy:Type", "13")))
    assert created.text("FolderHierarchy:Status") == "1"
    server_id = created.text("FolderHierarchy:ServerId")
    key = created.text("FolderHierarchy:SyncKey")
    echo = c.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    assert echo.text("FolderHierarchy:Changes/FolderHierarchy:Count") == "0"  # not re-added to its creator
    dup = c.post("FolderCreate", E("FolderHierarchy:FolderCreate", E("FolderHierarchy:SyncKey", key),
                                   E("FolderHierarchy:ParentId", "0"), E("FolderHierarchy:DisplayName", "Family"),
                                   E("FolderHierarchy:Type", "13")))
    assert dup.text("FolderHierarchy:Status") == "2"
    renamed = c.post("FolderUpdate", E("FolderHierarchy:FolderUpdate", E("FolderHierarchy:SyncKey", key),
                                       E("FolderHierarchy:ServerId", server_id), E("FolderHierarchy:ParentId", "0"),
                                       E("FolderHierarchy:DisplayName", "Famille")))
    assert renamed.text("FolderHierarchy:Status") == "1"
    key = renamed.text("FolderHierarchy:SyncKey")
    with world.as_user(world.alice) as session:
        assert session.get_folder(int(server_id)).folder.title == "Famille"
    contacts = [k for k, v in c.folder_sync("0")[1].items() if v["type"] == "9"][0]
    key = c.keys["hierarchy"]
    default = c.post("FolderDelete", E("FolderHierarchy:FolderDelete", E("FolderHierarchy:SyncKey", key),
                                       E("FolderHierarchy:ServerId", contacts)))
    assert default.text("FolderHierarchy:Status") == "3"
    gone = c.post("FolderDelete", E("FolderHierarchy:FolderDelete", E("FolderHierarchy:SyncKey", key),
                                    E("FolderHierarchy:ServerId", server_id)))
    assert gone.text("FolderHierarchy:Status") == "1"
    missing = c.post("FolderDelete", E("FolderHierarchy:FolderDelete", E("FolderHierarchy:SyncKey",
                                                                         gone.text("FolderHierarchy:SyncKey")),
                                       E("FolderHierarchy:ServerId", "999999")))
    assert missing.text("FolderHierarchy:Status") == "4"


@SQLITE_ONLY
@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1"])
def test_versioned_policy_and_user_information(running, version: str) -> None:  # type: ignore[no-untyped-def]
    c = client(running, version=version, device_id=f"v{version.replace('.', '')}")
    first = c.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
        "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")))))
    doc = first.body.find("Provision:Policies").find("Provision:Policy").find("Provision:Data").find(
        "Provision:EASProvisionDoc")
    assert (doc.find("Provision:AllowCamera") is not None) == (version != "12.0")  # 12.1+ policy settings
    c.provision()
    reply = c.post("Settings", E("Settings:Settings", E("Settings:UserInformation", E("Settings:Get"))))
    get = reply.body.find("Settings:UserInformation").find("Settings:Get")
    if version == "14.1":
        assert get.find("Settings:Accounts") is not None
    else:
        assert get.find("Settings:EmailAddresses").findtext("Settings:SMTPAddress") == "alice@example.com"


@SQLITE_ONLY
@pytest.mark.parametrize("login", ["EXAMPLE\\alice", "example.com\\alice", "alice@example.com", "Alice"])
def test_windows_and_address_logins(running, login: str) -> None:  # type: ignore[no-untyped-def]
    """Outlook and Windows Mail send DOMAIN\\user; phones often the address."""
    status, _, _ = http_request(running.port, "OPTIONS", EAS, auth=(login, "alice-pw"))
    assert status == 200
    status, _, _ = http_request(running.port, "OPTIONS", EAS, auth=("other.example\\alice", "alice-pw"))
    assert status == 401  # another tenant's domain is not alice's
