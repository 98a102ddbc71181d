"""Contacts (MS-ASCNTC): page Contacts + Contacts2 <-> `oxsync.model.Contact`, as one table.

Elements without an OX field (Yomi names, CustomerId, GovernmentId...) are kept in `Contact.extra`
under their EAS name so that a device's value survives a round trip.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from oxsync.eas.mapping.common import (
    ATTACHMENTS_ROW,
    BIRTHDAY,
    EMAIL,
    ClassMapping,
    Field,
    InvalidValue,
    MapContext,
    Row,
    Special,
    body_row,
    categories_row,
)
from oxsync.eas.wbxml import E, Element
from oxsync.model import Contact

C, C2 = "Contacts", "Contacts2"


def _picture_out(obj: Contact, ctx: MapContext) -> list[Element]:
    if not obj.image1 or len(obj.image1) > ctx.max_picture_bytes:
        return []
    return [E(f"{C}:Picture", base64.b64encode(obj.image1).decode("ascii"))]


def _picture_in(obj: Contact, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is None or not elem.value_text().strip():
        obj.image1, obj.image_content_type = None, ""
        return
    try:
        data = base64.b64decode(elem.value_text().strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidValue("Picture is not base64") from exc
    if len(data) > ctx.max_picture_bytes:
        raise InvalidValue("Picture too large")
    obj.image1 = data
    obj.image_content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"


def _children_out(obj: Contact, ctx: MapContext) -> list[Element]:
    names = [n for n in obj.extra.get("Children", "").split("\n") if n]
    return [E(f"{C}:Children", *(E(f"{C}:Child", n) for n in names))] if names else []


def _children_in(obj: Contact, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    names = [c.value_text() for c in elem.findall(f"{C}:Child")] if elem is not None else []
    if names:
        obj.extra["Children"] = "\n".join(names)
    else:
        obj.extra.pop("Children", None)


ROWS: tuple[Row, ...] = (
    Field(f"{C}:Anniversary", "anniversary", BIRTHDAY),
    Field(f"{C}:AssistantName", "assistants_name"),
    Field(f"{C}:AssistantPhoneNumber", "phone_assistant"),
    Field(f"{C}:Birthday", "birthday", BIRTHDAY),
    Field(f"{C}:Business2PhoneNumber", "phone_business2"),
    Field(f"{C}:BusinessAddressCity", "business_city"),
    Field(f"{C}:BusinessAddressCountry", "business_country"),
    Field(f"{C}:BusinessAddressPostalCode", "business_postal_code"),
    Field(f"{C}:BusinessAddressState", "business_state"),
    Field(f"{C}:BusinessAddressStreet", "business_street"),
    Field(f"{C}:BusinessFaxNumber", "fax_business"),
    Field(f"{C}:BusinessPhoneNumber", "phone_business"),
    Field(f"{C}:CarPhoneNumber", "phone_car"),
    categories_row(C),
    Special((f"{C}:Children",), _children_out, _children_in),
    Field(f"{C}:CompanyName", "company"),
    Field(f"{C}:Department", "department"),
    Field(f"{C}:Email1Address", "email1", EMAIL),
    Field(f"{C}:Email2Address", "email2", EMAIL),
    Field(f"{C}:Email3Address", "email3", EMAIL),
    Field(f"{C}:FileAs", "file_as"),
    Field(f"{C}:FirstName", "first_name"),
    Field(f"{C}:Home2PhoneNumber", "phone_home2"),
    Field(f"{C}:HomeAddressCity", "city"),
    Field(f"{C}:HomeAddressCountry", "country"),
    Field(f"{C}:HomeAddressPostalCode", "postal_code"),
    Field(f"{C}:HomeAddressState", "state"),
    Field(f"{C}:HomeAddressStreet", "street"),
    Field(f"{C}:HomeFaxNumber", "fax_home"),
    Field(f"{C}:HomePhoneNumber", "phone_home"),
    Field(f"{C}:JobTitle", "position"),
    Field(f"{C}:LastName", "last_name"),
    Field(f"{C}:MiddleName", "second_name"),
    Field(f"{C}:MobilePhoneNumber", "mobile1"),
    Field(f"{C}:OfficeLocation", "room_number"),
    Field(f"{C}:OtherAddressCity", "second_city"),
    Field(f"{C}:OtherAddressCountry", "second_country"),
    Field(f"{C}:OtherAddressPostalCode", "second_postal_code"),
    Field(f"{C}:OtherAddressState", "second_state"),
    Field(f"{C}:OtherAddressStreet", "second_street"),
    Field(f"{C}:PagerNumber", "pager"),
    Field(f"{C}:RadioPhoneNumber", "radio"),
    Field(f"{C}:Spouse", "spouse_name"),
    Field(f"{C}:Suffix", "suffix"),
    Field(f"{C}:Title", "title"),
    Field(f"{C}:WebPage", "url"),
    Field(f"{C}:YomiCompanyName", "extra:YomiCompanyName"),
    Field(f"{C}:YomiFirstName", "extra:YomiFirstName"),
    Field(f"{C}:YomiLastName", "extra:YomiLastName"),
    Special((f"{C}:Picture",), _picture_out, _picture_in),
    ATTACHMENTS_ROW,
    body_row("note"),
    Special((f"{C}:Body",), lambda o, c: [], lambda o, e, c, clear: setattr(o, "note", e.value_text()) if e is not None
            else None, until=2.5),
    Field(f"{C2}:CustomerId", "extra:CustomerId"),
    Field(f"{C2}:GovernmentId", "extra:GovernmentId"),
    Field(f"{C2}:IMAddress", "instant_messenger"),
    Field(f"{C2}:IMAddress2", "instant_messenger2"),
    Field(f"{C2}:IMAddress3", "extra:IMAddress3"),
    Field(f"{C2}:ManagerName", "managers_name"),
    Field(f"{C2}:CompanyMainPhone", "phone_company"),
    Field(f"{C2}:AccountName", "extra:AccountName"),
    Field(f"{C2}:NickName", "nickname"),
    Field(f"{C2}:MMS", "extra:MMS"),
)

CONTACTS = ClassMapping("Contacts", ROWS, Contact)


def fill_defaults(contact: Contact) -> Any:
    """FileAs / display name when the device sent none (Z-Push computes FileAs the same way)."""
    if not contact.display_name:
        contact.display_name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or \
            contact.company or contact.email1
    if not contact.file_as:
        contact.file_as = ", ".join(p for p in (contact.last_name, contact.first_name) if p) or contact.display_name
    return contact
