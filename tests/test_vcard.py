"""vCard <-> Contact: Apple, Google, Outlook 2.1 and RFC 6350 style input, full round trips, bad input."""

from __future__ import annotations

import base64
import re
from dataclasses import fields, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from oxsync.config import LimitSettings
from oxsync.formats.vcard import VCardError, contact_to_vcard, contacts_to_vcf, parse_vcards
from oxsync.formats.vcard_rows import EXTRA_GROUP, EXTRA_LINES, MemberInfo
from oxsync.formats.vcard_tables import NOT_IN_VCARD, TABLE
from oxsync.model.contact import PHONE_FIELDS, Contact, DistributionListMember

DATA = Path(__file__).parent / "data" / "vcard"
APPLE_PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 2 + b"\xff\xd9"
OUTLOOK_PHOTO = b"\xff\xd8\xff\xdb" + bytes(range(200)) + b"\xff\xd9"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
JOHNNY = "5A6B7C8D-0000-1111-2222-333344445555"
ZOE = "4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
VERSIONS = ("3.0", "4.0")


def fixture(name: str) -> str:
    with open(DATA / name, encoding="utf-8", newline="") as handle:
        return handle.read()


def resolver(uid: str) -> MemberInfo | None:
    known = {
        JOHNNY: (101, 11, "johnny@apple.example", "Johnny Appleseed"),
        f"urn:uuid:{ZOE}": (202, 22, "zoe@example.dk", "Zoë"),  # a 4.0 UID stored with its urn: prefix
    }
    return known.get(uid)


def uid_for_member(member: DistributionListMember) -> str | None:
    return {101: JOHNNY, 202: f"urn:uuid:{ZOE}"}.get(member.contact_id or 0)


def parse_ok(text: str, **kwargs: Any) -> list[Contact]:
    cards = list(parse_vcards(text, **kwargs))
    assert [card.error for card in cards] == [None] * len(cards)
    return [card.contact for card in cards if card.contact is not None]


def unfold(text: str) -> list[str]:
    return re.sub(r"\r\n[ \t]", "", text).split("\r\n")


def extra_lines(contact: Contact) -> list[str]:
    return contact.extra.get(EXTRA_LINES, "").split("\r\n")


def round_trip(contact: Contact, version: str) -> Contact:
    text = contact_to_vcard(contact, version, uid_for_member=uid_for_member)
    [again] = parse_ok(text, resolve_uid=resolver)
    return again


# ---- Apple Contacts (3.0) ----


def test_apple_person_fields() -> None:
    person, _group = parse_ok(fixture("apple.vcf"), resolve_uid=resolver)
    assert (person.last_name, person.first_name, person.second_name, person.title, person.suffix) == (
        "Appleseed", "Johnny", "Quincy", "Dr.", "Jr.")
    assert person.display_name == "Dr. Johnny Quincy Appleseed Jr."
    assert (person.nickname, person.company, person.department, person.position) == (
        "Johnny", "Apple Inc.", "Engineering", "Senior Engineer")
    assert (person.email1, person.email2, person.email3) == (
        "johnny@apple.example", "johnny@home.example", "johnny@other.example")
    assert person.mobile1 == "+1 (408) 555-0101"  # CELL,VOICE,pref
    assert person.mobile2 == "+1 (408) 555-0102"  # IPHONE,CELL,VOICE
    assert person.phone_business == "+1 (408) 996-1010"
    assert person.fax_home == "+1 (408) 555-0104"
    assert person.primary == "+1 (408) 555-0105"  # Apple's TYPE=MAIN
    assert person.phone_other == "+1 (408) 555-0106"  # untyped item2.TEL
    assert (person.business_street, person.business_city, person.business_postal_code) == (
        "One Apple Park Way", "Cupertino", "95014")
    assert (person.street, person.state, person.country) == ("1 Infinite Loop\nBuilding 2", "CA", "United States")
    assert person.url == "https://www.apple.example/johnny"  # Apple's escaped colon undone
    assert person.instant_messenger2 == "xmpp:johnny@jabber.example"  # IMPP and its X-JABBER twin: one
    assert person.instant_messenger == ""
    assert person.birthday == date(1604, 11, 29)
    assert person.note == "Line one\nLine two, with comma"
    assert person.categories == "Work,VIP"
    assert (person.image1, person.image_content_type) == (APPLE_PHOTO, "image/jpeg")
    assert person.uid == JOHNNY
    assert person.distribution_list is None
    assert extra_lines(person) == [
        "item1.X-ABLabel:_$!<Other>!$_",
        "item2.X-ABLabel:boat",
        "item3.X-ABADR:us",
        "item4.X-ABLabel:_$!<HomePage>!$_",
        "X-SOCIALPROFILE;type=twitter;x-user=johnny:https://twitter.com/johnny",
        "item5.X-ABDATE;type=pref:2004-06-12",
        "item5.X-ABLabel:_$!<Anniversary>!$_",
        "X-ABUID:5A6B7C8D-0000-1111-2222-333344445555:ABPerson",
    ]


