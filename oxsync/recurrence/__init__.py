"""The recurrence engine: OX patterns <-> RFC 5545 RRULE, and bounded, DST-correct expansion.

The OX pattern (`oxsync.model.appointment.Recurrence`, reference ox-webdav-xml.md §2.4) is the canonical
form; every dialect converts to and from it here. It sits above `oxsync.model` and below the formats and
the store, and takes every bound (window, instance cap) as a parameter: it reads no settings.

- `pattern.py`: validation of the OX combinations, weekday bits, frequencies;
- `rrule.py`: `to_rrule` / `from_rrule`, exact inverses for every OX combination;
- `series.py`: a pattern anchored at its local start, whole periods skipped by counting;
- `expand.py`: occurrences in a window, positions <-> dates, the end of a series.
"""

from oxsync.recurrence.expand import Occurrence, expand, occurrence_date, occurrence_position, series_end
from oxsync.recurrence.pattern import InvalidRecurrence, UnsupportedRecurrence, validate_recurrence
from oxsync.recurrence.rrule import from_rrule, to_rrule

__all__ = [
    "InvalidRecurrence", "Occurrence", "UnsupportedRecurrence", "expand", "from_rrule", "occurrence_date",
    "occurrence_position", "series_end", "to_rrule", "validate_recurrence",
]
