"""A scripted ActiveSync client over real HTTP, built on our WBXML codec (tests and conformance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oxsync.eas.wbxml import E, Element, decode, encode
from tests.live import http_request


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes
    body: Element | None

    def text(self, path: str) -> str | None:
        """Text of the first element along a path of tags ("AirSync:Collections/AirSync:Collection")."""
        node = self.body
        for tag in path.split("/"):
            if node is None:
                return None
            node = node.find(tag)
        return node.value_text() if node is not None else None


@dataclass
class EasClient:
    port: int
    user: str
    password: str
    device_id: str = "testdevice01"
    device_type: str = "iPhone"
    version: str = "14.1"
    user_agent: str = "Apple-iPhone9C1/1402.100"
    policy_key: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    prefix: str = ""
    """Before /Microsoft-Server-ActiveSync (SOGo serves it under /SOGo)."""

    def post(self, cmd: str, body: Element | bytes | None = None, *, params: str = "",
             headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
             timeout: float = 30) -> Reply:
        path = (f"{self.prefix}/Microsoft-Server-ActiveSync?Cmd={cmd}&User={self.user}&DeviceId={self.device_id}"
                f"&DeviceType={self.device_type}{params}")
        all_headers = {"MS-ASProtocolVersion": self.version, "User-Agent": self.user_agent,
                       "Content-Type": "application/vnd.ms-sync.wbxml"}
        if self.policy_key is not None:
            all_headers["X-MS-PolicyKey"] = self.policy_key
        all_headers.update(headers or {})
        data = encode(body) if isinstance(body, Element) else body
        status, got, raw = http_request(self.port, "POST", path, auth=auth or (self.user, self.password), body=data,
                                        headers=all_headers, timeout=timeout)
        parsed = decode(raw) if raw and got.get("content-type", "").startswith("application/vnd.ms-sync.wbxml") else None
        return Reply(status, got, raw, parsed)

    # ------------------------------------------------------------ flows

    def provision(self) -> str:
        first = self.post("Provision", E("Provision:Provision",
                                         E("Settings:DeviceInformation", E("Settings:Set", E("Settings:Model", "iPhone9C1"),
                                                                           E("Settings:OS", "iOS 16"))),
                                         E("Provision:Policies", E("Provision:Policy",
                                                                   E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")))))
        assert first.status == 200, first.raw
        temp = first.text("Provision:Policies/Provision:Policy/Provision:PolicyKey")
        assert temp
        second = self.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
            "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"),
            E("Provision:PolicyKey", temp), E("Provision:Status", "1")))))
        final = second.text("Provision:Policies/Provision:Policy/Provision:PolicyKey")
        assert final and final != temp
        self.policy_key = final
        return final

    def folder_sync(self, key: str = "0") -> tuple[str, dict[str, dict[str, str]]]:
        reply = self.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
        assert reply.body is not None, reply.raw
        assert reply.text("FolderHierarchy:Status") == "1", reply.body
        folders = {}
        changes = reply.body.find("FolderHierarchy:Changes")
        for add in changes.findall("FolderHierarchy:Add") if changes is not None else []:
            folders[add.findtext("FolderHierarchy:ServerId", "")] = {
                "parent": add.findtext("FolderHierarchy:ParentId", ""), "name": add.findtext("FolderHierarchy:DisplayName", ""),
                "type": add.findtext("FolderHierarchy:Type", "")}
        new_key = reply.text("FolderHierarchy:SyncKey") or ""
        self.keys["hierarchy"] = new_key
        return new_key, folders

    def folder_of_type(self, kind: int) -> str:
        _, folders = self.folder_sync("0")
        return next(k for k, v in folders.items() if v["type"] == str(kind))

    def sync(self, collection_id: str, key: str | None = None, *, window: int | None = None,
             commands: list[Element] | None = None, options: list[Element] | None = None,
             get_changes: bool | None = None, extra: list[Element] | None = None) -> Reply:
        key = key if key is not None else self.keys.get(collection_id, "0")
        coll = E("AirSync:Collection", E("AirSync:SyncKey", key), E("AirSync:CollectionId", collection_id))
        if get_changes is not None:
            coll.append(E("AirSync:GetChanges", "1" if get_changes else "0"))
        if window is not None:
            coll.append(E("AirSync:WindowSize", str(window)))
        if options:
            coll.append(E("AirSync:Options", *options))
        if commands:
            coll.append(E("AirSync:Commands", *commands))
        body = E("AirSync:Sync", E("AirSync:Collections", coll), *(extra or []))
        reply = self.post("Sync", body)
        new_key = reply.text("AirSync:Collections/AirSync:Collection/AirSync:SyncKey")
        if new_key:
            self.keys[collection_id] = new_key
        return reply


def collection(reply: Reply) -> Element:
    assert reply.body is not None, (reply.status, reply.raw)
    coll = reply.body.find("AirSync:Collections")
    assert coll is not None, reply.body
    found = coll.find("AirSync:Collection")
    assert found is not None
    return found


def items(reply: Reply, kind: str = "Add") -> dict[str, Element]:
    """ServerId -> ApplicationData of the Add (or Change) commands in a Sync reply."""
    commands = collection(reply).find("AirSync:Commands")
    out = {}
    for cmd in commands.findall(f"AirSync:{kind}") if commands is not None else []:
        out[cmd.findtext("AirSync:ServerId", "")] = cmd.find("AirSync:ApplicationData")
    return out


def server_ids(reply: Reply, kind: str) -> list[str]:
    commands = collection(reply).find("AirSync:Commands")
    return [c.findtext("AirSync:ServerId", "") for c in commands.findall(f"AirSync:{kind}")] if commands is not None else []


def client(running: Any, user: str = "alice", password: str = "alice-pw", **kw: Any) -> EasClient:
    return EasClient(running.port, user, password, **kw)



def prime_devices(store: Any, tenant_id: int, user_id: int, folder: int, devices: list[str],
                  policy_key: str = "4242") -> None:
    """Devices already provisioned and synced to `folder`'s current revision, with the Ping parameters
    they sent before (heartbeat 900, that folder): a Ping of theirs parks at once and writes nothing."""
    import time

    from oxsync.eas import state

    with store.session(tenant_id, user_id, write=True) as session:
        rev = session.folder_revision(folder)[0]
        for device in devices:
            session.put_state(device, "", {"type": "iPhone", "policy_key": policy_key, "policy_state": "provisioned",
                                           "last_seen": int(time.time()), "ua": "bench", "version": "14.1"})
            session.put_state(device, state.collection_key(str(folder)), {
                "key": "{primed}1", "prev_key": None, "base": rev, "base_ms": 0, "known": "", "pending": None,
                "echo": {}, "filter": 0})
            session.put_state(device, state.LAST_PING, {"heartbeat": 900, "folders": [str(folder)]})
