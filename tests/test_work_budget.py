"""The work one request may do is bounded (issue 10 §3): recurrence instances per series and per
request, and store-thread time; beyond it each dialect answers its own limit error. Counts of
instances and a fake clock, never durations."""

from __future__ import annotations

import pytest

from oxsync.dav import install as install_dav
from oxsync.ox.errors import outcome_of
from oxsync.store.budget import WorkBudget, WorkLimitExceeded, charge, work_budget
from tests.davhelp import Dav, event

DAILY = "RRULE:FREQ=DAILY\r\n"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"


def query(start: str, end: str) -> str:
    return ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
            f'<C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>'
            '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter>'
            '</C:calendar-query>')


@pytest.fixture
def dav(live_server, store, world):  # type: ignore[no-untyped-def]
    def start(**limits: object) -> Dav:
        running = live_server(store, setup=install_dav, limits=limits)
        client = Dav(running.port, world)
        calendar = client.calendar()
        assert client.put(calendar + "endless.ics", event("endless", "Every day", "20260101T090000Z",
                                                          "20260101T100000Z", DAILY)).status == 201
        client.path = calendar  # type: ignore[attr-defined]
        return client

    return start


def test_expanding_an_endless_series_over_centuries_is_max_instances(dav) -> None:  # type: ignore[no-untyped-def]
    client = dav()
    reply = client.report(client.path, query("19000101T000000Z", "99991231T000000Z"))
    assert reply.status == 403
    assert reply.xml.find(f"{{{CALDAV_NS}}}max-instances") is not None
    reply = client.report(client.path, query("20260301T000000Z", "20260401T000000Z"))  # a month: served
    assert reply.status == 207 and reply.text.count("RECURRENCE-ID") == 31


def test_instances_per_request_are_bounded(dav) -> None:  # type: ignore[no-untyped-def]
    client = dav(max_expanded_instances_per_request=40)
    assert client.report(client.path, query("20260301T000000Z", "20260315T000000Z")).status == 207  # 14
    reply = client.report(client.path, query("20260301T000000Z", "20260501T000000Z"))  # 61 > 40
    assert reply.status == 403
    assert reply.xml.find("{DAV:}number-of-matches-within-limits") is not None


def test_budget_counts_instances_and_time_with_a_fake_clock() -> None:
    now = [100.0]
    budget = WorkBudget(max_instances=10, max_seconds=5.0, clock=lambda: now[0])
    budget.charge(10)
    with pytest.raises(WorkLimitExceeded) as over:
        budget.charge(1)
    assert over.value.kind == "instances"
    late = WorkBudget(max_instances=10, max_seconds=5.0, clock=lambda: now[0])
    now[0] += 5.0
    late.check_time()  # exactly at the limit: still allowed
    now[0] += 0.001
    with pytest.raises(WorkLimitExceeded) as slow:
        late.charge(1)
    assert slow.value.kind == "time"


def test_budget_is_per_unit_of_work_and_absent_outside(store) -> None:  # type: ignore[no-untyped-def]
    charge(10**9)  # no budget open (CLI, import): nothing is charged
    limits = store.settings.limits
    with work_budget(limits) as budget:
        charge(limits.max_expanded_instances_per_request)
        with pytest.raises(WorkLimitExceeded):
            charge(1)
    assert budget.instances == limits.max_expanded_instances_per_request + 1
    with work_budget(limits) as fresh:
        charge(1)
    assert fresh.instances == 1


def test_ox_answers_a_work_limit_as_invalid_input_not_a_server_error() -> None:
    status, text, _ = outcome_of(WorkLimitExceeded("the request expands more than 5 recurrence instances", "instances"))
    assert text.startswith("[1100]") and status == 409