def test_apple_output_keeps_item_groups_and_unknown_lines() -> None:
    person, _group = parse_ok(fixture("apple.vcf"))
    lines = unfold(contact_to_vcard(person, "3.0"))
    assert "item1.EMAIL;TYPE=internet,other:johnny@other.example" in lines
    assert "item1.X-ABLabel:_$!<Other>!$_" in lines
    assert "item3.ADR;TYPE=work:;;One Apple Park Way;Cupertino;CA;95014;United States" in lines
    assert "item4.URL:https://www.apple.example/johnny" in lines
    assert "X-SOCIALPROFILE;type=twitter;x-user=johnny:https://twitter.com/johnny" in lines
    assert "BDAY;X-APPLE-OMIT-YEAR=1604:1604-11-29" in lines
    assert f"PHOTO;ENCODING=b;TYPE=JPEG:{base64.b64encode(APPLE_PHOTO).decode()}" in lines
    assert not any(line.startswith(("PRODID:-//Apple", "X-JABBER")) for line in lines)


@pytest.mark.parametrize("version", VERSIONS)
def test_apple_person_round_trips(version: str) -> None:
    person, _group = parse_ok(fixture("apple.vcf"))
    assert round_trip(person, version) == person


def test_apple_group_members() -> None:
    _person, group = parse_ok(fixture("apple.vcf"), resolve_uid=resolver)
    assert group.is_distribution_list
    assert (group.display_name, group.last_name, group.uid) == (
        "Friends", "Friends", "F00DF00D-1234-5678-9ABC-DEF012345678")
    assert group.distribution_list == [
        DistributionListMember("johnny@apple.example", "Johnny Appleseed", 101, 11, 1)]
    assert extra_lines(group) == ["X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:99999999-AAAA-BBBB-CCCC-DDDDDDDDDDDD"]

    apple = unfold(contact_to_vcard(group, "3.0", uid_for_member=uid_for_member))
    assert "X-ADDRESSBOOKSERVER-KIND:group" in apple
    assert f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{JOHNNY}" in apple
    assert "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:99999999-AAAA-BBBB-CCCC-DDDDDDDDDDDD" in apple
    rfc = unfold(contact_to_vcard(group, "4.0", uid_for_member=uid_for_member))
    assert "KIND:group" in rfc and f"MEMBER:urn:uuid:{JOHNNY}" in rfc
    for version in VERSIONS:
        assert round_trip(group, version) == group


def test_group_without_resolver_keeps_every_uuid_member_verbatim() -> None:
    _person, group = parse_ok(fixture("apple.vcf"))
    assert group.distribution_list == []
    assert len(extra_lines(group)) == 2
    assert all(line.startswith("X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:") for line in extra_lines(group))


# ---- Google Contacts export (3.0) ----


def test_google_export() -> None:
    [jane] = parse_ok(fixture("google.vcf"))
    assert (jane.display_name, jane.last_name, jane.first_name, jane.second_name, jane.nickname) == (
        "Jane Q. Public", "Public", "Jane", "Q.", "JQ")
    # TYPE=WORK/HOME pick email1/email2 whatever the order; the untyped one takes the free slot.
    assert (jane.email1, jane.email2, jane.email3) == (
        "jane@work.example", "jane@home.example", "jane@other.example")
    assert (jane.mobile1, jane.phone_business, jane.phone_home, jane.phone_other) == (
        "+1 555 010 0001", "+1 555 010 0002", "+1 555 010 0003", "+1 555 010 0004")
    assert (jane.street, jane.city, jane.state, jane.postal_code, jane.country) == (
        "742 Evergreen Terrace", "Springfield", "OR", "97403", "USA")
    assert (jane.company, jane.position) == ("Initech", "TPS Reports")
    assert jane.birthday == date(1604, 5, 17)  # --05-17: no year
    assert jane.url == "http://jane.example.com/blog"
    assert jane.extra[EXTRA_GROUP + "url"] == "item1"
    assert jane.note == "Met at the conference, 2019.\nLikes tea."
    assert jane.categories == "myContacts,Friends"
    assert "item2.X-ABRELATEDNAMES:John Public" in extra_lines(jane)


