"""An ActiveSync pass larger than one window is planned from object versions (nothing decoded): each item
is decoded once, by the window that sends it, and the items sent are those one large window sends
(series with change exceptions and occurrences stored without their series included)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest

from oxsync.dialects import install_all
from oxsync.eas.state import IdSet
from oxsync.eas.wbxml import encode
from oxsync.model import Appointment, Module
from oxsync.store import objects as object_ops
from tests.davhelp import Dav
from tests.eas_client import EasClient, client, collection, items
from tests.fixtures import recorded_statements
from tests.test_dav_accept import OCCURRENCE_ONLY
from tests.test_eas_calendar import weekly_series
from tests.test_eas_sync import add_contacts


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    # texts rendered ahead after the store writes below run in the background: not the Sync's work
    return live_server(store, setup=install_all, eas={"export_cache_objects": 0}, dav={"texts_ahead_max_pending": 0})


def _phone(running, device_id: str) -> EasClient:  # type: ignore[no-untyped-def]
    phone = client(running, device_id=device_id)
    phone.provision()
    return phone


def _whole_pass(phone: EasClient, folder: str, window: int) -> dict[str, bytes]:
    """ServerId -> encoded ApplicationData of every item of an initial pass in windows of `window`."""
    phone.sync(folder, "0")
    sent: dict[str, bytes] = {}
    for _ in range(200):
        reply = phone.sync(folder, window=window)
        for server_id, data in items(reply).items():
            assert server_id not in sent, server_id
            sent[server_id] = encode(data)
        if collection(reply).find("AirSync:MoreAvailable") is None:
            return sent
    raise AssertionError("the pass did not end")


def _counting_decodes(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Ids of the object rows decoded into model objects from now on (the store's one decode point)."""
    decoded: list[int] = []
    real = object_ops._load_one

    def counted(r, *args, **kwargs):  # type: ignore[no-untyped-def]
        decoded.append(int(r.id))
        return real(r, *args, **kwargs)
    monkeypatch.setattr(object_ops, "_load_one", counted)
    return decoded