def test_activesync_availability_over_the_budget_is_its_own_status(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from oxsync.eas import install as install_eas
    from oxsync.eas.wbxml import E
    from oxsync.model import Appointment, Module, Recurrence
    from oxsync.model.appointment import RecurrenceType
    from tests.eas_client import client

    start = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
    with world.as_user(world.bob, write=True) as session:
        session.create_object(world.default_folder(world.bob, Module.CALENDAR), Appointment(
            title="Daily", start_date=start, end_date=start + timedelta(hours=1),
            recurrence=Recurrence(RecurrenceType.DAILY)))
    running = live_server(store, setup=install_eas, limits={"max_expanded_instances_per_request": 2})
    phone = client(running)
    phone.provision()

    def availability(days: int):  # type: ignore[no-untyped-def]
        return phone.post("ResolveRecipients", E(
            "ResolveRecipients:ResolveRecipients", E("ResolveRecipients:To", "bob@example.com"),
            E("ResolveRecipients:Options", E("ResolveRecipients:Availability",
                                             E("ResolveRecipients:StartTime", "2030-05-01T00:00:00.000Z"),
                                             E("ResolveRecipients:EndTime", f"2030-05-{1 + days:02d}T00:00:00.000Z")))))

    def status(reply):  # type: ignore[no-untyped-def]
        return reply.body.find("ResolveRecipients:Response").find("ResolveRecipients:Recipient") \
            .find("ResolveRecipients:Availability").findtext("ResolveRecipients:Status")

    assert status(availability(2)) == "1"  # two instances: within the budget
    assert status(availability(5)) == "163"  # five: free/busy not available for this recipient, no 500


def test_output_loops_stop_at_the_time_budget(store) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from oxsync.render import render_each

    now = [0.0]
    limits = replace(store.settings.limits, max_request_work_seconds=5.0)
    with work_budget(limits, clock=lambda: now[0]):
        assert render_each("dav", [1, 2], lambda x: x) == [1, 2]
        now[0] = 5.5  # the request has worked too long: the next item stops the whole response
        with pytest.raises(WorkLimitExceeded) as late:
            render_each("dav", [3], lambda x: x)
    assert late.value.kind == "time"


def test_a_query_past_its_time_budget_is_refused(dav) -> None:  # type: ignore[no-untyped-def]
    client = dav(max_request_work_seconds=0.0)  # any work at all is too long
    reply = client.report(client.path, query("20260301T000000Z", "20260302T000000Z"))
    assert reply.status == 403 and reply.xml.find("{DAV:}number-of-matches-within-limits") is not None


def test_ox_conflict_check_over_the_budget_is_1100_over_http(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    """A live OX request whose conflict check would expand more instances than allowed: [1100], nothing written."""
    from datetime import UTC, datetime, timedelta

    from oxsync.model import Appointment, Module, Recurrence
    from oxsync.model.appointment import RecurrenceType
    from oxsync.model.timeutil import to_ms
    from oxsync.ox import install as install_ox
    from tests.oxclient import OxClient

    start = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
    with world.as_user(world.bob, write=True) as session:
        session.create_object(world.default_folder(world.bob, Module.CALENDAR), Appointment(
            title="Daily", start_date=start, end_date=start + timedelta(hours=1),
            recurrence=Recurrence(RecurrenceType.DAILY)))
    running = live_server(store, setup=install_ox, limits={"max_expanded_instances_per_request": 2})
    alice = OxClient(running.port, "alice", "alice-pw")
    calendar = world.default_folder(world.alice, Module.CALENDAR)
    begin = to_ms(start - timedelta(hours=1))
    [reply] = alice.proppatch("calendar", {
        "folder_id": calendar, "title": "Week-long workshop", "start_date": begin,
        "end_date": begin + 5 * 86_400_000, "participants": f"<ox:user>{world.alice}</ox:user><ox:user>{world.bob}</ox:user>"})
    assert (reply.status, reply.code) == ("409", 1100), reply.description
    assert alice.sync("calendar", calendar) == []  # nothing written
    [fits] = alice.proppatch("calendar", {
        "folder_id": calendar, "title": "Short", "start_date": begin, "end_date": begin + 3_600_000,
        "participants": f"<ox:user>{world.alice}</ox:user><ox:user>{world.bob}</ox:user>"})
    assert fits.status in ("200", "409") and fits.code != 1100  # within the budget: an ordinary answer


def test_activesync_sync_over_the_time_budget_is_503_never_500(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    """A live ActiveSync Sync whose output loop passes the time budget: 503 (retry later), not a 500 and not a
    half-written window; the same Sync within the budget is served."""
    from oxsync.eas import install as install_eas
    from oxsync.model import Contact, Module
    from tests.eas_client import client, items

    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        for n in range(5):
            session.create_object(folder, Contact(display_name=f"Contact {n}", last_name=f"Contact {n}"))
    tight = live_server(store, setup=install_eas, limits={"max_request_work_seconds": 0.000001})
    phone = client(tight)
    phone.provision()
    phone.folder_sync()
    phone.sync(str(folder), "0")
    refused = phone.sync(str(folder))
    assert refused.status == 503 and "retry-after" in refused.headers, (refused.status, refused.raw)
    roomy = live_server(store, setup=install_eas)
    ok = client(roomy)
    ok.provision()
    ok.folder_sync()
    ok.sync(str(folder), "0")
    assert len(items(ok.sync(str(folder)))) == 5