# ---- Outlook (vCard 2.1, quoted-printable, Windows-1252) ----


def test_outlook_21_quoted_printable() -> None:
    [juergen] = parse_ok(fixture("outlook21.vcf"))
    assert (juergen.last_name, juergen.first_name, juergen.title) == ("Müller", "Jürgen", "Herr")
    assert juergen.display_name == "Jürgen Müller"
    assert juergen.note == "Erste Zeile\nZweite Zeile mit sehr langem Text, der umgebrochen wird äöü."
    assert (juergen.business_street, juergen.business_city, juergen.business_country) == (
        "Hauptstraße 1\n2. OG", "Köln", "Deutschland")
    assert (juergen.phone_business, juergen.phone_home, juergen.mobile1, juergen.fax_business, juergen.pager) == (
        "+49 221 555-0100", "+49 221 555-0200", "+49 170 555-0300", "+49 221 555-0101", "+49 221 555-0199")
    assert (juergen.company, juergen.department) == ("Contoso GmbH", "Vertrieb")
    assert juergen.email1 == "juergen.mueller@contoso.example"
    assert juergen.birthday == date(1970, 3, 21)
    assert (juergen.image1, juergen.image_content_type) == (OUTLOOK_PHOTO, "image/jpeg")
    kept = extra_lines(juergen)
    assert "X-MS-OL-DEFAULT-POSTAL-ADDRESS:2" in kept
    assert "X-MS-IMADDRESS:juergen@im.contoso.example" in kept
    assert not any(line.startswith(("LABEL", "REV", "VERSION")) for line in kept)  # derived, regenerated


# ---- vCard 4.0 ----


def test_v4_person() -> None:
    zoe, _group = parse_ok(fixture("v4.vcf"), resolve_uid=resolver)
    assert (zoe.display_name, zoe.first_name) == ("Zoë Ærøskøbing-Łukasiewicz", "Zoë")
    assert zoe.uid == f"urn:uuid:{ZOE}"
    assert (zoe.phone_business, zoe.mobile1, zoe.tty_tdd) == ("+45-3312-3456", "+45-2012-3456", "+45-3312-0000")
    assert zoe.primary == ""  # PREF=1 on a work number is a preference, not OX's "primary"
    assert (zoe.email1, zoe.instant_messenger) == ("zoe@example.dk", "xmpp:zoe@example.dk")
    assert (zoe.business_street, zoe.business_city) == ("Nørregade 1", "København")
    assert (zoe.birthday, zoe.anniversary) == (date(1604, 4, 12), date(2010, 6, 12))
    assert (zoe.image1, zoe.image_content_type) == (PNG, "image/png")
    assert zoe.note.endswith("foldet over flere linjer med tabulator.")  # LF + TAB fold
    assert extra_lines(zoe) == ["GENDER:F", "LANG;PREF=1:da", "RELATED;TYPE=spouse;VALUE=text:Anders"]
    lines = unfold(contact_to_vcard(zoe, "4.0"))
    assert f"PHOTO:data:image/png;base64,{base64.b64encode(PNG).decode()}" in lines
    assert "BDAY:--0412" in lines and "ANNIVERSARY:20100612" in lines
    assert "X-ANNIVERSARY:2010-06-12" in unfold(contact_to_vcard(zoe, "3.0"))


