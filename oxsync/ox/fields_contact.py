"""Contacts and distribution lists <-> `ox:` elements (reference ox-webdav-xml.md §2.3).

Every plain string field of the model is in the table (from `model.contact.STRING_FIELDS`, renamed
where the XML name differs); image1 and the distribution list are structured and handled below.
"""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from oxsync.model import Contact, DistributionListMember
from oxsync.model.contact import STRING_FIELDS
from oxsync.ox.errors import INVALID_INPUT, MISSING_FIELD, OxFailure
from oxsync.ox.fields import (
    BOOL,
    DATE,
    INT0,
    Field,
    bool_out,
    common_fields,
    read_fields,
    write_fields,
)
from oxsync.ox.wire import attr, attrs, el, local, text

XML_NAME = {"display_name": "displayname", "marital_status": "martital_status", "file_as": "file_as"}
"""Model attribute -> XML element where they differ (`martital_status` sic, as OX writes it)."""

ALIASES = {"file_as": ("fileas",), "marital_status": ("marital_status",)}

TABLE: tuple[Field, ...] = (
    *(Field(XML_NAME.get(name, name), name, aliases=ALIASES.get(name, ()), write_aliases=name == "file_as")
      for name in STRING_FIELDS),
    Field("birthday", "birthday", DATE),
    Field("anniversary", "anniversary", DATE),
    Field("defaultaddress", "default_address", INT0),
    Field("image_content_type", "image_content_type"),
    *common_fields(with_color=False),
)


def contact_xml(c: Contact) -> str:
    parts = [write_fields(c, TABLE)]
    if c.image1:
        parts.append(el("image1", base64.b64encode(c.image1).decode("ascii")))
    parts.append(el("distributionlist_flag", bool_out(c.is_distribution_list)))
    if c.distribution_list:
        members = "".join(
            f"<ox:email{attrs([('id', m.contact_id or 0), ('folder_id', m.folder_id or 0), ('displayname', m.display_name or m.email), ('emailfield', m.email_field)])}>"
            f"{_esc(m.email)}</ox:email>" for m in c.distribution_list)
        parts.append(f"<ox:distributionlist>{members}</ox:distributionlist>")
    return "".join(parts)


def _esc(value: str) -> str:
    from xml.sax.saxutils import escape

    from oxsync.model.text import xml_safe

    return escape(xml_safe(value))


def read_contact(c: Contact, given: dict[str, etree._Element], creating: bool) -> None:
    read_fields(c, TABLE, given)
    if "image1" in given:
        raw = text(given["image1"]).strip()
        if raw:
            try:
                c.image1 = base64.b64decode(raw, validate=False)
            except (binascii.Error, ValueError):
                raise OxFailure(INVALID_INPUT, "image1 is not base64") from None
            c.image_content_type = c.image_content_type or "image/jpeg"
        elif not creating:
            c.image1, c.image_content_type = None, ""
    flag = BOOL.inp(text(given["distributionlist_flag"])) if "distributionlist_flag" in given else None
    if "distributionlist" in given:
        c.distribution_list = [_member(e) for e in given["distributionlist"] if isinstance(e.tag, str)]
    if flag is False:
        c.distribution_list = None
    elif flag is True and c.distribution_list is None:
        c.distribution_list = []


def _member(element: etree._Element) -> DistributionListMember:
    if local(element) != "email":
        raise OxFailure(INVALID_INPUT, f"unexpected element {local(element)} in distributionlist")
    field = attr(element, "emailfield")
    if field is None:
        raise OxFailure(MISSING_FIELD, "emailfield")
    try:
        email_field = int(field)
        contact_id = int(attr(element, "id", "0") or 0) or None
        folder_id = int(attr(element, "folder_id", "0") or 0) or None
    except ValueError:
        raise OxFailure(INVALID_INPUT, "bad number in distribution list member") from None
    address = text(element).strip()
    return DistributionListMember(email=address, display_name=attr(element, "displayname") or address,
                                  contact_id=contact_id, folder_id=folder_id, email_field=email_field)
