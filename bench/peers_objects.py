"""The bench's events and vCards (bench/peers_data.py) as oxsync model objects, named as the other
servers get them over HTTP, ready for `session.create_objects`: the bench's oxsync loader and the tests
that load the same data use these rather than each parsing it again."""

from __future__ import annotations

from bench.peers_data import card, card_name, event, event_name
from oxsync.formats.ical import CalendarItem, parse_calendar
from oxsync.formats.vcard import parse_vcards
from oxsync.model import Appointment, Contact


def event_masters(low: int, high: int, total: int) -> list[Appointment]:
    """Events low..high-1 of `total` (conflicts ignored, as a bulk load may not refuse one)."""
    masters = []
    for i in range(low, high):
        item = parse_calendar(event(i, total))[0]
        assert isinstance(item, CalendarItem) and item.master is not None
        item.master.resource_name = event_name(i)
        item.master.ignore_conflicts = True
        masters.append(item.master)
    return masters


def card_contacts(low: int, high: int) -> list[Contact]:
    contacts = []
    for i in range(low, high):
        contact = next(parse_vcards(card(i))).contact
        assert contact is not None
        contact.resource_name = card_name(i)
        contacts.append(contact)
    return contacts