def test_v4_group() -> None:
    _zoe, group = parse_ok(fixture("v4.vcf"), resolve_uid=resolver)
    assert group.distribution_list == [
        DistributionListMember("zoe@example.dk", "Zoë", 202, 22, 1),
        DistributionListMember("extern@example.org"),
        DistributionListMember("karl@example.org", "Karl Extern"),
    ]
    assert extra_lines(group) == ["MEMBER:urn:uuid:00000000-dead-4bee-8000-000000000000"]
    lines = unfold(contact_to_vcard(group, "4.0", uid_for_member=uid_for_member))
    assert lines[lines.index("KIND:group") + 1:lines.index("KIND:group") + 4] == [
        f"MEMBER:urn:uuid:{ZOE}", "MEMBER:mailto:extern@example.org",
        "MEMBER;X-OX-CN=Karl Extern:mailto:karl@example.org"]
    assert "MEMBER:urn:uuid:00000000-dead-4bee-8000-000000000000" in lines
    for version in VERSIONS:
        assert round_trip(group, version) == group


def test_member_without_known_uid_is_written_as_mailto_and_keeps_email_field() -> None:
    group = Contact(display_name="L", distribution_list=[
        DistributionListMember("a@x.org", 'Ann "A", Smith', contact_id=5, folder_id=9, email_field=2),
        DistributionListMember("zoe@example.dk", "Zoë", 202, 22, 3),
    ])
    lines = unfold(contact_to_vcard(group, "4.0", uid_for_member=uid_for_member))
    assert "MEMBER;X-OX-CN=\"Ann 'A', Smith\":mailto:a@x.org" in lines
    assert f"MEMBER;X-OX-EMAILFIELD=3:urn:uuid:{ZOE}" in lines
    again = round_trip(group, "4.0")
    assert again.distribution_list == [
        DistributionListMember("a@x.org", "Ann 'A', Smith"),
        DistributionListMember("zoe@example.dk", "Zoë", 202, 22, 3),
    ]


# ---- every field, both versions ----

MAPPED = sorted({name for entry in TABLE for name in entry.fields})


def full_contact() -> Contact:
    """Every mapped field set to a non-default value, with characters that need escaping."""
    contact = Contact()
    for name in MAPPED:
        if isinstance(getattr(contact, name), str):
            setattr(contact, name, f"{name} – Ünïcødé, a;b\\c")
    contact.note = "Første linje\nSecond line, with ; and \\ and a long tail " + "ø" * 120
    contact.street = "Königstraße 1\nHinterhaus"
    contact.categories = "Work,Ünïcødé,a;b"
    contact.uid = "urn:uuid:0b7c3e1a-1111-4222-8333-444455556666"
    contact.url = "https://example.org/a,b;c?q=ü"
    contact.instant_messenger = "xmpp:ünï@example.org"
    contact.image_content_type = "image/png"
    contact.birthday = date(1980, 5, 17)
    contact.anniversary = date(1604, 2, 29)  # year-less leap day
    contact.private_flag = True
    contact.default_address = 2
    contact.color_label = 5
    contact.image1 = PNG
    return contact


def test_table_covers_every_contact_field() -> None:
    every = {f.name for f in fields(Contact)} - NOT_IN_VCARD
    assert set(MAPPED) == every


