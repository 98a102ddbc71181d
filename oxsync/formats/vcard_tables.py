"""The vCard <-> Contact mapping, declared as data (one table per dialect and class).

Each row of `TABLE` names model field(s), the vCard property (plus the TYPE values that select a slot)
and a converter. `oxsync.formats.vcard` only walks this table; it holds no per-property logic.

Choices where vCard 3.0/4.0 has no standard home (other dialects and admins may rely on these):

- `file_as` -> X-OX-FILE-AS (Evolution's X-EVOLUTION-FILE-AS is accepted on input).
- Outlook-only phone kinds use Evolution's TEL TYPE tokens (X-EVOLUTION-CALLBACK, -COMPANY, -RADIO,
  -TELEX, -TTYTDD, -ASSISTANT): Evolution is the one client with Outlook's phone set. `ip_phone` is
  TYPE=X-OX-IP-PHONE; `primary` is TYPE=pref (3.0) / PREF=1 (4.0), Apple's TYPE=main is accepted.
- Year-less birthdays/anniversaries are stored with year 1604, Apple's sentinel (a leap year, so
  --0229 survives). 3.0 writes Apple's `BDAY;X-APPLE-OMIT-YEAR=1604:1604-MM-DD`, 4.0 writes `--MMDD`.
- assistants/managers/spouse name -> X-ASSISTANT / X-MANAGER / X-SPOUSE (X-EVOLUTION-* and
  X-KADDRESSBOOK-X-*Name accepted); anniversary -> ANNIVERSARY (4.0) / X-ANNIVERSARY (3.0).
- OX-only fields -> X-OX-<FIELD> (userfield01 -> X-OX-USERFIELD01, room_number -> X-OX-ROOM-NUMBER).
- private_flag -> CLASS:PRIVATE (CONFIDENTIAL reads as private). Distribution lists -> KIND:group +
  MEMBER (4.0) / X-ADDRESSBOOKSERVER-KIND + -MEMBER (Apple 3.0); X-OX-CN carries a free address's
  display name, X-OX-EMAILFIELD a contact member's email field when it is not 1.
- EMAIL TYPE=work/home/other selects email1/2/3; untyped addresses fill the free slots in order.
- Lines that no row consumes (unknown properties, a third work number, a second URL, ...) are kept
  verbatim in `Contact.extra["vcard:lines"]` and written again; the vCard group of a mapped line
  (Apple's `item1.`) is kept in `extra["vcard:group:<field>"]` so `item1.X-ABLabel` still attaches.
"""

from __future__ import annotations

from oxsync.formats.vcard_rows import (
    CLASS,
    DATE,
    INT,
    LIST,
    TEXT,
    URI,
    Conv,
    Entry,
    Members,
    Photo,
    Simple,
    SlotGroup,
    Struct,
    slot,
)
from oxsync.model.contact import Contact


def _fallback_fn(contact: Contact) -> str:
    """FN is mandatory: without a display name, write the name parts, else company, else email."""
    parts = (contact.title, contact.first_name, contact.second_name, contact.last_name, contact.suffix)
    return " ".join(p for p in parts if p) or contact.company or contact.email1


PHONES = SlotGroup("TEL", (
    slot("phone_business", "work,voice", "work"),
    slot("phone_business2", "work,voice", "work"),
    slot("fax_business", "work,fax", "work,fax"),
    slot("callback", "X-EVOLUTION-CALLBACK", "x-evolution-callback"),
    slot("phone_car", "car,voice", "car"),
    slot("phone_company", "X-EVOLUTION-COMPANY", "x-evolution-company"),
    slot("phone_home", "home,voice", "home"),
    slot("phone_home2", "home,voice", "home"),
    slot("fax_home", "home,fax", "home,fax"),
    slot("mobile1", "cell,voice", "cell"),
    slot("mobile2", "cell,voice", "cell"),
    slot("phone_other", "other,voice", "other", ""),
    slot("fax_other", "other,fax", "other,fax", "fax"),
    slot("isdn", "isdn", "isdn"),
    slot("pager", "pager", "pager"),
    slot("primary", "pref,voice", "pref", "main"),
    slot("radio", "X-EVOLUTION-RADIO", "x-evolution-radio"),
    slot("telex", "X-EVOLUTION-TELEX", "x-evolution-telex"),
    slot("tty_tdd", "X-EVOLUTION-TTYTDD", "x-evolution-ttytdd", "textphone"),
    slot("ip_phone", "X-OX-IP-PHONE", "x-ox-ip-phone"),
    slot("phone_assistant", "X-EVOLUTION-ASSISTANT", "x-evolution-assistant"),
), ignore=frozenset({"voice", "msg"}), strip_scheme="tel:")