def test_initial_pass_decodes_each_item_once(running, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = add_contacts(world, 60)
    phone = _phone(running, "lightdecodes")
    folder = phone.folder_of_type(9)
    decoded = _counting_decodes(monkeypatch)
    sent = _whole_pass(phone, folder, 10)
    assert sorted(int(i) for i in sent) == sorted(ids)
    assert sorted(decoded) == sorted(ids)  # planning the pass decoded none of them


def _change_three(world, ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Rename the first three of alice's contacts `ids` behind the phone's back: a 3-change delta."""
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        for object_id in ids[:3]:
            contact = session.get_object(contacts, object_id)
            contact.first_name += " changed"
            session.update_object(contacts, contact)


def test_small_delta_is_decoded_once_by_the_plan(running, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = add_contacts(world, 30)
    phone = _phone(running, "lightdelta")
    folder = phone.folder_of_type(9)
    _whole_pass(phone, folder, 100)
    _change_three(world, ids)
    decoded = _counting_decodes(monkeypatch)
    reply = phone.sync(folder, window=100)
    assert sorted(int(i) for i in items(reply, "Change")) == ids[:3]
    assert sorted(decoded) == ids[:3]


def test_windowed_calendar_pass_sends_what_one_window_sends(running, world) -> None:  # type: ignore[no-untyped-def]
    series = weekly_series(world)
    calendar = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        moved = Appointment(title="Standup (moved)", start_date=datetime(2026, 3, 16, 13, 0, tzinfo=UTC),
                            end_date=datetime(2026, 3, 16, 13, 30, tzinfo=UTC))
        session.change_occurrence(calendar, series, date(2026, 3, 16), moved)
        for day in range(1, 6):
            session.create_object(calendar, Appointment(
                title=f"Single {day}", start_date=datetime(2026, 4, day, 9, 0, tzinfo=UTC),
                end_date=datetime(2026, 4, day, 10, 0, tzinfo=UTC)))
    dav = Dav(running.port, world)
    assert dav.put(dav.calendar() + "invite.ics", OCCURRENCE_ONLY).status == 201  # two occurrences, no series
    one_window = _whole_pass(_phone(running, "onewindow"), str(calendar), 100)
    windowed = _whole_pass(_phone(running, "windowed"), str(calendar), 1)
    assert len(one_window) == 8  # the series (its exception inside), 5 singles, 2 occurrences without series
    assert windowed == one_window


def test_known_ids_unchanged_are_not_encoded_again() -> None:
    text = "1-5000,5002,5010-6000"
    parsed = IdSet.parse(text)
    parsed.add(17)  # already known (a Change): nothing to rewrite
    parsed.discard(5001)  # not known
    assert parsed.dump() is text
    parsed.add(5001)
    assert parsed.dump() == "1-5002,5010-6000"
    parsed.discard(5001)
    assert parsed.dump() == "1-5000,5002,5010-6000"


def _statements(store, fn) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    def keep(statement: str) -> bool:
        return "device_state" in statement or any(f" {t}" in statement for t in ("objects", "changes", "participants"))
    with recorded_statements(store, keep) as seen:
        result = fn()
    return len(seen), result


@pytest.mark.parametrize("size", [20, 200])
def test_delta_statements_do_not_grow_with_the_folder(running, store, world, size: int) -> None:  # type: ignore[no-untyped-def]
    ids = add_contacts(world, size)
    phone = _phone(running, f"deltastatements{size}")
    folder = phone.folder_of_type(9)
    _whole_pass(phone, folder, 100)
    _change_three(world, ids)
    count, reply = _statements(store, lambda: phone.sync(folder, window=100))
    assert len(items(reply, "Change")) == 3  # type: ignore[arg-type]
    assert count == DELTA_STATEMENTS, count


DELTA_STATEMENTS = 4
"""Device state: 1 read (the gate's, with the Sync's cached request and collection state), then 1
compare-and-swap write of the collection's state (also checking the device record and the remembered
request, which stays as it was: it keeps no SyncKey); the changes (with the revision) and their rows,
which say they are at home in the folder: whatever the folder size (13 before the check read all states
in one statement, 11 before the gate read them all at once, 8 before the rows replaced the
folders-and-participants read, 6 before the writes compared and swapped without a check read, 5 before
the remembered request kept its SyncKey and was written again on every Sync)."""


def test_a_sync_that_finds_nothing_writes_nothing(running, store, world) -> None:  # type: ignore[no-untyped-def]
    add_contacts(world, 5)
    phone = _phone(running, "nothingnew")
    folder = phone.folder_of_type(9)
    _whole_pass(phone, folder, 100)
    phone.sync(folder, window=100)  # the cached request now carries the current key
    with recorded_statements(store, lambda statement: "device_state" in statement and statement.lstrip().upper()
                             .startswith(("UPDATE", "INSERT", "DELETE"))) as writes:
        reply = phone.sync(folder, window=100)
    assert reply.status == 200 and not items(reply)
    assert writes == []  # state written back as read is no write (2 UPDATEs before)


@contextmanager
def _units(running, user_id: int) -> Iterator[tuple[list[str], list[bool]]]:  # type: ignore[no-untyped-def]
    """The units of store work queued meanwhile for `user_id`'s requests (one pool checkout and one thread
    hop there and back each: a transaction's unit, or a `DeferredStore.sequence`), and whether each
    transaction opened for `user_id` meanwhile was a write."""
    async_store = running.service.async_store
    submit, session = async_store._submit, async_store.store.session
    units: list[str] = []
    transactions: list[bool] = []

    def counted_submit(light, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if fn.__name__ == "_in_session" and args[1] == user_id:
            units.append("transaction")
        elif fn.__qualname__.startswith("DeferredStore.sequence"):
            units.append("sequence")
        return submit(light, fn, *args, **kwargs)

    def counted_session(tenant_id, unit_user, write=False):  # type: ignore[no-untyped-def]
        if unit_user == user_id:
            transactions.append(write)
        return session(tenant_id, unit_user, write=write)
    async_store._submit, async_store.store.session = counted_submit, counted_session
    try:
        yield units, transactions
    finally:
        del async_store._submit, async_store.store.session


def test_a_delta_sync_is_one_unit_of_a_read_then_a_write(running, world, backend) -> None:  # type: ignore[no-untyped-def]
    """One unit (one pool checkout, one thread hop) runs the Sync's read transaction, the provisioning gate
    in it, and its state write: 3 units before (the gate's read, the staged read, the state write), 2
    with the gate in the staged read; a device record to touch is written with the Sync's state (5 units
    before). On PostgreSQL the write of the collection's state alone commits on the read's connection:
    no write transaction (one before)."""
    ids = add_contacts(world, 20)
    phone = _phone(running, "deltaunits")
    folder = phone.folder_of_type(9)
    _whole_pass(phone, folder, 100)
    _change_three(world, ids)
    with _units(running, world.alice) as (units, transactions):
        reply = phone.sync(folder, window=100)
    assert len(items(reply, "Change")) == 3  # type: ignore[arg-type]
    assert (units, transactions) == (["sequence"], [False] if backend == "postgresql" else [False, True])
    _change_three(world, ids)
    phone.user_agent = "Apple-iPhone9C1/1402.200"  # the device record must be touched
    with _units(running, world.alice) as (units, transactions):
        reply = phone.sync(folder, window=100)
    assert len(items(reply, "Change")) == 3  # type: ignore[arg-type]
    assert (units, transactions) == (["sequence"], [False, True])
    with world.as_user(world.alice) as session:
        assert session.get_state("deltaunits", "")["ua"] == "Apple-iPhone9C1/1402.200"  # type: ignore[index]


def test_a_sync_refused_by_the_gate_in_its_unit_still_touches_the_device(running, world, backend) -> None:  # type: ignore[no-untyped-def]
    """A Sync with a stale policy key gets Status 144 from the gate run inside its unit, which writes
    the device record's touch and nothing of the Sync (on PostgreSQL the touch, one state, commits alone
    on the read's connection: no write transaction)."""
    add_contacts(world, 3)
    phone = _phone(running, "gatedsync")
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    with world.as_user(world.alice) as session:
        before = session.get_state("gatedsync", "c:" + folder)
    phone.policy_key, phone.user_agent = "12345", "Apple-iPhone9C1/1402.300"
    with _units(running, world.alice) as (units, transactions):
        reply = phone.sync(folder, window=100)
    assert reply.text("AirSync:Status") == "144"
    assert (units, transactions) == (["sequence"], [False] if backend == "postgresql" else [False, True])
    with world.as_user(world.alice) as session:
        assert session.get_state("gatedsync", "")["ua"] == "Apple-iPhone9C1/1402.300"  # type: ignore[index]
        assert session.get_state("gatedsync", "c:" + folder) == before


def test_delta_sync_statements_built_once(running, world) -> None:  # type: ignore[no-untyped-def]
    """The statements of a delta Sync are objects built once, not per request (building a statement and
    its cache key cost more Python CPU than running it): two like deltas, what the second built anew."""
    from tests.test_write_statements import built_again, executed

    ids = add_contacts(world, 20)
    phone = _phone(running, "deltabuilt")
    folder = phone.folder_of_type(9)
    _whole_pass(phone, folder, 100)
    runs = []
    for first in (0, 3):
        _change_three(world, ids[first:])
        with executed(running.service.async_store.store) as seen:
            assert len(items(phone.sync(folder, window=100), "Change")) == 3  # type: ignore[arg-type]
        runs.append(seen)
    anew = built_again(*runs)
    assert len(anew) <= DELTA_BUILT_ANEW, anew


DELTA_BUILT_ANEW = 0
"""Statements a second delta Sync builds anew (the device states' read and the revision with the changes
were built per request before: 3, the states read twice)."""


def test_a_delta_sync_builds_no_set_of_the_known_ids(running, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The device's known ids ("1-5000") answer membership from their ranges: a 3-change delta builds no
    Python set of them (the plan and the window each built one of every known id before)."""
    from oxsync.eas import state

    ids = add_contacts(world, 200)
    phone = _phone(running, "deltaknown")
    folder = phone.folder_of_type(9)
    _whole_pass(phone, folder, 100)
    expanded: list[int] = []
    real = state._expand

    def counted(lows, highs):  # type: ignore[no-untyped-def]
        found = real(lows, highs)
        expanded.append(len(found))
        return found
    monkeypatch.setattr(state, "_expand", counted)
    _change_three(world, ids)
    reply = phone.sync(folder, window=100)
    assert sorted(map(int, items(reply, "Change"))) == sorted(ids[:3])  # type: ignore[arg-type]
    assert max(expanded, default=0) <= 3, expanded  # the window's 3 pending changes, sent in order
    expanded.clear()
    _change_three(world, ids[3:])
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(world.default_folder(world.alice, Module.CONTACT), ids[-1])
    reply = phone.sync(folder, window=100)
    assert sorted(map(int, items(reply, "Change"))) == sorted(ids[3:6])  # type: ignore[arg-type]
    commands = collection(reply).find("AirSync:Commands")
    assert commands is not None and [c.findtext("AirSync:ServerId") for c in commands
                                     if c.tag == "AirSync:Delete"] == [str(ids[-1])]
    assert [n for n in expanded if n > 3] == [], expanded  # a delete changes the known ranges: no set built (once before)


def test_a_window_moves_ids_between_range_sets_without_expanding_them(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An initial Sync's window takes the first 100 pending adds and makes them known: the pending set
    and the known set stay ranges (no set of 5,000 ints built, sorted and written back), and every step
    answers as a plain set would."""
    import random

    from oxsync.eas import state as eas_state

    expanded: list[int] = []
    real_expand = eas_state._expand
    monkeypatch.setattr(eas_state, "_expand", lambda lows, highs: expanded.append(len(lows)) or real_expand(lows, highs))
    pending, known = IdSet.parse("1-5000"), IdSet.parse("")
    taken = []
    for object_id in pending.in_order():
        if len(taken) == 100:
            break
        pending.discard(object_id)
        known.add(object_id)
        taken.append(object_id)
    assert taken == list(range(1, 101))
    assert (pending.dump(), known.dump(), len(pending), len(known)) == ("101-5000", "1-100", 4900, 100)
    assert expanded == []
    # the ranges answer as a set would, whatever is added and removed
    rng = random.Random(11)
    ranges, plain = IdSet.parse("3-9,20,40-60"), set(range(3, 10)) | {20} | set(range(40, 61))
    for _ in range(2000):
        item = rng.randrange(0, 80)
        if rng.random() < 0.5:
            ranges.add(item)
            plain.add(item)
        else:
            ranges.discard(item)
            plain.discard(item)
        assert (item in ranges) == (item in plain) and len(ranges) == len(plain)
    assert list(ranges.in_order()) == sorted(plain) and IdSet.parse(ranges.dump()).ids == plain
    assert ranges.dump() == IdSet(plain).dump()
