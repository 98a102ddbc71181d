"""Malformed cookies and headers from unauthenticated clients: never a 500, never an error log line.

A `sessionid` cookie with non-ASCII bytes used to answer 500 and log a critical traceback per request,
so anyone could flood the logs without credentials (issue 10 §3).
"""

from __future__ import annotations

import base64
import logging
import socket

import pytest

from oxsync.dialects import install_all
from oxsync.ox.auth import SessionCookies

JUNK = [b"\xff\xfe\x80", "é€".encode(), b"v1.\xd9\xa1.\xd9\xa2.99999999999.AAAA", b"v1.1.2.3.\xff",
        b"v1.1.2.3.4.5", b"\x00\x01", b"=" * 300, b"v1." + b"9" * 400 + b".1.1.x"]
PATHS = [(b"PROPFIND", b"/servlet/webdav.folders"), (b"GET", b"/servlet/webdav.version"),
         (b"PROPFIND", b"/dav/"), (b"OPTIONS", b"/Microsoft-Server-ActiveSync"),
         (b"POST", b"/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=a&DeviceId=d&DeviceType=t"),
         (b"GET", b"/servlet/webdav.freebusy?username=alice&server=example.com"), (b"GET", b"/health")]


def raw_request(port: int, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        sock.sendall(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + head + b"\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("value", JUNK)
def test_junk_cookie_is_not_a_session(value: bytes) -> None:
    cookies = SessionCookies(b"secret", 3600)
    assert cookies.verify(value, "127.0.0.1") is None
    assert cookies.verify(value.decode("latin-1"), "127.0.0.1") is None
    good = cookies.issue(1, 2, "127.0.0.1")
    assert cookies.verify(good, "127.0.0.1") == (1, 2)
    assert cookies.verify(good.encode(), "127.0.0.1") == (1, 2)


def test_malformed_headers_answer_without_server_error(live_server, store, world, caplog) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all)
    caplog.set_level(logging.WARNING)
    statuses = []
    for value in JUNK:
        headers = [(b"Cookie", b"sessionid=" + value), (b"User-Agent", value), (b"Depth", value),
                   (b"MS-ASProtocolVersion", value), (b"X-MS-PolicyKey", value), (b"Content-Type", value),
                   (b"If-Match", value), (b"Destination", value)]
        for method, path in PATHS:
            statuses.append(raw_request(running.port, method, path, headers))
            statuses.append(raw_request(running.port, method, path, [*headers, (b"Authorization", b"Basic " + value)]))
        token = base64.b64encode(b"alice:" + value)  # non-UTF-8 password: just a failed login
        statuses.append(raw_request(running.port, b"PROPFIND", b"/servlet/webdav.folders",
                                    [(b"Authorization", b"Basic " + token), (b"Cookie", b"sessionid=" + value)]))
    assert statuses and all(s < 500 for s in statuses), statuses
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
