"""formats.kept: the client's text patched where (and only where) the model changed since it was read."""

from __future__ import annotations

from oxsync.formats import kept
from oxsync.formats.ical import items_to_ical, parse_calendar
from oxsync.formats.vcard import contact_to_vcard, parse_vcards

SOURCE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Client//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Custom Berlin\r\n"
    "BEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\n"
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n"
    "END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:k-1\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART;TZID=Custom Berlin:20260302T090000\r\nDTEND;TZID=Custom Berlin:20260302T100000\r\n"
    "SUMMARY:Review\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\nEXDATE;TZID=Custom Berlin:20260309T090000\r\n"
    "EXDATE;TZID=Custom Berlin:20260316T090000\r\n"
    "ATTENDEE;ROLE=CHAIR;PARTSTAT=ACCEPTED;X-ORDER=1:mailto:dana@partner.example\r\n"
    "BEGIN:VALARM\r\nTRIGGER;RELATED=START:-PT15M\r\nACTION:AUDIO\r\nATTACH;VALUE=URI:Chord\r\nEND:VALARM\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n")


def _edit(change):  # type: ignore[no-untyped-def]
    [item] = parse_calendar(SOURCE)
    baseline = items_to_ical([item])
    change(item.master)
    return kept.patch(SOURCE, baseline, items_to_ical([item]))


def lines(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")


def test_unchanged_model_serves_the_source_verbatim() -> None:
    assert _edit(lambda m: None) == SOURCE


def test_a_new_time_comes_with_its_own_zone() -> None:
    from datetime import timedelta

    def later(master):  # type: ignore[no-untyped-def]
        master.start_date += timedelta(hours=1)
        master.end_date += timedelta(hours=1)

    got = lines(_edit(later))
    assert "DTSTART;TZID=Europe/Berlin:20260302T100000" in got  # never the new value with the client's TZID
    assert "TZID:Europe/Berlin" in got and "TZID:Custom Berlin" in got  # kept lines may still name the old one
    assert "EXDATE;TZID=Europe/Berlin:20260309T100000,20260316T100000" in got  # the series moved: so did they
    assert "ATTENDEE;ROLE=CHAIR;PARTSTAT=ACCEPTED;X-ORDER=1:mailto:dana@partner.example" in got  # untouched


def test_partstat_change_keeps_the_other_parameters() -> None:
    from oxsync.model.appointment import Confirmation

    def decline(master):  # type: ignore[no-untyped-def]
        master.participants[0].confirmation = Confirmation.DECLINE

    assert "ATTENDEE;ROLE=CHAIR;PARTSTAT=DECLINED;X-ORDER=1:mailto:dana@partner.example" in lines(_edit(decline))


def test_alarm_change_patches_the_trigger_only_and_removal_drops_it() -> None:
    def thirty(master):  # type: ignore[no-untyped-def]
        master.alarm = 30

    got = lines(_edit(thirty))
    assert "TRIGGER;RELATED=START:-PT30M" in got and "ATTACH;VALUE=URI:Chord" in got and "ACTION:AUDIO" in got

    def off(master):  # type: ignore[no-untyped-def]
        master.alarm = None

    assert "BEGIN:VALARM" not in _edit(off)


def test_lines_we_merged_go_together() -> None:
    def no_exceptions(master):  # type: ignore[no-untyped-def]
        master.delete_exceptions = []

    assert "EXDATE" not in _edit(no_exceptions)


def test_a_value_written_under_another_name_is_replaced_not_duplicated() -> None:
    source = ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jo\r\nN:;Jo;;;\r\nX-AIM;type=HOME;type=pref:jo_aim\r\n"
              "TEL;type=CELL;type=pref:+1 555 0100\r\nUID:jo\r\nEND:VCARD\r\n")
    [card] = parse_vcards(source)
    contact = card.contact
    assert contact is not None
    baseline = contact_to_vcard(contact)
    assert kept.patch(source, baseline, contact_to_vcard(contact)) == source
    contact.instant_messenger2 = "aim:jo_new"
    contact.mobile1 = "+1 555 0199"
    got = lines(kept.patch(source, baseline, contact_to_vcard(contact)))
    assert not any("jo_aim" in line for line in got) and "IMPP;TYPE=home:aim:jo_new" in got
    assert "TEL;type=CELL;type=pref:+1 555 0199" in got  # TYPE=pref survives the edit


def test_equivalent_ignores_order_and_folding_only() -> None:
    reordered = SOURCE.replace("SUMMARY:Review\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n", "RRULE:FREQ=WEEKLY;COUNT=6\r\nSUMM\r\n ARY:Review\r\n")
    assert kept.equivalent(SOURCE, reordered)
    assert not kept.equivalent(SOURCE, SOURCE.replace("SUMMARY:Review", "SUMMARY:review"))
