"""OX recurrence patterns <-> RRULE, and bounded expansion. Expected dates are computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from oxsync.model.appointment import (
    FRIDAY,
    MONDAY,
    SATURDAY,
    SUNDAY,
    THURSDAY,
    TUESDAY,
    WEDNESDAY,
    Recurrence,
    RecurrenceType,
)
from oxsync.recurrence import (
    InvalidRecurrence,
    UnsupportedRecurrence,
    expand,
    from_rrule,
    occurrence_date,
    occurrence_position,
    series_end,
    to_rrule,
    validate_recurrence,
)

D, W, M, Y = RecurrenceType.DAILY, RecurrenceType.WEEKLY, RecurrenceType.MONTHLY, RecurrenceType.YEARLY
WEEKDAYS = MONDAY | TUESDAY | WEDNESDAY | THURSDAY | FRIDAY
PARIS_9AM = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)  # Monday 4 March 2024, 09:00 CET
UTC_10AM = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)  # Monday 1 January 2024


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Every combination of §2.4: (pattern, start, zone, exact RRULE text).
PATTERNS = [
    pytest.param(Recurrence(D), UTC_10AM, "UTC", "FREQ=DAILY", id="daily-endless"),
    pytest.param(Recurrence(D, interval=3), UTC_10AM, "UTC", "FREQ=DAILY;INTERVAL=3", id="daily-interval"),
    pytest.param(Recurrence(W, days=MONDAY | WEDNESDAY | FRIDAY), UTC_10AM, "UTC",
                 "FREQ=WEEKLY;BYDAY=MO,WE,FR", id="weekly-several-days"),
    pytest.param(Recurrence(W, interval=2, days=SATURDAY | SUNDAY), UTC_10AM, "UTC",
                 "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU", id="weekly-weekend-interval"),
    pytest.param(Recurrence(W, days=WEEKDAYS), UTC_10AM, "UTC",
                 "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", id="weekly-every-weekday"),
    pytest.param(Recurrence(M, day_in_month=15), UTC_10AM, "UTC", "FREQ=MONTHLY;BYMONTHDAY=15",
                 id="monthly-day"),
    pytest.param(Recurrence(M, interval=2, days=TUESDAY, day_in_month=2), UTC_10AM, "UTC",
                 "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU", id="monthly-2nd-tuesday"),
    pytest.param(Recurrence(M, days=FRIDAY, day_in_month=5), UTC_10AM, "UTC", "FREQ=MONTHLY;BYDAY=-1FR",
                 id="monthly-last-friday"),
    pytest.param(Recurrence(M, days=WEEKDAYS, day_in_month=5), UTC_10AM, "UTC",
                 "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", id="monthly-last-weekday"),
    pytest.param(Recurrence(M, days=SATURDAY | SUNDAY, day_in_month=1), UTC_10AM, "UTC",
                 "FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=1", id="monthly-first-weekend-day"),
    pytest.param(Recurrence(Y, month=6, day_in_month=14), UTC_10AM, "UTC",
                 "FREQ=YEARLY;BYMONTHDAY=14;BYMONTH=7", id="yearly-date"),
    pytest.param(Recurrence(Y, month=10, days=THURSDAY, day_in_month=4), UTC_10AM, "UTC",
                 "FREQ=YEARLY;BYDAY=4TH;BYMONTH=11", id="yearly-4th-thursday"),
    pytest.param(Recurrence(Y, month=2, days=SUNDAY, day_in_month=5), UTC_10AM, "UTC",
                 "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", id="yearly-last-sunday"),
    pytest.param(Recurrence(W, days=FRIDAY, until=date(2024, 4, 26)), PARIS_9AM, "Europe/Paris",
                 "FREQ=WEEKLY;UNTIL=20240426T215959Z;BYDAY=FR", id="until-timed-paris"),
    pytest.param(Recurrence(D, until=date(2024, 1, 31)), date(2024, 1, 1), "UTC",
                 "FREQ=DAILY;UNTIL=20240131", id="until-all-day"),
    pytest.param(Recurrence(M, day_in_month=1, until=date(2024, 6, 1)), datetime(2024, 1, 1, 9), "UTC",
                 "FREQ=MONTHLY;UNTIL=20240601T235959;BYMONTHDAY=1", id="until-floating"),
    pytest.param(Recurrence(W, days=TUESDAY, occurrences=10), UTC_10AM, "UTC",
                 "FREQ=WEEKLY;COUNT=10;BYDAY=TU", id="occurrences"),
    pytest.param(Recurrence(Y, month=0, day_in_month=1, occurrences=3), date(2024, 1, 1), "UTC",
                 "FREQ=YEARLY;COUNT=3;BYMONTHDAY=1;BYMONTH=1", id="yearly-count-all-day"),
]


@pytest.mark.parametrize(("rec", "start", "tz", "text"), PATTERNS)
def test_ox_pattern_round_trips_through_rrule(rec: Recurrence, start, tz: str, text: str) -> None:
    assert to_rrule(rec, start, tz) == text
    assert from_rrule(text, start, tz) == rec
    assert from_rrule("RRULE:" + text, start, tz) == rec


# Exports of real clients -> the OX pattern they mean.
VENDOR = [
    # Apple Calendar: every other Monday+Wednesday, WKST=SU, UNTIL = 23:59:59 local of the last day.
    ("FREQ=WEEKLY;INTERVAL=2;UNTIL=20240624T215959Z;BYDAY=MO,WE;WKST=SU", PARIS_9AM, "Europe/Paris",
     Recurrence(W, interval=2, days=MONDAY | WEDNESDAY, until=date(2024, 6, 24))),
    ("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=4", PARIS_9AM, "Europe/Paris", Recurrence(M, day_in_month=4)),
    ("FREQ=YEARLY;INTERVAL=1;BYMONTH=3;BYDAY=-1SU", PARIS_9AM, "Europe/Paris",
     Recurrence(Y, month=2, days=SUNDAY, day_in_month=5)),
    # Google Calendar: WKST=SU, BY-parts left to DTSTART, UNTIL before the start time on the last day.
    ("FREQ=WEEKLY;WKST=SU;UNTIL=20240430T215959Z;BYDAY=TU,TH", PARIS_9AM, "Europe/Paris",
     Recurrence(W, days=TUESDAY | THURSDAY, until=date(2024, 4, 30))),
    ("FREQ=MONTHLY;BYDAY=1MO", PARIS_9AM, "Europe/Paris", Recurrence(M, days=MONDAY, day_in_month=1)),
    ("FREQ=YEARLY", date(1990, 5, 17), "UTC", Recurrence(Y, month=4, day_in_month=17)),
    ("FREQ=MONTHLY", PARIS_9AM, "Europe/Paris", Recurrence(M, day_in_month=4)),
    ("FREQ=WEEKLY", PARIS_9AM, "Europe/Paris", Recurrence(W, days=MONDAY)),
    ("FREQ=DAILY;UNTIL=20240310T075959Z", PARIS_9AM, "Europe/Paris", Recurrence(D, until=date(2024, 3, 9))),
    ("FREQ=WEEKLY;BYDAY=SU;UNTIL=20240331", date(2024, 3, 3), "UTC",
     Recurrence(W, days=SUNDAY, until=date(2024, 3, 31))),
    # Outlook: UNTIL = the last occurrence's start in UTC, BYSETPOS form, explicit INTERVAL=1.
    ("FREQ=WEEKLY;UNTIL=20240325T080000Z;INTERVAL=1;BYDAY=MO;WKST=SU", PARIS_9AM, "Europe/Paris",
     Recurrence(W, days=MONDAY, until=date(2024, 3, 25))),
    ("FREQ=MONTHLY;COUNT=10;BYDAY=TU;BYSETPOS=2", PARIS_9AM, "Europe/Paris",
     Recurrence(M, days=TUESDAY, day_in_month=2, occurrences=10)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", PARIS_9AM, "Europe/Paris",
     Recurrence(M, days=WEEKDAYS, day_in_month=5)),
    ("FREQ=YEARLY;COUNT=5;BYMONTHDAY=14;BYMONTH=7", PARIS_9AM, "Europe/Paris",
     Recurrence(Y, month=6, day_in_month=14, occurrences=5)),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", PARIS_9AM, "Europe/Paris", Recurrence(W, days=WEEKDAYS)),
    ("freq=daily;interval=2", PARIS_9AM, "Europe/Paris", Recurrence(D, interval=2)),
]


@pytest.mark.parametrize(("text", "start", "tz", "expected"), VENDOR)
def test_vendor_rrules_convert_to_the_expected_pattern(text: str, start, tz: str, expected) -> None:
    assert from_rrule(text, start, tz) == expected


@pytest.mark.parametrize("text", [
    "FREQ=DAILY;BYHOUR=9,17",
    "FREQ=HOURLY;INTERVAL=4",
    "FREQ=MINUTELY",
    "FREQ=SECONDLY",
    "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1",
    "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1,3",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=MONTHLY;BYMONTHDAY=1,15",
    "FREQ=MONTHLY;BYDAY=5MO",
    "FREQ=MONTHLY;BYDAY=-2FR",
    "FREQ=MONTHLY;BYDAY=MO",
    "FREQ=MONTHLY;BYDAY=1MO,3MO",
    "FREQ=YEARLY;INTERVAL=2",
    "FREQ=YEARLY;BYDAY=20MO",
    "FREQ=YEARLY;BYYEARDAY=100",
    "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,MO;WKST=SU",
    "FREQ=DAILY;INTERVAL=2;BYDAY=MO,FR",
    "FREQ=DAILY;BYMONTH=7",
    "FREQ=WEEKLY;BYDAY=1MO",
    "FREQ=DAILY;X-NAME=1",
])
def test_rules_ox_cannot_express_raise_unsupported(text: str) -> None:
    with pytest.raises(UnsupportedRecurrence) as info:
        from_rrule(text, UTC_10AM, "UTC")
    assert isinstance(info.value, ValueError) and str(info.value)


@pytest.mark.parametrize("text", [
    "FREQ=SOMETIMES", "FREQ=DAILY;COUNT=x", "FREQ=DAILY;COUNT=3;UNTIL=20240101", "FREQ=WEEKLY;BYDAY=XX",
    "FREQ=DAILY;INTERVAL=0", "FREQ=DAILY;FOO=1", "COUNT=5", "FREQ=DAILY;UNTIL=2024-01-01",
    "FREQ=DAILY;UNTIL=20241341", "FREQ=MONTHLY;BYMONTHDAY=32", "FREQ=DAILY;COUNT=1;COUNT=2", "FREQ",
])
def test_malformed_rules_raise_invalid(text: str) -> None:
    with pytest.raises(InvalidRecurrence):
        from_rrule(text, UTC_10AM, "UTC")


@pytest.mark.parametrize("rec", [
    Recurrence(RecurrenceType.NONE), Recurrence(D, interval=0), Recurrence(D, days=MONDAY),
    Recurrence(M, days=MONDAY), Recurrence(M, days=MONDAY, day_in_month=6), Recurrence(M, day_in_month=32),
    Recurrence(Y, month=12, day_in_month=1), Recurrence(W, until=date(2024, 1, 1), occurrences=3),
    Recurrence(W, days=128),
])
def test_invalid_ox_patterns_are_refused(rec: Recurrence) -> None:
    with pytest.raises(InvalidRecurrence):
        validate_recurrence(rec)
    with pytest.raises(InvalidRecurrence):
        to_rrule(rec, UTC_10AM)


def window(a: date, b: date, cap: int = 3000) -> dict:
    return {"window_start": datetime.combine(a, datetime.min.time(), UTC),
            "window_end": datetime.combine(b, datetime.min.time(), UTC), "max_instances": cap}


def starts(occurrences: list) -> list:
    return [begin for begin, _ in occurrences]


def test_expand_daily_interval_with_count() -> None:
    got = expand(utc(2024, 1, 30, 10), utc(2024, 1, 30, 11), Recurrence(D, interval=2, occurrences=4), "UTC",
                 **window(date(2024, 1, 1), date(2025, 1, 1)))
    assert got == [(utc(2024, 1, 30, 10), utc(2024, 1, 30, 11)), (utc(2024, 2, 1, 10), utc(2024, 2, 1, 11)),
                   (utc(2024, 2, 3, 10), utc(2024, 2, 3, 11)), (utc(2024, 2, 5, 10), utc(2024, 2, 5, 11))]


def test_expand_weekly_several_days_until_inclusive() -> None:
    rec = Recurrence(W, days=MONDAY | WEDNESDAY | FRIDAY, until=date(2024, 1, 12))
    got = expand(UTC_10AM, None, rec, "UTC", **window(date(2023, 12, 1), date(2024, 3, 1)))
    assert starts(got) == [utc(2024, 1, d, 10) for d in (1, 3, 5, 8, 10, 12)]


def test_expand_monthly_day_31_skips_short_months() -> None:
    got = expand(date(2024, 1, 31), date(2024, 2, 1), Recurrence(M, day_in_month=31), "UTC",
                 **window(date(2024, 1, 1), date(2025, 1, 1)))
    assert starts(got) == [date(2024, m, 31) for m in (1, 3, 5, 7, 8, 10, 12)]
    assert got[0] == (date(2024, 1, 31), date(2024, 2, 1))


@pytest.mark.parametrize(("rec", "expected"), [
    (Recurrence(M, days=TUESDAY, day_in_month=2),
     [date(2024, 1, 9), date(2024, 2, 13), date(2024, 3, 12), date(2024, 4, 9), date(2024, 5, 14)]),
    (Recurrence(M, days=FRIDAY, day_in_month=5),
     [date(2024, 1, 26), date(2024, 2, 23), date(2024, 3, 29), date(2024, 4, 26), date(2024, 5, 31)]),
    (Recurrence(M, days=WEEKDAYS, day_in_month=5),
     [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 29), date(2024, 4, 30), date(2024, 5, 31)]),
    (Recurrence(M, days=SATURDAY | SUNDAY, day_in_month=1),
     [date(2024, 1, 6), date(2024, 2, 3), date(2024, 3, 2), date(2024, 4, 6), date(2024, 5, 4)]),
])
def test_expand_monthly_nth_weekday(rec: Recurrence, expected: list[date]) -> None:
    got = expand(date(2024, 1, 1), None, rec, "UTC", **window(date(2024, 1, 1), date(2024, 6, 1)))
    assert starts(got) == expected


def test_expand_yearly_forms() -> None:
    thanksgiving = Recurrence(Y, month=10, days=THURSDAY, day_in_month=4)
    got = expand(date(2024, 1, 1), None, thanksgiving, "UTC", **window(date(2024, 1, 1), date(2027, 1, 1)))
    assert starts(got) == [date(2024, 11, 28), date(2025, 11, 27), date(2026, 11, 26)]
    dst_day = Recurrence(Y, month=2, days=SUNDAY, day_in_month=5)
    got = expand(date(2024, 1, 1), None, dst_day, "UTC", **window(date(2024, 1, 1), date(2027, 1, 1)))
    assert starts(got) == [date(2024, 3, 31), date(2025, 3, 30), date(2026, 3, 29)]
    leap = Recurrence(Y, month=1, day_in_month=29)
    got = expand(date(2024, 2, 29), None, leap, "UTC", **window(date(2024, 1, 1), date(2033, 1, 1)))
    assert starts(got) == [date(2024, 2, 29), date(2028, 2, 29), date(2032, 2, 29)]
    never = Recurrence(Y, month=1, day_in_month=30)
    assert expand(date(2024, 1, 1), None, never, "UTC", **window(date(2024, 1, 1), date(2100, 1, 1))) == []


def test_weekly_meeting_keeps_local_time_across_dst() -> None:
    rec = Recurrence(W, days=FRIDAY)
    start = utc(2024, 3, 15, 8)  # 09:00 CET
    got = expand(start, start + timedelta(hours=1), rec, "Europe/Paris", **window(date(2024, 3, 1),
                                                                                  date(2024, 4, 6)))
    assert got == [(utc(2024, 3, 15, 8), utc(2024, 3, 15, 9)), (utc(2024, 3, 22, 8), utc(2024, 3, 22, 9)),
                   (utc(2024, 3, 29, 8), utc(2024, 3, 29, 9)), (utc(2024, 4, 5, 7), utc(2024, 4, 5, 8))]
    autumn = expand(start, None, rec, "Europe/Paris", **window(date(2024, 10, 18), date(2024, 11, 2)))
    assert starts(autumn) == [utc(2024, 10, 18, 7), utc(2024, 10, 25, 7), utc(2024, 11, 1, 8)]
    new_york = expand(utc(2024, 3, 8, 14), None, Recurrence(D), "America/New_York",
                      **window(date(2024, 3, 8), date(2024, 3, 12)))
    assert starts(new_york) == [utc(2024, 3, 8, 14), utc(2024, 3, 9, 14), utc(2024, 3, 10, 13),
                                utc(2024, 3, 11, 13)]


def test_delete_exceptions_are_skipped_but_keep_positions() -> None:
    rec = Recurrence(W, days=MONDAY | WEDNESDAY | FRIDAY, until=date(2024, 1, 12))
    got = expand(UTC_10AM, None, rec, "UTC", delete_exceptions=[date(2024, 1, 3), date(2024, 1, 10)],
                 **window(date(2024, 1, 1), date(2024, 2, 1)))
    assert starts(got) == [utc(2024, 1, d, 10) for d in (1, 5, 8, 12)]
    assert occurrence_position(UTC_10AM, rec, "UTC", date(2024, 1, 5)) == 3
    assert occurrence_position(UTC_10AM, rec, "UTC", date(2024, 1, 4)) is None
    assert occurrence_position(UTC_10AM, rec, "UTC", date(2024, 1, 15)) is None  # after until
    assert occurrence_date(UTC_10AM, rec, "UTC", 5) == date(2024, 1, 10)
    assert occurrence_date(UTC_10AM, rec, "UTC", 7) is None


def test_dates_are_local_to_the_series_zone() -> None:
    start = utc(2024, 1, 1, 23, 30)  # 00:30 on 2 January in Paris
    rec = Recurrence(D, occurrences=3)
    got = expand(start, None, rec, "Europe/Paris", delete_exceptions=[date(2024, 1, 3)],
                 **window(date(2024, 1, 1), date(2024, 2, 1)))
    assert starts(got) == [utc(2024, 1, 1, 23, 30), utc(2024, 1, 3, 23, 30)]
    assert occurrence_position(start, rec, "Europe/Paris", date(2024, 1, 2)) == 1
    assert occurrence_date(start, rec, "Europe/Paris", 3) == date(2024, 1, 4)


def test_window_includes_occurrences_overlapping_its_start() -> None:
    start = date(2024, 1, 1)
    got = expand(start, date(2024, 1, 4), Recurrence(W, days=MONDAY), "UTC",
                 **window(date(2024, 1, 10), date(2024, 1, 20)))
    assert got == [(date(2024, 1, 8), date(2024, 1, 11)), (date(2024, 1, 15), date(2024, 1, 18))]


def test_floating_series_stays_floating() -> None:
    got = expand(datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 10), Recurrence(D, occurrences=2), "UTC",
                 **window(date(2024, 1, 1), date(2024, 2, 1)))
    assert got == [(datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 10)),
                   (datetime(2024, 1, 2, 9), datetime(2024, 1, 2, 10))]


def test_the_callers_window_and_cap_bound_the_answer() -> None:
    """The engine reads no settings: the window and the instance cap are parameters (the store passes
    `[limits]`); a series begun long before the window starts at the window, the cap cuts the rest."""
    bounds = window(date(2023, 6, 1), date(2029, 6, 5))
    got = expand(utc(2000, 1, 1, 12), None, Recurrence(D), "UTC", **bounds)
    # 2023-06-01 .. 2029-06-04 (leap days 2024-02-29, 2028-02-29)
    assert starts(got)[0] == utc(2023, 6, 1, 12)
    assert starts(got)[-1] == utc(2029, 6, 4, 12)
    assert len(got) == 366 + 1830
    capped = expand(utc(2000, 1, 1, 12), None, Recurrence(D), "UTC", **{**bounds, "max_instances": 50})
    assert len(capped) == 50 and starts(capped)[0] == utc(2023, 6, 1, 12)


def test_hostile_rules_return_quickly_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded work, counted: every date the underlying rrule produces is one step (no wall clock)."""
    from oxsync.recurrence.series import Series

    steps = [0]
    original = Series.rule

    def counted(self, dtstart):  # type: ignore[no-untyped-def]
        for moment in original(self, dtstart):
            steps[0] += 1
            yield moment

    monkeypatch.setattr(Series, "rule", counted)
    forever = expand(utc(1, 1, 1, 9), None, Recurrence(D), "UTC",
                     **window(date(2024, 1, 1), date(2024, 1, 4)))
    assert starts(forever) == [utc(2024, 1, 1, 9), utc(2024, 1, 2, 9), utc(2024, 1, 3, 9)]
    whole_range = expand(utc(1, 1, 1, 9), None, Recurrence(D), "UTC", max_instances=3000,
                         window_start=utc(1, 1, 1), window_end=utc(9999, 12, 31))
    # Day 3000: years 1-8 hold 2922 days (4 and 8 are leap years), then day 78 of year 9 = 19 March.
    assert len(whole_range) == 3000 and whole_range[-1][0] == utc(9, 3, 19, 9)
    huge_count = Recurrence(M, day_in_month=31, occurrences=10**9)
    got = expand(date(1, 1, 31), None, huge_count, "UTC", **window(date(9000, 1, 1), date(9999, 1, 1), cap=2))
    assert starts(got) == [date(9000, 1, 31), date(9000, 3, 31)]
    weekly = expand(utc(1, 1, 1, 9), None, Recurrence(W, interval=3, days=MONDAY | FRIDAY), "Europe/Paris",
                    **window(date(9999, 12, 1), date(9999, 12, 31)))
    assert len(weekly) <= 4
    assert occurrence_position(utc(1, 1, 1, 9), Recurrence(D), "UTC", date(2024, 1, 1)) == 738886
    assert occurrence_date(utc(1, 1, 1, 9), Recurrence(D), "UTC", 738886) == date(2024, 1, 1)
    assert occurrence_date(date(1, 1, 31), huge_count, "UTC", 10**9) is None  # beyond year 9999
    assert series_end(date(1, 1, 31), None, huge_count) is None
    # expanding day 1 .. 9999 of an endless daily rule would take 3.65 million steps; positions and
    # counts over 9000 years are computed, not iterated
    assert 0 < steps[0] < 20_000, steps[0]


