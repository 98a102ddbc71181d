"""A small scripted OX WebDAV/XML client (what an OXtender sends), used by tests and conformance/."""

from __future__ import annotations

import base64
import http.client
import socket
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from lxml import etree

DAV = "DAV:"
OX = "http://www.open-xchange.org"
NS = f'xmlns:D="{DAV}" xmlns:ox="{OX}"'


def ox_xml(fields: dict[str, object]) -> str:
    """`{name: value}` -> `<ox:name>value</ox:name>`; a value starting with `<` is raw XML content."""
    parts = []
    for name, value in fields.items():
        name = name.rstrip("_")
        if value is None:
            parts.append(f"<ox:{name}/>")
        elif isinstance(value, bool):
            parts.append(f"<ox:{name}>{'true' if value else 'false'}</ox:{name}>")
        elif isinstance(value, str) and value.startswith("<"):
            parts.append(f"<ox:{name}>{value}</ox:{name}>")
        else:
            parts.append(f"<ox:{name}>{escape(str(value))}</ox:{name}>")
    return "".join(parts)


def propfind_body(fields: dict[str, object], root: str = "propfind") -> str:
    return f'<?xml version="1.0" encoding="utf-8"?>\r\n<D:{root} {NS}><D:prop>{ox_xml(fields)}</D:prop></D:{root}>'


def proppatch_body(sets: list[dict[str, object]]) -> str:
    inner = "".join(f"<D:set><D:prop>{ox_xml(s)}</D:prop></D:set>" for s in sets)
    return f'<?xml version="1.0" encoding="utf-8"?>\r\n<D:propertyupdate {NS}>{inner}</D:propertyupdate>'


@dataclass
class Resp:
    href: str
    status: str
    description: str
    props: dict[str, etree._Element] = field(default_factory=dict)
    element: etree._Element | None = None

    def text(self, name: str) -> str | None:
        e = self.props.get(name)
        return None if e is None else (e.text or "")

    def int(self, name: str) -> int:
        value = self.text(name)
        assert value is not None, f"{name} missing in {self.props.keys()}"
        return int(value)

    @property
    def code(self) -> int:
        return int(self.description[1:5]) if self.description.startswith("[") else 0


def parse_multistatus(body: bytes) -> list[Resp]:
    root = etree.fromstring(body)
    assert root.tag == f"{{{DAV}}}multistatus", root.tag
    out = []
    for r in root.findall(f"{{{DAV}}}response"):
        prop = r.find(f".//{{{DAV}}}prop")
        props = {etree.QName(c).localname: c for c in prop} if prop is not None else {}
        out.append(Resp(r.findtext(f"{{{DAV}}}href") or "", r.findtext(f".//{{{DAV}}}status") or "",
                        r.findtext(f".//{{{DAV}}}responsedescription") or "", props, r))
    return out


class OxClient:
    """Basic auth on the first request, then the `sessionid` cookie (as OXtender does)."""

    def __init__(self, port: int, login: str, password: str, *, always_basic: bool = False) -> None:
        self.port = port
        self.login = login
        self.password = password
        self.always_basic = always_basic
        self.cookie: str | None = None

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        all_headers = {"Content-Type": "text/xml; charset=utf-8", **(headers or {})}
        if self.cookie and not self.always_basic:
            all_headers["Cookie"] = f"sessionid={self.cookie}"
        else:
            token = base64.b64encode(f"{self.login}:{self.password}".encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
            for name, value in resp.getheaders():
                if name.lower() == "set-cookie" and value.startswith("sessionid="):
                    cookie = value.split(";", 1)[0].split("=", 1)[1]
                    self.cookie = cookie or None
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def propfind(self, servlet: str, fields: dict[str, object], root: str = "propfind",
                 depth0: bool = False) -> list[Resp]:
        headers = {"Depth": "0"} if depth0 else {}
        status, _, body = self.request("PROPFIND", f"/servlet/webdav.{servlet}", propfind_body(fields, root), headers)
        assert status == 207, (status, body[:300])
        return parse_multistatus(body)

    def proppatch(self, servlet: str, *sets: dict[str, object]) -> list[Resp]:
        status, _, body = self.request("PROPPATCH", f"/servlet/webdav.{servlet}", proppatch_body(list(sets)))
        assert status == 207, (status, body[:300])
        return parse_multistatus(body)

    def sync(self, servlet: str, folder_id: int | None, lastsync: int = 0,
             mode: str = "NEW_AND_MODIFIED,DELETED") -> list[Resp]:
        fields: dict[str, object] = {} if folder_id is None else {"folder_id": folder_id}
        fields.update(lastsync=lastsync, objectmode=mode)
        return self.propfind(servlet, fields)


class UdpClient:
    """One UDP socket that registers and listens (NAT-friendly, like the OXtender)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)

    def register(self, user_id: int, context_id: int, timeout: float = 10) -> bytes | None:
        payload = f"1\x01{user_id}\x01{context_id}".encode()
        self.sock.sendto(b"1337\x01%d\x01" % len(payload) + payload, ("127.0.0.1", self.port))
        return self.recv(timeout)

    def recv(self, timeout: float = 10) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(2048)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


OX_SERVER = {"http_endpoint": "tcp:0:interface=127.0.0.1", "udp_port": 0, "udp_interface": "127.0.0.1"}
"""`server` section for live_server: ephemeral HTTP and UDP ports on loopback."""
