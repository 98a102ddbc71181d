"""`make serve` (oxsync serve --demo) starts a demo Dovecot with the demo users' mail and prints the IMAP settings."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from oxsync.eas.wbxml import E
from tests import eas_client
from tests.eas_client import EasClient, collection, items
from tests.serveproc import Serve


def _each_process(port: int) -> dict[int, http.client.HTTPConnection]:
    """One kept-alive connection per serving process (`processes = "auto"`: one per usable core)."""
    wanted, found = min(len(os.sched_getaffinity(0)), 8), {}
    for _ in range(400):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/health")
        pid = int(json.loads(conn.getresponse().read())["process"])
        if pid in found:
            conn.close()
        else:
            found[pid] = conn
        if len(found) == wanted:
            return found
        time.sleep(0.05)  # the copies start once the first process is ready
    raise AssertionError(f"{len(found)} of {wanted} serving processes answered")


def test_serve_demo_has_real_mail_for_imap_clients_and_phones(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """In every serving process: the copies serve with the first process's settings, the demo's mail
    server included (they start no demo of their own)."""
    work = Path(tempfile.mkdtemp(prefix="oxsync-demo-"))
    work.chmod(0o755)  # the demo's Dovecot runs as the dovecot user under root: it must reach ./var
    serve = Serve("serve", "--demo", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", "0", cwd=work)
    imap_port = None
    try:
        printed = serve.wait_for("User name in every client", timeout=90)
        # the port the server bound, as it prints it (none chosen before: another process could take it)
        bound = re.search(r"CalDAV/CardDAV discovery: http://127\.0\.0\.1:(\d+)/", printed)
        assert bound, printed
        http_port = int(bound.group(1))
        match = re.search(r"Mail in Outlook/Thunderbird \(IMAP\): server (\S+), port (\d+)", printed)
        assert match, printed
        imap_port = int(match.group(2))
        passwords = (work / "var" / "demo-passwords.txt").read_text().split()
        login, password = passwords[0], passwords[1]
        address = f"{login}@example.com"
        imap = IMAPClient(match.group(1), port=imap_port, ssl=False, timeout=30)
        imap.login(address, password)
        imap.select_folder("INBOX")
        assert len(imap.search()) == 3
        imap.logout()
        phone = EasClient(http_port, address, password)
        phone.provision()
        inbox = phone.folder_of_type(2)
        phone.sync(inbox, "0")
        got = items(phone.sync(inbox, window=10))
        assert "Bienvenue sur oxsync" in [d.findtext("Email:Subject") for d in got.values()]
        assert collection(phone.sync(inbox, commands=[E("AirSync:Change", E("AirSync:ServerId", next(iter(got))),
                                                        E("AirSync:ApplicationData", E("Email:Read", "1")))])
                          ).findtext("AirSync:Status") == "1"
        for conn in _each_process(http_port).values():
            def pinned(port: int, method: str, path: str, *, auth: Any = None, body: Any = None, headers: Any = None,
                       timeout: float = 30, conn: http.client.HTTPConnection = conn) -> tuple[int, dict[str, str], bytes]:
                token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
                conn.request(method, path, body=body, headers={**(headers or {}), "Authorization": f"Basic {token}"})
                response = conn.getresponse()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            monkeypatch.setattr(eas_client, "http_request", pinned)  # this process answers the phone
            inbox = phone.folder_of_type(2)
            phone.sync(inbox, "0")
            assert "Bienvenue sur oxsync" in [d.findtext("Email:Subject") for d in items(phone.sync(inbox, window=10)).values()]
    finally:
        assert serve.stop() == 0
        if imap_port is not None:
            with socket.socket() as sock:  # the demo Dovecot stopped with the server
                assert sock.connect_ex(("127.0.0.1", imap_port)) != 0


def test_demo_ports_are_distinct_when_its_fixed_ports_are_taken(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With 10143/10024/14190 taken the demo picks free ports; three pick-and-close calls in a row may get
    one port back twice, which doveconf refuses ("duplicate listener"): they are held until all are chosen."""
    from oxsync.mail import demo

    monkeypatch.setattr(demo, "_taken", lambda port: True)
    monkeypatch.setattr(demo, "free_port", lambda: 40000, raising=False)  # the kernel's worst case
    ports = demo._ports()
    assert len({ports.imap, ports.lmtp, ports.sieve}) == 3, ports
    assert not set(demo.DEMO_PORTS) & {ports.imap, ports.lmtp, ports.sieve}


def test_the_demo_mail_server_starts_on_other_ports_when_one_was_taken(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The demo's ports are chosen before its Dovecot binds them (its fixed ones if nobody answers there,
    else free ones): a port taken meanwhile (here IMAP's, bound by another socket that does not listen)
    makes Dovecot refuse to start, and it starts again on fresh free ports."""
    from oxsync.mail import demo
    from oxsync.mail.dovecot import Listeners
    from oxsync.mail.runner import distinct_ports

    work = Path(tempfile.mkdtemp(prefix="oxsync-demo-"))
    work.chmod(0o755)  # the demo's Dovecot runs as the dovecot user under root: it must reach ./var
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        _, lmtp, sieve = distinct_ports(3)
        monkeypatch.setattr(demo, "_ports", lambda: Listeners(taken, lmtp, sieve))
        proc = demo.start_demo_dovecot(work / "var", f"sqlite:///{work}/var/oxsync.db", [])
        assert proc is not None, "the demo mail server did not start"
        try:
            assert proc.listeners.imap != taken
            with socket.create_connection(("127.0.0.1", proc.listeners.imap), timeout=10) as sock:
                assert sock.makefile("rb").readline().startswith(b"* OK")
        finally:
            proc.stop()
