"""Guards bench/peers_sogo_load.py, the bulk load that gives SOGo the bench's data without PUT: the rows
it computes must equal what SOGo 5.8 itself wrote for the same items when they were PUT (rows recorded
from a real sogod on 2026-12-06; the bench re-checks a sample against a live SOGo on every run).
A series crossing a DST change ends where SOGo (stepping the rule in UTC) says, not an hour off.
"""

from __future__ import annotations

from bench.peers_data import card, event
from bench.peers_sogo_load import appointment_row, card_text, contact_row, event_text

NOW = 1796552741  # when SOGo stored the rows below

RECORDED = {  # (index, total): SOGo's (c_startdate, c_enddate, c_cycleenddate, c_cycleinfo, c_nextalarm)
    (0, 10000): (1799046000, 1799047800, 1804491000, '{rules = ("FREQ=WEEKLY;COUNT=10"); }', 1799045100),
    (10, 10000): (1799068200, 1799071800, 2147483647, '{rules = ("FREQ=WEEKLY"); }', 1799067300),
    (1, 10000): (1799048220, 1799050920, None, None, 1799047320),
    (9999, 10000): (1831033980, 1831038480, None, None, 1831033080),
    # series across the spring and autumn DST changes (1,000 events a year)
    (40, 1000): (None, None, 1806219000, '{rules = ("FREQ=WEEKLY;COUNT=10"); }', None),
    (560, 1000): (None, None, 1828679400, '{rules = ("FREQ=WEEKLY;COUNT=10"); }', None),
}


def test_appointment_rows_match_what_sogo_wrote() -> None:
    for (i, total), (start, end, cycle_end, info, alarm) in RECORDED.items():
        row = appointment_row(1, f"ev{i}.ics", event(i, total), NOW)
        assert row["c_cycleenddate"] == cycle_end, (i, total)
        assert row["c_cycleinfo"] == info
        for column, value in (("c_startdate", start), ("c_enddate", end), ("c_nextalarm", alarm)):
            if value is not None:
                assert row[column] == value, (i, column)
    row = appointment_row(1, "ev0.ics", event(0, 10000), NOW)
    assert (row["c_participants"], row["c_partmails"], row["c_partstates"]) == (
        "Alice\nGuest 0", "alice@example.com\nguest0@elsewhere.test", "1\n1")
    assert (row["c_orgmail"], row["c_location"], row["c_iscycle"], row["c_isopaque"], row["c_status"]) == (
        "partner0@elsewhere.test", "Room 0", 1, 1, 1)


def test_stored_texts_match_what_sogo_wrote() -> None:
    text = event_text(event(1, 10000))
    assert text.startswith("BEGIN:VCALENDAR\r\nPRODID:-//oxsync bench//EN\r\nVERSION:2.0\r\n")
    assert ("ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;RSVP=TRUE;ROLE=REQ-PARTICIPANT:mailto:a\r\n lice@example.com\r\n"
            in text)
    assert text.endswith("TRIGGER:-PT15M\r\nEND:VALARM\r\nCLASS:PUBLIC\r\nEND:VEVENT\r\nEND:VCALENDAR")
    assert card_text(card(0)) == (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-0@example.com\r\nFN:Person 0 Bench\r\nN:Bench;Person 0\r\n"
        "EMAIL;TYPE=INTERNET,WORK:person0@example.org\r\nEMAIL;TYPE=INTERNET,HOME:p0@home.test\r\n"
        "TEL;TYPE=WORK,VOICE:+33 1 00 00 00 00\r\nTEL;TYPE=CELL:+33 6 00 00 00 00\r\nORG:Company 0\r\n"
        "TITLE:Engineer\r\nADR;TYPE=WORK:;;0 rue de la Paix;Paris;;75002;France\r\nNOTE:Generated contact 0.\r\n"
        "END:VCARD")


def test_contact_rows_match_what_sogo_wrote() -> None:
    row = contact_row(2, "card9999.vcf", card(9999))
    assert row == {
        "c_folder_id": 2, "c_name": "card9999.vcf", "c_givenname": "Person 9999", "c_cn": "Person 9999 Bench",
        "c_sn": "Bench", "c_screenname": "", "c_l": "Paris", "c_mail": "person9999@example.org,p9999@home.test",
        "c_o": "Company 82", "c_ou": "", "c_telephonenumber": "+33 1 99 08 31 39", "c_categories": None,
        "c_component": "vcard", "c_hascertificate": 0}