def test_monthly_day_31_positions_count_without_iterating() -> None:
    rec = Recurrence(M, day_in_month=31)
    # 2023 whole years with 7 long months each, then January 2024.
    assert occurrence_position(date(1, 1, 31), rec, "UTC", date(2024, 1, 31)) == 2023 * 7 + 1
    assert occurrence_date(date(1, 1, 31), rec, "UTC", 2023 * 7 + 5) == date(2024, 8, 31)
    leap = Recurrence(Y, month=1, day_in_month=29)
    assert occurrence_date(date(2024, 2, 29), leap, "UTC", 19) == date(2096, 2, 29)
    assert occurrence_date(date(2024, 2, 29), leap, "UTC", 20) == date(2104, 2, 29)  # 2100 is no leap year


def test_series_end() -> None:
    hour = timedelta(hours=1)
    assert series_end(UTC_10AM, UTC_10AM + hour, Recurrence(W, days=MONDAY)) is None
    ten = Recurrence(W, days=MONDAY | WEDNESDAY | FRIDAY, occurrences=10)
    assert series_end(UTC_10AM, UTC_10AM + hour, ten) == utc(2024, 1, 22, 11)
    until = Recurrence(W, days=FRIDAY, until=date(2024, 4, 26))
    assert series_end(utc(2024, 3, 15, 8), utc(2024, 3, 15, 9), until, "Europe/Paris") == utc(2024, 4, 26, 8)
    assert series_end(date(2024, 1, 31), date(2024, 2, 1), Recurrence(M, day_in_month=31, occurrences=3)) == \
        date(2024, 6, 1)
    empty = Recurrence(W, days=FRIDAY, until=date(2024, 3, 1))
    assert series_end(utc(2024, 3, 15, 8), utc(2024, 3, 15, 9), empty) == utc(2024, 3, 15, 9)


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        expand(UTC_10AM, None, Recurrence(D), "Mars/Olympus", **window(date(2024, 1, 1), date(2024, 2, 1)))
