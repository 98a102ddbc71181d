"""A pattern anchored at its local start: occurrences by position, whole periods skipped by counting.

What must hold: the cost of reaching period k or position n does not grow with k or n (a rule starting in
year 1 or with a huge COUNT answers in milliseconds): periods with a constant number of occurrences are
counted by multiplication, the others by the 400-year Gregorian cycle; `dateutil.rrule` does the calendar
arithmetic inside the few periods actually walked. Times are naive local wall-clock times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property

from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrule, weekday

from oxsync.model.appointment import RecurrenceType
from oxsync.recurrence.pattern import FREQUENCIES, Pattern

_MONTH_DAYS_MIN = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_DAYS_MAX = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The Gregorian calendar repeats (weekdays included) every 400 years = 4800 months.
_CYCLE = {"months": 4800, "years": 400}
_STEP: dict[str, Callable[[int], relativedelta]] = {
    "days": lambda n: relativedelta(days=n), "weeks": lambda n: relativedelta(weeks=n),
    "months": lambda n: relativedelta(months=n), "years": lambda n: relativedelta(years=n),
}
"""n periods of each unit, as a relativedelta."""


@dataclass(frozen=True)
class Series:
    """A pattern anchored at a naive local start, with its end condition."""

    pattern: Pattern
    dtstart: datetime
    count: int | None
    until: date | None

    @property
    def unit(self) -> str:
        return FREQUENCIES[self.pattern.rtype][2]

    def period_start(self, k: int) -> datetime | None:
        """Start (00:00) of the k-th period after the one holding dtstart; None past year 9999."""
        day = self.dtstart.date()
        base = {
            "days": day,
            "weeks": day - timedelta(days=day.weekday()),
            "months": day.replace(day=1),
            "years": day.replace(month=1, day=1),
        }[self.unit]
        try:
            return datetime.combine(base, time()) + _STEP[self.unit](k * self.pattern.interval)
        except (OverflowError, ValueError):
            return None

    def period_index(self, when: datetime) -> int:
        """How many whole periods lie between dtstart's period and the one holding `when`."""
        base = self.period_start(0)
        assert base is not None
        if self.unit in ("days", "weeks"):
            size = 7 if self.unit == "weeks" else 1
            return (when.date() - base.date()).days // (size * self.pattern.interval)
        months = (when.year - base.year) * 12 + when.month - base.month
        return (months if self.unit == "months" else when.year - base.year) // self.pattern.interval

    def rule(self, dtstart: datetime) -> rrule:
        """dateutil rule with every BY-part explicit, so it can start at any period boundary."""
        p = self.pattern
        byweekday: tuple[weekday, ...] | None = None
        bysetpos = None
        if p.weekdays:
            if p.ordinal is not None and len(p.weekdays) == 1:
                byweekday = (weekday(p.weekdays[0], p.ordinal),)
            else:
                byweekday = tuple(weekday(index) for index in p.weekdays)
                bysetpos = p.ordinal
        return rrule(
            FREQUENCIES[p.rtype][1], dtstart=dtstart, interval=p.interval, wkst=0, byweekday=byweekday,
            bysetpos=bysetpos, bymonthday=p.monthday, bymonth=p.month, byhour=self.dtstart.hour,
            byminute=self.dtstart.minute, bysecond=self.dtstart.second, cache=False,
        )

    def per_period(self) -> int | None:
        """Occurrences in every full period, or None when it varies (day 29-31, 29 February)."""
        p = self.pattern
        if p.rtype == RecurrenceType.WEEKLY:
            return len(p.weekdays)
        if p.monthday is None:
            return 1  # daily, and the nth-weekday forms: every month has a 1st-4th and last
        if p.month is None:
            return 1 if p.monthday <= 28 else None
        if p.monthday <= _MONTH_DAYS_MIN[p.month - 1]:
            return 1
        return None if p.monthday <= _MONTH_DAYS_MAX[p.month - 1] else 0

    def count_between(self, first: int, stop: int) -> int:
        """Occurrences in full periods [first, stop) by iteration (callers keep the span small)."""
        begin, end = self.period_start(first), self.period_start(stop)
        if begin is None:
            return 0
        total = 0
        for moment in self.rule(begin):
            if end is not None and moment >= end:
                break
            total += 1
        return total

    @cached_property
    def cycle(self) -> tuple[int, int]:
        """(periods, occurrences) of one Gregorian cycle, for the variable-count patterns."""
        whole = _CYCLE[self.unit]
        periods = whole // math.gcd(self.pattern.interval, whole)
        return periods, self.count_between(1, 1 + periods)

    def count_full(self, first: int, stop: int) -> int:
        """Occurrences in the full periods [first, stop), counting instead of iterating."""
        constant = self.per_period()
        if constant is not None:
            return (stop - first) * constant
        periods, per_cycle = self.cycle
        cycles, rest = divmod(stop - first, periods)
        return cycles * per_cycle + self.count_between(first, first + rest)

    @cached_property
    def first_count(self) -> int:
        """Occurrences in dtstart's own (possibly partial) period."""
        end = self.period_start(1)
        total = 0
        for moment in self.rule(self.dtstart):
            if end is not None and moment >= end:
                break
            total += 1
        return total

    def occurrences(self, k: int = 0) -> Iterator[tuple[int, datetime]]:
        """(1-based position, naive local start) from period k on, honouring COUNT and UNTIL."""
        if self.per_period() == 0:
            return
        begin: datetime | None
        if k <= 0:
            position, begin = 0, self.dtstart
        else:
            position = self.first_count + self.count_full(1, k)
            begin = self.period_start(k)
            if begin is None or (self.count is not None and position >= self.count):
                return
        for moment in self.rule(begin):
            position += 1
            if (self.count is not None and position > self.count) or (
                self.until is not None and moment.date() > self.until
            ):
                return
            yield position, moment

    def nth(self, position: int) -> datetime | None:
        """Local start of the occurrence at `position`, skipping whole periods arithmetically."""
        if position < 1 or (self.count is not None and position > self.count):
            return None
        first, constant, k = self.first_count, self.per_period(), 0
        if position > first:
            rest = position - first
            if constant == 0:
                return None
            if constant is not None:
                k = 1 + (rest - 1) // constant
            else:
                periods, per_cycle = self.cycle
                if per_cycle == 0:
                    return None
                k = 1 + ((rest - 1) // per_cycle) * periods
        for index, moment in self.occurrences(k):
            if index == position:
                return moment
            if index > position:
                break
        return None
