"""`from_dict` picks each field's decoder once per class and decodes exactly as `decode_value` (the
reference, field by field) does: every field of full contacts, appointments and tasks, text XML cannot
carry, unknown keys, None, and the tagged date-or-datetime form."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from oxsync.model import Appointment, Contact, Task
from oxsync.store import dataclass_json
from oxsync.store.objects import serialize
from tests.test_store_objects import full_appointment, full_contact, full_task


def _reference(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: dataclass_json.decode_value(hints[f.name], data[f.name])
                  for f in dataclasses.fields(cls) if f.name in data})


def test_from_dict_decodes_as_decode_value_does() -> None:
    bad = "bell\x07 and \x0b tab"  # characters XML 1.0 cannot carry: replaced on the way out
    contact = dataclasses.replace(full_contact(), note=bad, extra={"X-ODD": bad})
    appointment = dataclasses.replace(full_appointment(1, 2), title=bad)
    for obj in (contact, appointment, full_task(), Contact(), Appointment(), Task()):
        data = dataclass_json.loads(serialize(obj))
        data["unknown_field"] = "ignored"
        decoded = dataclass_json.from_dict(type(obj), data)
        assert decoded == _reference(type(obj), data)
        assert repr(decoded) == repr(_reference(type(obj), data))
    assert dataclass_json.from_dict(Contact, {"note": None}).note is None
    assert "\x07" not in dataclass_json.from_dict(Contact, dataclass_json.loads(serialize(contact))).note


def test_field_decoders_are_chosen_once_per_class() -> None:
    dataclass_json._field_decoders.cache_clear()
    for _ in range(3):
        dataclass_json.from_dict(Appointment, dataclass_json.loads(serialize(full_appointment(1, 2))))
    info = dataclass_json._field_decoders.cache_info()
    assert info.misses <= 3 and info.hits >= 2  # Appointment once (and the dataclasses inside it once each)
