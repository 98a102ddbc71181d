"""CalDAV calendar-query / CardDAV addressbook-query filter evaluation (RFC 4791 §9.7, RFC 6352 §10.5).

Filters are evaluated on the iCalendar/vCard we would serve, so every property a client can see can
be matched. Time ranges expand recurrences inside the query window only (bounded work).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import recurring_ical_events
from dateutil.rrule import rrulestr
from icalendar import Calendar
from lxml import etree

from oxsync.dav.layout import DavError
from oxsync.dav.xml import CALDAV, CARDDAV, first, qn
from oxsync.store import budget
from oxsync.store.budget import WorkLimitExceeded

C = lambda name: qn(CALDAV, name)  # noqa: E731
CR = lambda name: qn(CARDDAV, name)  # noqa: E731
FAR_PAST = datetime(1900, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def parse_utc(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        return datetime.strptime(text.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DavError(400, C("valid-filter"), f"bad time {text!r}") from exc


def time_range(el: etree._Element) -> tuple[datetime, datetime]:
    start = parse_utc(el.get("start"), FAR_PAST)
    end = parse_utc(el.get("end"), FAR_FUTURE)
    if end <= start:
        raise DavError(400, C("valid-filter"), "time-range end before start")
    return start, end


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(value)


def _prop_dt(comp: Any, name: str) -> datetime | None:
    value = comp.get(name)
    return _utc(value.dt) if value is not None else None


# ------------------------------------------------------------------------------ text match


def text_matches(value: str, match: etree._Element) -> bool:
    needle = match.text or ""
    collation = match.get("collation", "i;ascii-casemap")
    if collation != "i;octet":
        needle, value = needle.casefold(), value.casefold()
    kind = match.get("match-type", "contains")
    hit = {"equals": value == needle, "starts-with": value.startswith(needle),
           "ends-with": value.endswith(needle)}.get(kind, needle in value)
    return hit != (match.get("negate-condition", "no") == "yes")


def _values(comp: Any, name: str) -> list[Any]:
    value = comp.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _as_text(value: Any) -> str:
    if hasattr(value, "to_ical"):
        raw = value.to_ical()
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return str(value)


def _prop_filter(comp: Any, pf: etree._Element, window: tuple[datetime, datetime] | None) -> bool:
    name = (pf.get("name") or "").upper()
    values = _values(comp, name)
    if first(pf, C("is-not-defined")) is not None:
        return not values
    if not values:
        return False
    tests = [c for c in pf if isinstance(c.tag, str)]
    if not tests:
        return True
    for value in values:
        ok = True
        for test in tests:
            if test.tag == C("text-match"):
                text = ",".join(_as_text(v) for v in value.cats) if name == "CATEGORIES" and hasattr(value, "cats") \
                    else str(value)
                ok = ok and text_matches(text, test)
            elif test.tag == C("param-filter"):
                param = value.params.get((test.get("name") or "").upper()) if hasattr(value, "params") else None
                if first(test, C("is-not-defined")) is not None:
                    ok = ok and param is None
                else:
                    tm = first(test, C("text-match"))
                    ok = ok and param is not None and (tm is None or text_matches(str(param), tm))
            elif test.tag == C("time-range"):
                start, end = time_range(test)
                try:
                    moment = _utc(value.dt)
                except (AttributeError, ValueError):
                    ok = False
                    continue
                ok = ok and start <= moment < end
        if ok:
            return True
    return False


# ------------------------------------------------------------------------------ time ranges


def _todo_overlaps(todo: Any, start: datetime, end: datetime) -> bool:
    """RFC 4791 §9.9 table for VTODO."""
    dtstart, due = _prop_dt(todo, "DTSTART"), _prop_dt(todo, "DUE")
    duration = todo.get("DURATION")
    completed, created = _prop_dt(todo, "COMPLETED"), _prop_dt(todo, "CREATED")
    if dtstart is not None and duration is not None:
        dend = dtstart + duration.dt
        return start <= dend and (end > dtstart or end >= dend)
    if dtstart is not None and due is not None:
        return (start < due or start <= dtstart) and (end > dtstart or end >= due)
    if dtstart is not None:
        return start <= dtstart < end
    if due is not None:
        return start < due <= end
    if completed is not None and created is not None:
        return (start <= created or start <= completed) and (end >= created or end >= completed)
    if completed is not None:
        return start <= completed <= end
    if created is not None:
        return end > created
    return True


MAX_SPAN = timedelta(days=10 * 366)
"""Recurrences are expanded over at most this span: an open end (or start) of a time range is taken
this far from the other bound, a longer range is cut. Bounds the work a hostile query can cause."""


def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start <= FAR_PAST and end >= FAR_FUTURE:
        now = datetime.now(UTC)
        return now - MAX_SPAN / 2, now + MAX_SPAN / 2
    if start <= FAR_PAST:
        return end - MAX_SPAN, end
    return start, min(end, start + MAX_SPAN)


FIRST_CHUNK = timedelta(days=1)
MAX_CHUNK = timedelta(days=92)
"""Series are expanded chunk by chunk (growing from FIRST_CHUNK to MAX_CHUNK), so the request's work
budget is charged as instances are made and a hostile range stops within one chunk of its limit."""


def _chunks(low: datetime, high: datetime) -> Iterator[tuple[datetime, datetime]]:
    size = FIRST_CHUNK
    while low < high:
        upper = min(high, low + size)
        yield low, upper
        low, size = upper, min(size * 2, MAX_CHUNK)


def iter_occurrences(cal: Calendar, kind: str, start: datetime, end: datetime,
                     max_instances: int | None = None, *, chunked: bool = True) -> Iterator[Any]:
    """Instances of `kind` components overlapping [start, end) (bounded, see MAX_SPAN), in chunks.

    Every instance is charged to the request's work budget (store.budget: 403 beyond it); more than
    `max_instances` (the `max_recurrence_instances` setting) answers 403 CALDAV:max-instances rather
    than a silently cut list."""
    low, high = _window(start, end)
    query = recurring_ical_events.of(cal, components=[kind], skip_bad_series=True)
    recurring = any("RRULE" in c or "RDATE" in c for c in cal.walk(kind))
    seen: set[tuple[str, str]] = set()
    count = 0
    for chunk_low, chunk_high in _chunks(low, high) if recurring and chunked else [(low, high)]:
        try:
            found = query.between(chunk_low, chunk_high)
        except Exception as exc:  # a series the expander cannot read does not match
            raise DavError(403, C("valid-calendar-data"), f"cannot expand: {exc}") from exc
        for occ in found:
            key = (str(occ.get("UID", "")), str(occ.get("DTSTART").to_ical() if occ.get("DTSTART") else ""))
            if key in seen:  # an instance spanning a chunk boundary comes back in the next chunk
                continue
            seen.add(key)
            count += 1
            if max_instances is not None and count > max_instances:
                raise WorkLimitExceeded(f"more than {max_instances} instances in the requested range", "series")
            if recurring:
                budget.charge()
            yield occ
        budget.check_time()


def _instances_at_least(comp: Any, start: datetime, end: datetime, limit: int) -> int | None:
    """How many RRULE instances of `comp` start in [start, end), counted with dateutil only (µs each,
    no components built) and stopping at `limit`; None when the rule cannot be counted this way."""
    rule_prop, begin = comp.get("RRULE"), comp.get("DTSTART")
    if rule_prop is None or begin is None:
        return 0 if rule_prop is None else None
    first_start = begin.dt
    try:
        if isinstance(first_start, datetime):
            low, high = (start, end) if first_start.tzinfo else (start.replace(tzinfo=None), end.replace(tzinfo=None))
        else:
            first_start = datetime.combine(first_start, datetime.min.time())
            low, high = start.replace(tzinfo=None), end.replace(tzinfo=None)
        rule = rrulestr(rule_prop.to_ical().decode("ascii"), dtstart=first_start)
        count = 0
        for moment in rule.xafter(low, inc=True):
            if moment >= high or count >= limit:
                break
            count += 1
        return count
    except Exception:  # noqa: BLE001 - an unusual rule is expanded (and charged) the slow way
        return None


def check_instance_count(cal: Calendar, kind: str, start: datetime, end: datetime, max_instances: int) -> None:
    """Refuse an expansion over the REQUESTED range (not the clamped window) before building any
    instance: an endless daily series expanded over 1900..9999 is CALDAV:max-instances at once."""
    for comp in cal.walk(kind):
        found = _instances_at_least(comp, start, end, max_instances + 1)
        if found is not None and found > max_instances:
            raise WorkLimitExceeded(f"more than {max_instances} instances in the requested range", "series")


def occurrences(cal: Calendar, kind: str, start: datetime, end: datetime, cap: int | None = 3000) -> list[Any]:
    return list(iter_occurrences(cal, kind, start, end, cap))


def component_in_range(cal: Calendar, kind: str, start: datetime, end: datetime) -> bool:
    """Whether any instance overlaps: stops at the first one (a filter needs no more)."""
    comps = [c for c in cal.walk(kind)]
    if kind == "VTODO" and not any("RRULE" in c or "RDATE" in c for c in comps):
        return any(_todo_overlaps(c, start, end) for c in comps)
    return next(iter_occurrences(cal, kind, start, end), None) is not None


def window_ms(start: datetime, end: datetime) -> tuple[int | None, int | None]:
    """A query range as index bounds in UTC milliseconds (None = open)."""
    return (None if start <= FAR_PAST else int(start.timestamp() * 1000),
            None if end >= FAR_FUTURE else int(end.timestamp() * 1000))


def query_window(top: etree._Element | None) -> tuple[int | None, int | None] | None:
    """The time range every match must overlap, if the filter has one the index can serve: a VEVENT or
    VTODO comp-filter with a time-range right under the VCALENDAR filter (its children are ANDed)."""
    if top is None:
        return None
    for cf in top:
        if cf.tag != C("comp-filter") or (cf.get("name") or "").upper() not in ("VEVENT", "VTODO"):
            continue
        tr = first(cf, C("time-range"))
        if tr is not None and first(cf, C("is-not-defined")) is None:
            return window_ms(*time_range(tr))
    return None


def index_decidable(top: etree._Element | None) -> str | None:
    """"VEVENT" when the filter is nothing but VCALENDAR > VEVENT > time-range: the store's exact index
    rows then decide the match without the text (store/timeranges.py); None otherwise."""
    if top is None or (top.get("name") or "").upper() != "VCALENDAR":
        return None
    children = [c for c in top if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != C("comp-filter") or \
            (children[0].get("name") or "").upper() != "VEVENT":
        return None
    tests = [c for c in children[0] if isinstance(c.tag, str)]
    return "VEVENT" if len(tests) == 1 and tests[0].tag == C("time-range") else None


def decided_window(top: etree._Element) -> tuple[int | None, int | None]:
    """The range an `index_decidable` filter really tests, in index milliseconds: the requested one
    bounded as the expansion bounds it (MAX_SPAN, see `_window`), so the index answers as the parser."""
    tr = first(first(top, C("comp-filter")), C("time-range"))
    assert tr is not None
    return window_ms(*_window(*time_range(tr)))


def _comp_filter(cal: Calendar, comps: list[Any], cf: etree._Element) -> bool:
    name = (cf.get("name") or "").upper()
    matching = [c for c in comps if c.name == name]
    if first(cf, C("is-not-defined")) is not None:
        return not matching
    if not matching:
        return False
    tr = first(cf, C("time-range"))
    if tr is not None:
        start, end = time_range(tr)
        if name in ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"):
            if not component_in_range(cal, name, start, end):
                return False
        elif name == "VALARM":
            matching = [m for m in matching if _alarm_in_range(cal, m, start, end)]
            if not matching:
                return False
    for child in cf:
        if child.tag == C("comp-filter"):
            if not any(_comp_filter(cal, list(m.subcomponents), child) for m in matching):
                return False
        elif child.tag == C("prop-filter"):
            # a prop-filter right under VCALENDAR names a property of its components (clients omit
            # the component type when searching a mixed collection)
            scope = matching if name != "VCALENDAR" else [s for m in matching for s in m.subcomponents
                                                        if s.name != "VTIMEZONE"] + matching
            if not any(_prop_filter(m, child, None) for m in scope):
                return False
    return True


def _alarm_in_range(cal: Calendar, alarm: Any, start: datetime, end: datetime) -> bool:
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return False
    value = trigger.dt
    if isinstance(value, datetime):
        return start <= _utc(value) < end
    for parent in cal.walk():
        if alarm in parent.subcomponents:
            base = _prop_dt(parent, "DTSTART")
            if base is None:
                return False
            moment = base + value
            return start <= moment < end
    return False


def calendar_matches(text: str, filter_el: etree._Element | None) -> bool:
    budget.check_time()  # once per object: a query over a huge calendar stops at the request's time budget
    if filter_el is None:
        return True
    top = first(filter_el, C("comp-filter"))
    if top is None:
        return True
    cal = Calendar.from_ical(text)
    return _comp_filter(cal, [cal], top)


def expand_text(text: str, kind: str, start: datetime, end: datetime, max_instances: int = 3000) -> str:
    """RFC 4791 §9.6.5: the instances in [start, end) as separate components, times in UTC."""
    cal = Calendar.from_ical(text)
    out = Calendar()
    for key, value in cal.items():
        out.add(key, value)
    recurring = any("RRULE" in c or "RDATE" in c for c in cal.walk(kind))
    if recurring:
        check_instance_count(cal, kind, start, end, max_instances)
    for occ in iter_occurrences(cal, kind, start, end, max_instances, chunked=False):
        for prop in ("RRULE", "RDATE", "EXDATE"):
            occ.pop(prop, None)
        for prop in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
            value = occ.get(prop)
            if value is not None and isinstance(value.dt, datetime):
                occ.pop(prop)
                occ.add(prop, _utc(value.dt))
        if recurring and "RECURRENCE-ID" not in occ and occ.get("DTSTART") is not None:
            occ.add("RECURRENCE-ID", occ["DTSTART"].dt)
        out.add_component(occ)
    return out.to_ical().decode("utf-8")


def busy_periods(text: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
    """(start, end, FBTYPE) of the opaque, non-cancelled events in the window (RFC 4791 §7.10)."""
    cal = Calendar.from_ical(text)
    found = []
    for occ in occurrences(cal, "VEVENT", start, end):
        if str(occ.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        status = str(occ.get("STATUS", "CONFIRMED")).upper()
        if status == "CANCELLED":
            continue
        begin = _prop_dt(occ, "DTSTART")
        if begin is None:
            continue
        finish = _prop_dt(occ, "DTEND")
        if finish is None:
            duration = occ.get("DURATION")
            finish = begin + (duration.dt if duration is not None else
                              (timedelta(days=1) if not isinstance(occ["DTSTART"].dt, datetime) else timedelta()))
        if finish <= start or begin >= end:
            continue
        fbtype = "BUSY-TENTATIVE" if status == "TENTATIVE" else "BUSY"
        found.append((max(begin, start), min(finish, end), fbtype))
    return sorted(found)


# ------------------------------------------------------------------------------ vCard


def _card_props(text: str) -> dict[str, list[tuple[dict[str, str], str]]]:
    """Property name (group stripped) -> [(params, value)], lines unfolded."""
    unfolded = text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")
    props: dict[str, list[tuple[dict[str, str], str]]] = {}
    for line in unfolded.splitlines():
        head, sep, value = line.partition(":")
        if not sep:
            continue
        parts = head.split(";")
        name = parts[0].split(".")[-1].upper()
        params: dict[str, str] = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            params[k.upper()] = v
        props.setdefault(name, []).append((params, value.replace("\\,", ",").replace("\\;", ";")))
    return props


def card_matches(text: str, filter_el: etree._Element | None) -> bool:
    if filter_el is None:
        return True
    pfs = [c for c in filter_el if c.tag == CR("prop-filter")]
    if not pfs:
        return True
    props = _card_props(text)
    results = [_card_prop_filter(props, pf) for pf in pfs]
    return all(results) if filter_el.get("test", "anyof") == "allof" else any(results)


def _card_text_match(value: str, tm: etree._Element) -> bool:
    needle = tm.text or ""
    collation = tm.get("collation", "i;unicode-casemap")
    if collation != "i;octet":
        needle, value = needle.casefold(), value.casefold()
    kind = tm.get("match-type", "contains")
    hit = {"equals": value == needle, "starts-with": value.startswith(needle),
           "ends-with": value.endswith(needle)}.get(kind, needle in value)
    return hit != (tm.get("negate-condition", "no") == "yes")


def _card_prop_filter(props: dict[str, list[tuple[dict[str, str], str]]], pf: etree._Element) -> bool:
    values = props.get((pf.get("name") or "").upper(), [])
    if first(pf, CR("is-not-defined")) is not None:
        return not values
    tests = [c for c in pf if isinstance(c.tag, str)]
    if not tests:
        return bool(values)
    allof = pf.get("test", "anyof") == "allof"
    for params, value in values:
        outcomes = []
        for test in tests:
            if test.tag == CR("text-match"):
                outcomes.append(_card_text_match(value, test))
            elif test.tag == CR("param-filter"):
                param = params.get((test.get("name") or "").upper())
                if first(test, CR("is-not-defined")) is not None:
                    outcomes.append(param is None)
                else:
                    tm = first(test, CR("text-match"))
                    outcomes.append(param is not None and (tm is None or _card_text_match(param, tm)))
        if (all(outcomes) if allof else any(outcomes)):
            return True
    return False


def limit_text(text: str, kind: str, start: datetime, end: datetime) -> str:
    """RFC 4791 §9.6.6 limit-recurrence-set: the master plus only the overrides touching the range."""
    cal = Calendar.from_ical(text)
    keep = []
    for comp in cal.subcomponents:
        if comp.name == kind and "RECURRENCE-ID" in comp:
            rid = _prop_dt(comp, "RECURRENCE-ID")
            begin = _prop_dt(comp, "DTSTART") or rid
            finish = _prop_dt(comp, "DTEND") or _prop_dt(comp, "DUE") or begin
            touches = any(m is not None and start <= m < end for m in (rid, begin)) or \
                (begin is not None and finish is not None and begin < end and finish > start)
            if not touches:
                continue
        keep.append(comp)
    cal.subcomponents = keep
    return cal.to_ical().decode("utf-8")
