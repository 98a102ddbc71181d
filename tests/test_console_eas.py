"""What the console does reaches phones at once: suspension refuses the next ActiveSync request, a
wipe (full, or account-only for EAS 16.1) is delivered by the next Provision, and the console shows the
device's confirmation."""

from __future__ import annotations

import pytest

from oxsync.eas.wbxml import E
from tests.consolehelp import PASSWORDS, ConsoleWorld, build_console_world
from tests.eas_client import EasClient


@pytest.fixture
def cw(store, live_server) -> ConsoleWorld:  # type: ignore[no-untyped-def]
    return build_console_world(store, live_server)


def _phone(cw: ConsoleWorld, version: str) -> EasClient:
    phone = EasClient(cw.http_port, "bob", PASSWORDS["bob"], device_id="BOBPHONE", version=version)
    phone.provision()
    assert phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))).status == 200
    return phone


def _ask_policy(phone: EasClient):  # type: ignore[no-untyped-def]
    return phone.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
        "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")))))


def test_suspending_in_the_console_refuses_the_phones_next_request(cw: ConsoleWorld) -> None:
    phone = _phone(cw, "14.1")  # its login is now remembered by the dialects' verified-login cache
    c = cw.browser()
    c.login("alice")
    c.post(f"/t/{cw.tenant}/accounts/{cw.ids['bob']}/status", {"active": "0"})
    refused = phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")))
    assert refused.status == 403
    c.post(f"/t/{cw.tenant}/accounts/{cw.ids['bob']}/status", {"active": "1"})
    assert phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))).status == 200


@pytest.mark.parametrize(("version", "action", "element"), [
    ("14.1", "wipe", "Provision:RemoteWipe"),
    ("16.1", "wipe_account", "Provision:AccountOnlyRemoteWipe"),
    ("14.1", "wipe_account", "Provision:RemoteWipe"),  # no account-only wipe before 16.1
])
def test_wipe_from_the_console_reaches_the_phone(cw: ConsoleWorld, version: str, action: str, element: str) -> None:
    phone = _phone(cw, version)
    c = cw.browser()
    c.login("alice")
    base = f"/t/{cw.tenant}/accounts/{cw.ids['bob']}/devices/BOBPHONE"
    assert "BOBPHONE" in c.get(f"/t/{cw.tenant}/devices").text
    c.post(f"{base}/{action}", {})
    blocked = phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")))
    assert blocked.text("FolderHierarchy:Status") == "140"
    reply = _ask_policy(phone)
    assert reply.body.find(element) is not None
    other = "Provision:RemoteWipe" if element != "Provision:RemoteWipe" else "Provision:AccountOnlyRemoteWipe"
    assert reply.body.find(other) is None
    assert 'id="cancel-wipe"' in c.get(base).text  # pending: still cancellable
    done = phone.post("Provision", E("Provision:Provision", E(element, E("Provision:Status", "1"))))
    assert done.text("Provision:Status") == "1"
    page = c.get(base).text
    assert "effectué" in page or "done" in page


def test_public_folders_right_reaches_the_phone_and_dav(cw: ConsoleWorld) -> None:
    """The right is enforced in the store: a phone's next hierarchy delta drops the public folder, and
    CalDAV/CardDAV no longer find it."""
    from oxsync.model import Module, Permission
    from oxsync.model.folder import PUBLIC_ROOT
    from oxsync.model.permissions import rights_for_level
    from tests.live import http_request

    with cw.store.session(cw.tenant, cw.ids["alice"], write=True) as session:
        folder = session.create_folder(PUBLIC_ROOT, "Company contacts", Module.CONTACT).folder
        session.set_permissions(folder.id, [*folder.permissions, Permission(0, True, rights_for_level(2))])
    phone = _phone(cw, "14.1")
    key, folders = phone.folder_sync("0")
    server_id = next(k for k, v in folders.items() if v["name"] == "Company contacts")
    dav_path = f"/dav/addressbooks/bob/{folder.id}/"
    status, _, _ = http_request(cw.http_port, "PROPFIND", dav_path, auth=("bob", PASSWORDS["bob"]),
                                headers={"Depth": "0"})
    found_before = status
    c = cw.browser()
    c.login("alice")
    c.post(f"/t/{cw.tenant}/accounts/{cw.ids['bob']}", {"proto_outlook": "on", "proto_mobile": "on",
                                                         "proto_dav": "on", "flag_sharing": "on"})
    reply = phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    deleted = [d.findtext("FolderHierarchy:ServerId") for d in reply.body.find("FolderHierarchy:Changes")
               .findall("FolderHierarchy:Delete")]
    assert deleted == [server_id]
    status, _, _ = http_request(cw.http_port, "PROPFIND", dav_path, auth=("bob", PASSWORDS["bob"]),
                                headers={"Depth": "0"})
    assert found_before == 207 and status == 404
