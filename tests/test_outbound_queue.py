"""The outbound mail queue in the store, worked by `process_one` against a real SMTP sink (aiosmtpd):
idempotent keys, backoff, permanent failures, leases of dead workers, concurrent claims, send-as, CLI."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from oxsync.mail.outbound import process_one
from oxsync.store import outbound, sending
from oxsync.store.errors import PermissionDenied
from oxsync.store.outbound import backoff_ms
from oxsync.store.tx import now_ms

MIME = b"From: alice@example.com\r\nTo: friend@elsewhere.org\r\nSubject: hi\r\nMessage-ID: <m1@example.com>\r\n\r\nHello\r\n"


def queue(world, key: str = "k1", message: bytes = MIME, sender: str = "alice@example.com") -> bool:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        return session.send_mail(key, sender, ["friend@elsewhere.org"], message, "hi")


def test_same_key_is_queued_and_sent_once(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    woken = []
    relayed.add_mail_listener(lambda: woken.append(1))
    assert queue(world) is True and woken == [1]
    assert queue(world) is False and woken == [1]  # nothing new: nobody is woken
    sent = process_one(relayed, "node-a")
    assert sent is not None and sent.state == "sent"
    assert process_one(relayed, "node-a") is None
    assert queue(world) is False  # a key stays known after sending
    assert process_one(relayed, "node-a") is None
    assert len(sink.messages) == 1
    got = sink.messages[0]
    assert got.sender == "alice@example.com" and got.recipients == ["friend@elsewhere.org"]
    assert got.data.replace(b"\r\n", b"\n") == MIME.replace(b"\r\n", b"\n")  # as queued, byte for byte
    [row] = relayed.outbound.list(world.tenant_id)
    assert (row.state, row.attempts, row.sent_ms is not None) == ("sent", 1, True)


def test_enqueue_rolls_back_with_its_transaction(relayed, world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), world.as_user(world.alice, write=True) as session:
        session.send_mail("k-rolled", "alice@example.com", ["x@elsewhere.org"], MIME)
        raise RuntimeError("the request failed after queueing")
    assert relayed.outbound.list() == []


def test_temporary_failures_back_off_then_send(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    settings = relayed.settings.outbound
    queue(world)
    sink.refuse += ["451 4.3.0 try later", "421 4.7.0 busy"]
    t0 = now_ms()
    assert process_one(relayed, "n", now=t0).state == "queued"
    [row] = relayed.outbound.list()
    assert row.attempts == 1 and row.next_try_ms == t0 + backoff_ms(settings, 1) and "451" in row.last_error
    assert process_one(relayed, "n", now=t0 + backoff_ms(settings, 1) - 1) is None  # not due yet
    t1 = t0 + backoff_ms(settings, 1)
    assert process_one(relayed, "n", now=t1).state == "queued"
    assert relayed.outbound.list()[0].next_try_ms == t1 + backoff_ms(settings, 2) == t1 + 2 * backoff_ms(settings, 1)
    assert process_one(relayed, "n", now=t1 + backoff_ms(settings, 2)).state == "sent"
    assert len(sink.messages) == 1 and relayed.outbound.list()[0].attempts == 3


def test_permanent_failure_is_visible_and_retried_by_hand(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    queue(world)
    sink.refuse.append("550 5.7.1 relaying denied")
    assert process_one(relayed, "n").state == "failed"
    assert process_one(relayed, "n", now=now_ms() + 10**9) is None  # failed mail is not retried by itself
    [row] = relayed.outbound.list(states=["failed"])
    assert "550" in row.last_error
    relayed.outbound.retry(row.id)
    assert process_one(relayed, "n").state == "sent" and len(sink.messages) == 1
    with pytest.raises(Exception, match="not sent again"):
        relayed.outbound.retry(row.id)


def test_attempts_are_bounded(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    relayed.settings = replace(relayed.settings, outbound=replace(relayed.settings.outbound, max_attempts=2))
    queue(world)
    sink.refuse += ["451 later"] * 3
    assert process_one(relayed, "n").state == "queued"
    assert process_one(relayed, "n", now=now_ms() + 10**9).state == "failed"


def test_lease_of_a_dead_worker_runs_out_then_another_claims(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    queue(world)
    t0 = now_ms()
    [claimed] = relayed.outbound.claim("dead-node", now=t0)
    assert process_one(relayed, "live-node", now=t0 + 1000) is None  # leased: skipped
    later = t0 + int(relayed.settings.outbound.lease_seconds * 1000) + 1
    again = process_one(relayed, "live-node", now=later)
    assert again is not None and again.id == claimed.id and again.state == "sent"
    assert relayed.outbound.mark_sent(claimed.id, "dead-node") is False  # a late answer changes nothing
    assert relayed.outbound.list()[0].attempts == 2 and len(sink.messages) == 1


def test_concurrent_claims_never_share_a_row(store, world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        for i in range(40):
            session.send_mail(f"c{i}", "alice@example.com", ["x@elsewhere.org"], MIME)
    got: list[list[int]] = [[] for _ in range(4)]

    def worker(n: int) -> None:
        while True:
            rows = store.outbound.claim(f"node-{n}", limit=3)
            if not rows:
                return
            got[n].extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [i for ids in got for i in ids]
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_no_relay_keeps_the_mail_queued(store, world) -> None:  # type: ignore[no-untyped-def]
    queue(world)
    assert process_one(store, "n").state == "queued"
    assert "no SMTP relay" in store.outbound.list()[0].last_error


def test_send_as_addresses(relayed, world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied):
        queue(world, "k-alias", sender="sales@example.com")
    with relayed.transaction(world.tenant_id, write=True) as tx:
        from oxsync.store import accounts

        accounts.add_alias(tx, world.alice, "ali@example.com")  # a login alias does not send
    with pytest.raises(PermissionDenied):
        queue(world, "k-alias", sender="ali@example.com")
    with relayed.transaction(world.tenant_id, write=True) as tx:
        sending.add_send_as(tx, world.alice, "Sales@Example.com")
    assert queue(world, "k-alias", sender="sales@example.com") is True
    with world.as_user(world.alice) as session:
        assert session.allowed_senders() == ["alice@example.com", "sales@example.com"]
    with world.as_user(world.bob, write=True) as session, pytest.raises(PermissionDenied):
        session.send_mail("k-bob", "sales@example.com", ["x@elsewhere.org"], MIME)
    assert [m.key for m in relayed.outbound.list()] == ["k-alias"]


def test_cli_queue_retry_drop_and_aliases(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from oxsync.cli import main
    from oxsync.config import Settings, StoreSettings
    from oxsync.store.api import Store

    url = f"sqlite:///{tmp_path}/cli.db"

    def run(*argv: str) -> tuple[int, str]:
        code = main(["--db", url, *argv])
        return code, capsys.readouterr().out

    assert run("init", "--domain", "example.com")[0] == 0
    assert run("user", "add", "alice", "--password", "pw-alice-1")[0] == 0
    assert run("user", "alias", "add", "alice", "sales@example.com", "--send-as")[0] == 0
    assert run("user", "alias", "add", "alice", "ali@example.com")[0] == 0
    code, text = run("user", "alias", "list", "alice", "--json")
    assert json.loads(text) == {"primary": "alice@example.com", "login": ["ali@example.com"],
                                "send_as": ["ali@example.com", "sales@example.com"]}
    assert run("user", "alias", "remove", "alice", "ali@example.com", "--send-as")[0] == 0
    assert json.loads(run("user", "alias", "list", "alice", "--json")[1])["send_as"] == ["sales@example.com"]
    store = Store(Settings(store=StoreSettings(url=url, thread_pool_size=1)))
    tenant = store.tenant("example.com")
    with store.session(tenant.id, 1, write=True) as session:
        session.send_mail("q1", "sales@example.com", ["x@elsewhere.org"], MIME, "hi")
        session.send_mail("q2", "alice@example.com", ["y@elsewhere.org"], MIME, "hello")
    store.dispose()
    code, text = run("mail", "queue", "--json")
    listed = json.loads(text)
    assert code == 0 and [m["key"] for m in listed] == ["q2", "q1"] and {m["state"] for m in listed} == {"queued"}
    assert "sales@example.com" in run("mail", "queue")[1]
    assert run("mail", "drop", str(listed[0]["id"]))[0] == 0
    assert [m["state"] for m in json.loads(run("mail", "queue", "--json")[1])] == ["dropped", "queued"]
    assert run("mail", "retry", str(listed[0]["id"]))[0] == 0
    assert json.loads(run("mail", "queue", "--state", "queued", "--json")[1])[0]["key"] == "q2"
    assert run("mail", "drop", "999")[0] == 1
    assert outbound.QUEUED == "queued"


def test_attempts_are_counted_for_metrics(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    from oxsync.metrics import OUTBOUND_ATTEMPTS

    def count(outcome: str) -> float:
        return OUTBOUND_ATTEMPTS.labels("sendmail", outcome)._value.get()

    sent, waiting = count("sent"), count("queued")
    queue(world)
    sink.refuse.append("451 later")
    process_one(relayed, "n")
    process_one(relayed, "n", now=now_ms() + 10**8)
    assert (count("sent") - sent, count("queued") - waiting) == (1, 1)
