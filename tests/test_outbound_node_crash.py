"""kill -9 a real `oxsync serve` node while its queue workers are inside SMTP transactions (issue 15).

Two nodes on one PostgreSQL work one outbound queue against a real SMTP relay (aiosmtpd). The relay
takes every message but holds its final answer to DATA, so each node's workers are caught between
"the relay has it" and "the node recorded it". One node is killed with SIGKILL there. The promise
(docs/outbound-mail.md): every queued mail arrives; the only mails that arrive twice are the ones the
dead node had in flight, and their second copy is byte-identical (same Message-ID); the other node's
held mails, answered after the kill, are recorded and never resent.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.sim.nodes import start_nodes
from tests.smtp_sink import SmtpSink
from tests.world import build_world

MAILS = 30
WORKERS = 2
DEADLINE_SECONDS = 60.0


def _wait(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # two nodes share a queue on PostgreSQL only
def test_kill_9_a_node_mid_queue(backend: str, store, store_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    world = build_world(store)
    with world.as_user(world.alice, write=True) as session:
        for i in range(MAILS):
            message = (f"From: alice@example.com\r\nTo: r{i}@elsewhere.org\r\nSubject: mail {i}\r\n"
                       f"Message-ID: <crash-{i}@example.com>\r\n\r\nbody {i}\r\n").encode()
            session.send_mail(f"crash-{i}", "alice@example.com", [f"r{i}@elsewhere.org"], message, f"mail {i}")
    sink = SmtpSink()
    sink.hold = threading.Event()
    config = (f'[outbound]\nsmtp_relay = "127.0.0.1:{sink.port}"\nworkers = {WORKERS}\npoll_seconds = 0.3\n'
              f'lease_seconds = 3.0\nretry_base_seconds = 0.5\n')
    cluster = start_nodes(store_url, 2, tmp_path, config)
    try:
        _wait(lambda: sink.in_data >= 2 * WORKERS, "both nodes' workers inside SMTP")
        victim, survivor = cluster.nodes
        in_flight = {m.parsed()["Message-ID"] for m in sink.messages}
        assert len(in_flight) == 2 * WORKERS
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)
        sink.hold.set()
        _wait(lambda: all(m.state == "sent" for m in store.outbound.list(limit=MAILS)), "every mail recorded as sent")
        assert survivor.process.poll() is None
    finally:
        sink.hold.set()
        cluster.stop()
        sink.close()
    received = Counter(m.parsed()["Message-ID"] for m in sink.messages)
    assert set(received) == {f"<crash-{i}@example.com>" for i in range(MAILS)}  # nothing lost
    twice = {mid for mid, n in received.items() if n > 1}
    assert max(received.values()) == 2
    assert len(twice) == WORKERS and twice <= in_flight  # exactly the dead node's in-flight mails
    for mid in twice:
        copies = [m.data for m in sink.messages if m.parsed()["Message-ID"] == mid]
        assert copies[0] == copies[1]
    rows = store.outbound.list(limit=MAILS)
    assert sorted(r.attempts for r in rows).count(2) == WORKERS and all(r.attempts in (1, 2) for r in rows)
