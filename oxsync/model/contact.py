"""Contacts and distribution lists (ox-webdav-xml.md §2.3), field for field."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

from oxsync.model.common import ObjectBase

NAME_FIELDS = ("last_name", "first_name", "second_name", "suffix", "title", "display_name", "nickname", "file_as")
HOME_ADDRESS_FIELDS = ("street", "postal_code", "city", "state", "country")
BUSINESS_ADDRESS_FIELDS = tuple(f"business_{f}" for f in HOME_ADDRESS_FIELDS)
OTHER_ADDRESS_FIELDS = tuple(f"second_{f}" for f in HOME_ADDRESS_FIELDS)
PHONE_FIELDS = (
    "phone_business", "phone_business2", "fax_business", "callback", "phone_car", "phone_company",
    "phone_home", "phone_home2", "fax_home", "mobile1", "mobile2", "phone_other", "fax_other", "isdn",
    "pager", "primary", "radio", "telex", "tty_tdd", "ip_phone", "phone_assistant",
)
INTERNET_FIELDS = ("email1", "email2", "email3", "url", "instant_messenger", "instant_messenger2")
BUSINESS_FIELDS = (
    "company", "department", "position", "profession", "employee_type", "room_number",
    "number_of_employee", "sales_volume", "tax_id", "commercial_register", "branches",
    "business_category", "managers_name", "assistants_name",
)
PERSONAL_STRING_FIELDS = ("marital_status", "number_of_children", "spouse_name")
MISC_FIELDS = ("note", "more_info") + tuple(f"userfield{n:02d}" for n in range(1, 21))
EMAIL_FIELDS = ("email1", "email2", "email3")

STRING_FIELDS = (
    NAME_FIELDS + HOME_ADDRESS_FIELDS + BUSINESS_ADDRESS_FIELDS + OTHER_ADDRESS_FIELDS + PHONE_FIELDS
    + INTERNET_FIELDS + BUSINESS_FIELDS + PERSONAL_STRING_FIELDS + MISC_FIELDS
)
"""Every plain-string contact field, in OX order; mappers iterate over this instead of if-chains."""


@dataclass
class DistributionListMember:
    """A member of a distribution list: a contact's address (email_field 1-3) or a free address (0)."""

    email: str
    display_name: str = ""
    contact_id: int | None = None
    folder_id: int | None = None
    email_field: int = 0



@dataclass(kw_only=True)
class Contact(ObjectBase):
    # names
    last_name: str = ""
    first_name: str = ""
    second_name: str = ""
    suffix: str = ""
    title: str = ""
    display_name: str = ""
    nickname: str = ""
    file_as: str = ""
    # home address
    street: str = ""
    postal_code: str = ""
    city: str = ""
    state: str = ""
    country: str = ""
    # business address
    business_street: str = ""
    business_postal_code: str = ""
    business_city: str = ""
    business_state: str = ""
    business_country: str = ""
    # other address
    second_street: str = ""
    second_postal_code: str = ""
    second_city: str = ""
    second_state: str = ""
    second_country: str = ""
    # phones
    phone_business: str = ""
    phone_business2: str = ""
    fax_business: str = ""
    callback: str = ""
    phone_car: str = ""
    phone_company: str = ""
    phone_home: str = ""
    phone_home2: str = ""
    fax_home: str = ""
    mobile1: str = ""
    mobile2: str = ""
    phone_other: str = ""
    fax_other: str = ""
    isdn: str = ""
    pager: str = ""
    primary: str = ""
    radio: str = ""
    telex: str = ""
    tty_tdd: str = ""
    ip_phone: str = ""
    phone_assistant: str = ""
    # internet
    email1: str = ""
    email2: str = ""
    email3: str = ""
    url: str = ""
    instant_messenger: str = ""
    instant_messenger2: str = ""
    # business
    company: str = ""
    department: str = ""
    position: str = ""
    profession: str = ""
    employee_type: str = ""
    room_number: str = ""
    number_of_employee: str = ""
    sales_volume: str = ""
    tax_id: str = ""
    commercial_register: str = ""
    branches: str = ""
    business_category: str = ""
    managers_name: str = ""
    assistants_name: str = ""
    # personal
    birthday: date | None = None
    anniversary: date | None = None
    marital_status: str = ""
    number_of_children: str = ""
    spouse_name: str = ""
    # misc
    note: str = ""
    more_info: str = ""
    userfield01: str = ""
    userfield02: str = ""
    userfield03: str = ""
    userfield04: str = ""
    userfield05: str = ""
    userfield06: str = ""
    userfield07: str = ""
    userfield08: str = ""
    userfield09: str = ""
    userfield10: str = ""
    userfield11: str = ""
    userfield12: str = ""
    userfield13: str = ""
    userfield14: str = ""
    userfield15: str = ""
    userfield16: str = ""
    userfield17: str = ""
    userfield18: str = ""
    userfield19: str = ""
    userfield20: str = ""
    default_address: int = 0
    # picture
    image1: bytes | None = None
    image_content_type: str = ""
    # distribution list
    distribution_list: list[DistributionListMember] | None = None
    """None for an ordinary contact; a list (possibly empty) makes this a distribution list."""
    user_id: int | None = None
    """Set on global-address-book entries: the account this contact describes."""
    uid: str = ""

    @property
    def is_distribution_list(self) -> bool:
        return self.distribution_list is not None


def _check_string_fields() -> None:
    declared = {f.name for f in fields(Contact)}
    missing = [name for name in STRING_FIELDS if name not in declared]
    if missing:
        raise AssertionError(f"Contact lacks fields {missing}")


_check_string_fields()