def test_full_contact_sets_every_mapped_field() -> None:
    blank, full = Contact(), full_contact()
    assert [n for n in MAPPED if getattr(full, n) == getattr(blank, n)] == ["distribution_list"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_field_round_trips(version: str) -> None:
    contact = full_contact()
    text = contact_to_vcard(contact, version)
    assert parse_ok(text) == [contact]
    assert text == contact_to_vcard(parse_ok(text)[0], version)  # a fixed point: nothing drifts


@pytest.mark.parametrize("version", VERSIONS)
def test_output_is_crlf_and_folded_at_75_octets(version: str) -> None:
    text = contact_to_vcard(full_contact(), version)
    assert text.startswith(f"BEGIN:VCARD\r\nVERSION:{version}\r\n") and text.endswith("END:VCARD\r\n")
    physical = text.split("\r\n")[:-1]
    assert max(len(line.encode("utf-8")) for line in physical) <= 75
    assert any(line.startswith(" ") for line in physical)
    assert "\n" not in text.replace("\r\n", "")


SHIFTED = {"phone_business2": "phone_business", "phone_home2": "phone_home", "mobile2": "mobile1"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", PHONE_FIELDS)
def test_each_phone_field_alone_comes_back_in_its_slot(name: str, version: str) -> None:
    """The second slot of a kind is positional: alone, it comes back as the first one."""
    [again] = parse_ok(contact_to_vcard(Contact(**{name: "+49 30 1234"}), version))
    assert {n: getattr(again, n) for n in PHONE_FIELDS if getattr(again, n)} == {SHIFTED.get(name, name): "+49 30 1234"}


@pytest.mark.parametrize(("line", "expected"), [
    ("TEL;TYPE=work,voice:1", "phone_business"),
    ("TEL;TYPE=WORK;TYPE=FAX:1", "fax_business"),
    ("TEL;WORK;FAX:1", "fax_business"),
    ("TEL;TYPE=home:1", "phone_home"),
    ("TEL;TYPE=home,fax,pref:1", "fax_home"),
    ("TEL;TYPE=cell:1", "mobile1"),
    ("TEL;TYPE=work,cell:1", "mobile1"),
    ("TEL;TYPE=fax:1", "fax_other"),
    ("TEL;TYPE=car:1", "phone_car"),
    ("TEL;TYPE=isdn:1", "isdn"),
    ("TEL;TYPE=work,pager:1", "pager"),
    ("TEL;TYPE=pref:1", "primary"),
    ("TEL;PREF=1:1", "primary"),
    ("TEL;TYPE=voice:1", "phone_other"),
    ("TEL:1", "phone_other"),
    ("TEL;TYPE=X-EVOLUTION-CALLBACK:1", "callback"),
    ("TEL;TYPE=x-evolution-company:1", "phone_company"),
    ("TEL;TYPE=X-EVOLUTION-ASSISTANT:1", "phone_assistant"),
    ("TEL;TYPE=X-EVOLUTION-TELEX:1", "telex"),
    ("TEL;TYPE=X-EVOLUTION-RADIO:1", "radio"),
    ("TEL;TYPE=textphone:1", "tty_tdd"),
    ("TEL;TYPE=X-OX-IP-PHONE:1", "ip_phone"),
])
def test_tel_types_select_phone_fields(line: str, expected: str) -> None:
    [contact] = parse_ok(f"BEGIN:VCARD\nVERSION:3.0\nFN:x\n{line}\nEND:VCARD\n")
    assert [n for n in PHONE_FIELDS if getattr(contact, n)] == [expected]


def test_repeated_tel_types_fill_second_slots_then_stay_verbatim() -> None:
    card = "BEGIN:VCARD\nVERSION:3.0\nFN:x\n" + "".join(
        f"TEL;TYPE={kind}:{n}\n" for n, kind in enumerate(["work", "work", "work", "cell", "cell", "x-boat"])
    ) + "END:VCARD\n"
    [contact] = parse_ok(card)
    assert (contact.phone_business, contact.phone_business2, contact.mobile1, contact.mobile2) == ("0", "1", "3", "4")
    assert extra_lines(contact) == ["TEL;TYPE=work:2", "TEL;TYPE=x-boat:5"]
    assert contact_to_vcard(contact).count("TEL;TYPE=work:2\r\n") == 1


@pytest.mark.parametrize(("line", "expected"), [
    ("BDAY:1980-05-17", date(1980, 5, 17)),
    ("BDAY:19800517", date(1980, 5, 17)),
    ("BDAY;VALUE=date:1980-05-17T00:00:00Z", date(1980, 5, 17)),
    ("BDAY:--0517", date(1604, 5, 17)),
    ("BDAY:--05-17", date(1604, 5, 17)),
    ("BDAY;X-APPLE-OMIT-YEAR=1604:1604-05-17", date(1604, 5, 17)),
    ("BDAY;X-APPLE-OMIT-YEAR=1900:1900-05-17", date(1604, 5, 17)),
    ("BDAY:--0229", date(1604, 2, 29)),
])
def test_birthday_forms(line: str, expected: date) -> None:
    [contact] = parse_ok(f"BEGIN:VCARD\nVERSION:4.0\nFN:x\n{line}\nEND:VCARD\n")
    assert contact.birthday == expected


def test_unparseable_date_is_kept_verbatim() -> None:
    [contact] = parse_ok("BEGIN:VCARD\nVERSION:4.0\nFN:x\nBDAY;VALUE=text:circa 1800\nEND:VCARD\n")
    assert contact.birthday is None
    assert extra_lines(contact) == ["BDAY;VALUE=text:circa 1800"]


def test_evolution_and_kde_aliases() -> None:
    [contact] = parse_ok(
        "BEGIN:VCARD\nVERSION:3.0\nFN:x\nX-EVOLUTION-FILE-AS:Doe, Jane\nX-EVOLUTION-ASSISTANT:Ann\n"
        "X-ASSISTANT:Ann\nX-KADDRESSBOOK-X-ManagersName:Max\nX-EVOLUTION-SPOUSE:Sam\n"
        "X-EVOLUTION-ANNIVERSARY:2001-09-08\nX-AIM:jdoe\nCLASS:CONFIDENTIAL\nEND:VCARD\n")
    assert (contact.file_as, contact.assistants_name, contact.managers_name, contact.spouse_name) == (
        "Doe, Jane", "Ann", "Max", "Sam")
    assert contact.anniversary == date(2001, 9, 8)
    assert contact.instant_messenger == "aim:jdoe"
    assert contact.private_flag is True
    assert contact.extra == {}  # the duplicate X-ASSISTANT is absorbed, nothing left over
    lines = unfold(contact_to_vcard(contact))
    assert {"X-OX-FILE-AS:Doe\\, Jane", "X-ASSISTANT:Ann", "X-MANAGER:Max", "X-SPOUSE:Sam",
            "CLASS:PRIVATE", "IMPP;TYPE=work:aim:jdoe"} <= set(lines)


def test_unknown_properties_survive_two_round_trips() -> None:
    card = ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nX-SOCIALPROFILE;type=linkedin:https://l.example/x\r\n"
            "item7.X-ABRELATEDNAMES;type=pref:Mom\r\nitem7.X-ABLabel:_$!<Mother>!$_\r\n"
            "URL:https://first.example\r\nURL:https://second.example\r\nX-Custom;A=\"x:y\":one\\, two\r\n"
            "END:VCARD\r\n")
    [contact] = parse_ok(card)
    assert contact.url == "https://first.example"
    kept = ["X-SOCIALPROFILE;type=linkedin:https://l.example/x", "item7.X-ABRELATEDNAMES;type=pref:Mom",
            "item7.X-ABLabel:_$!<Mother>!$_", "URL:https://second.example", 'X-Custom;A="x:y":one\\, two']
    assert extra_lines(contact) == kept
    once = contact_to_vcard(contact)
    assert all(line in unfold(once) for line in kept)
    assert contact_to_vcard(parse_ok(once)[0]) == once


# ---- splitting, folding, line numbers, limits ----


def test_bad_cards_report_line_numbers_and_the_rest_still_parse() -> None:
    cards = list(parse_vcards(fixture("bad.vcf"), limits=LimitSettings(max_photo_bytes=1000)))
    assert [card.line for card in cards] == [1, 6, 10, 15, 47, 52]
    assert [card.contact.display_name for card in cards if card.contact] == ["Good One", "Good Two"]
    errors = {card.line: (card.error_line, card.error) for card in cards if card.error}
    assert errors[6][0] == 10 and "no END:VCARD" in errors[6][1]
    assert errors[10][0] == 13 and "line 13" in errors[10][1] and "this line is garbage" in errors[10][1]
    assert errors[15][0] == 18 and "PHOTO of 1500 bytes exceeds limits.max_photo_bytes (1000)" in errors[15][1]
    assert errors[52][0] == 52 and "outside BEGIN:VCARD" in errors[52][1]


def test_default_photo_limit_accepts_the_same_photo() -> None:
    cards = list(parse_vcards(fixture("bad.vcf")))
    assert cards[3].contact is not None and cards[3].contact.image1 == bytes(1500)


def test_missing_end_at_end_of_input_and_stray_end() -> None:
    cards = list(parse_vcards("END:VCARD\nBEGIN:VCARD\nVERSION:3.0\nFN:x\n"))
    assert [(c.line, c.error_line) for c in cards] == [(1, 1), (2, 4)]
    assert "END:VCARD without BEGIN:VCARD" in (cards[0].error or "")
    assert "before the end of the input" in (cards[1].error or "")


def test_folding_variants_and_line_endings() -> None:
    text = "BEGIN:VCARD\rVERSION:3.0\rFN:Jo\r\n hn\n\tny\rNOTE:a\r\n  b\r\nEND:VCARD"
    [contact] = parse_ok(text)
    assert (contact.display_name, contact.note) == ("Johnny", "a b")


def test_blank_lines_between_cards_and_line_numbers_count_physical_lines() -> None:
    text = "\r\nBEGIN:VCARD\r\nFN:a\r\n b\r\nEND:VCARD\r\n\r\n\r\nBEGIN:VCARD\r\nFN:c\r\nEND:VCARD\r\n"
    assert [(c.line, c.contact and c.contact.display_name) for c in parse_vcards(text)] == [(2, "ab"), (8, "c")]


def test_import_size_is_refused_before_parsing() -> None:
    with pytest.raises(VCardError, match="max_import_bytes"):
        parse_vcards(fixture("google.vcf"), limits=LimitSettings(max_import_bytes=100))
    with pytest.raises(VCardError):  # counted in UTF-8 bytes, not characters
        parse_vcards("ø" * 60, limits=LimitSettings(max_import_bytes=100))


def test_card_size_limit() -> None:
    cards = list(parse_vcards(fixture("apple.vcf"), limits=LimitSettings(max_object_bytes=1000)))
    assert cards[0].error is not None and "max_object_bytes" in cards[0].error
    assert cards[1].contact is not None  # the small group card still imports


def test_member_limit() -> None:
    card = "BEGIN:VCARD\nVERSION:4.0\nKIND:group\nFN:g\n" + "".join(
        f"MEMBER:mailto:m{n}@x.org\n" for n in range(4)) + "END:VCARD\n"
    [parsed] = parse_vcards(card, limits=LimitSettings(max_distribution_list_members=3))
    assert parsed.error_line == 8 and "max_distribution_list_members" in (parsed.error or "")


def test_undecodable_quoted_printable_is_a_clean_card_error() -> None:
    text = ("BEGIN:VCARD\nVERSION:2.1\nN;CHARSET=x-no-such;ENCODING=QUOTED-PRINTABLE:M=FCller\nEND:VCARD\n"
            "BEGIN:VCARD\nVERSION:2.1\nFN;ENCODING=QUOTED-PRINTABLE:M=FCller\nEND:VCARD\n"
            "BEGIN:VCARD\nVERSION:2.1\nFN:ok\nEND:VCARD\n")
    cards = list(parse_vcards(text))
    assert [(c.line, c.error_line) for c in cards] == [(1, 3), (5, 7), (9, None)]
    assert all("cannot decode quoted-printable" in (c.error or "") for c in cards[:2])
    assert cards[2].contact is not None and cards[2].contact.display_name == "ok"


def test_nested_component_lines_are_not_kept() -> None:
    [contact] = parse_ok("BEGIN:VCARD\nVERSION:3.0\nFN:x\nBEGIN:VCALENDAR\nitem1.END:VCARD\nEND:VCALENDAR\n"
                         "END:VCARD\n")
    assert contact.display_name == "x" and contact.extra == {}


def test_broken_photo_base64_is_kept_not_decoded() -> None:
    [contact] = parse_ok("BEGIN:VCARD\nVERSION:3.0\nFN:x\nPHOTO;ENCODING=b;TYPE=JPEG:@@@notbase64\n"
                         "PHOTO;VALUE=uri:https://example.org/p.jpg\nEND:VCARD\n")
    assert contact.image1 is None
    assert extra_lines(contact) == ["PHOTO;ENCODING=b;TYPE=JPEG:@@@notbase64",
                                    "PHOTO;VALUE=uri:https://example.org/p.jpg"]


def test_contacts_to_vcf_and_fn_fallback() -> None:
    people = [Contact(first_name="Ann", last_name="Lee"), Contact(company="ACME"), Contact()]
    text = contacts_to_vcf(people, "4.0")
    assert text.count("BEGIN:VCARD") == 3 and "FN:\r\n" in text
    assert [c.display_name for c in parse_ok(text)] == ["Ann Lee", "ACME", ""]
    with pytest.raises(ValueError, match="version"):
        contact_to_vcard(Contact(), "2.1")


def test_photo_content_type_is_sniffed_when_type_is_missing() -> None:
    payload = base64.b64encode(PNG).decode()
    [contact] = parse_ok(f"BEGIN:VCARD\nVERSION:3.0\nFN:x\nPHOTO;ENCODING=b:{payload}\nEND:VCARD\n")
    assert (contact.image1, contact.image_content_type) == (PNG, "image/png")
    assert f"PHOTO;ENCODING=b;TYPE=PNG:{payload}" in unfold(contact_to_vcard(replace(contact, extra={})))