EMAILS = SlotGroup("EMAIL", (
    slot("email1", "internet,work", "work"),
    slot("email2", "internet,home", "home"),
    slot("email3", "internet,other", "other"),
), ignore=frozenset({"internet", "x400"}), fill=("email1", "email2", "email3"))

ADDRESSES = SlotGroup("ADR", (
    slot(("business_street", "business_postal_code", "business_city", "business_state", "business_country"),
         "work", "work"),
    slot(("street", "postal_code", "city", "state", "country"), "home", "home"),
    slot(("second_street", "second_postal_code", "second_city", "second_state", "second_country"),
         "other", "other", ""),
), ignore=frozenset({"postal", "parcel", "dom", "intl"}), address=True, fill=("second_street",))

IM_ALIASES = (
    ("X-AIM", "aim:"), ("X-ICQ", "icq:"), ("X-JABBER", "xmpp:"), ("X-GOOGLE-TALK", "xmpp:"),
    ("X-MSN", "msnim:"), ("X-YAHOO", "ymsgr:"), ("X-SKYPE", "skype:"), ("X-SKYPE-USERNAME", "skype:"),
    ("X-GADUGADU", "gg:"), ("X-GROUPWISE", "groupwise:"),
)
IMS = SlotGroup("IMPP", (
    slot("instant_messenger", "work", "work"),
    slot("instant_messenger2", "home", "home"),
), uri=True, aliases=IM_ALIASES, fill=("instant_messenger", "instant_messenger2"))

X_OX_FIELDS: tuple[tuple[str, Conv], ...] = (
    *((f"userfield{n:02d}", TEXT) for n in range(1, 21)),
    *((name, TEXT) for name in (
        "room_number", "sales_volume", "tax_id", "commercial_register", "branches", "business_category",
        "employee_type", "number_of_employee", "marital_status", "number_of_children", "more_info",
    )),
    ("default_address", INT), ("color_label", INT),
)


def x_ox_name(attr: str) -> str:
    return "X-OX-" + attr.upper().replace("_", "-")


TABLE: tuple[Entry, ...] = (
    Simple("uid", "UID"),
    Struct("N", ("last_name", "first_name", "second_name", "title", "suffix"), always=True),
    Simple("display_name", "FN", always=True, default=_fallback_fn),
    Simple("nickname", "NICKNAME"),
    Simple("file_as", "X-OX-FILE-AS", aliases=("X-EVOLUTION-FILE-AS",)),
    Struct("ORG", ("company", "department"), overflow=", "),
    Simple("position", "TITLE"),
    Simple("profession", "ROLE"),
    ADDRESSES,
    PHONES,
    EMAILS,
    Simple("url", "URL", URI),
    IMS,
    Simple("birthday", "BDAY", DATE),
    Simple("anniversary", "X-ANNIVERSARY", DATE, prop4="ANNIVERSARY",
           aliases=("X-EVOLUTION-ANNIVERSARY", "X-KADDRESSBOOK-X-ANNIVERSARY")),
    Simple("assistants_name", "X-ASSISTANT",
           aliases=("X-EVOLUTION-ASSISTANT", "X-KADDRESSBOOK-X-ASSISTANTSNAME")),
    Simple("managers_name", "X-MANAGER", aliases=("X-EVOLUTION-MANAGER", "X-KADDRESSBOOK-X-MANAGERSNAME")),
    Simple("spouse_name", "X-SPOUSE", aliases=("X-EVOLUTION-SPOUSE", "X-KADDRESSBOOK-X-SPOUSESNAME")),
    Simple("note", "NOTE"),
    Simple("categories", "CATEGORIES", LIST, merge=","),
    Simple("private_flag", "CLASS", CLASS),
    Photo(),
    Members(),
    *(Simple(attr, x_ox_name(attr), conv) for attr, conv in X_OX_FIELDS),
)

NOT_IN_VCARD = frozenset({
    "object_id", "folder_id", "created_by", "modified_by", "creation_time", "last_modified", "attachments",
    "extra", "user_id", "resource_name",  # the DAV href name is kept by the DAV layer, not in the card
})
"""Server-maintained or stored elsewhere; every other Contact field must appear in TABLE (tested)."""
