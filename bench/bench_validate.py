"""What the store's input check and the render-time text cleaning cost (issue 10 §1, docs/limits.md).

- `check_object` runs once per object written (every dialect and the importer), beside `serialize`;
- every string loaded from the database passes `xml_safe` in the codec (rows written before the check);
- every SQL statement's integer parameters are checked against 64 bits (`guard_numbers`).
Prints microseconds per object / per statement, each beside what it sits next to. No peer: the peers
do not check. Run: python -m bench.bench_validate
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from oxsync.config import LimitSettings
from oxsync.model import Appointment, Contact, Participant, ParticipantKind
from oxsync.model.contact import STRING_FIELDS
from oxsync.store import dataclass_json
from oxsync.store.engine import guard_numbers
from oxsync.store.objects import serialize
from oxsync.store.validate import check_object

ROUNDS = 2000


def per_call(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def load(cls: type, data: str) -> object:
    return dataclass_json.from_dict(cls, dataclass_json.loads(data))


def load_uncleaned(cls: type, data: str) -> object:
    """The same decode with the cleaning switched off (what it cost before)."""
    cleaning = dataclass_json.xml_safe
    dataclass_json.xml_safe = lambda value: value  # type: ignore[assignment]
    try:
        return load(cls, data)
    finally:
        dataclass_json.xml_safe = cleaning


def main() -> None:
    limits = LimitSettings()
    full = Contact(**{name: f"value of {name}" for name in STRING_FIELDS})
    small = Contact(last_name="Durand", first_name="Bob", email1="bob@example.com")
    meeting = Appointment(title="Weekly", note="n" * 500, start_date=datetime(2026, 1, 5, 9, tzinfo=UTC),
                          end_date=datetime(2026, 1, 5, 10, tzinfo=UTC),
                          participants=[Participant(ParticipantKind.USER, i, f"u{i}@example.com", f"User {i}")
                                        for i in range(10)])
    print(f"{'object':<24}{'serialize':>10}{'check':>8}{'load':>8}{'uncleaned':>10}  (us per object)")
    for name, obj in (("contact, every field", full), ("contact, three fields", small), ("meeting, 10 people", meeting)):
        data = serialize(obj)
        cls = type(obj)
        print(f"{name:<24}{per_call(lambda o=obj: serialize(o)):>10.1f}{per_call(lambda o=obj: check_object(o, limits)):>8.1f}"
              f"{per_call(lambda c=cls, d=data: load(c, d)):>8.1f}"
              f"{per_call(lambda c=cls, d=data: load_uncleaned(c, d)):>10.1f}")
    plain, guarded = create_engine("sqlite://"), create_engine("sqlite://")
    guard_numbers(guarded)
    params = {f"p{i}": i for i in range(20)}
    query = text("SELECT " + ", ".join(f":p{i}" for i in range(20)))
    with plain.connect() as a, guarded.connect() as b:
        print(f"statement, 20 integer parameters: {per_call(lambda: a.execute(query, params)):.1f} us unguarded, "
              f"{per_call(lambda: b.execute(query, params)):.1f} us guarded")


if __name__ == "__main__":
    main()
