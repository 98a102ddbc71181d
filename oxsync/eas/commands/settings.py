"""Settings (Oof, DeviceInformation, UserInformation, DevicePassword), Search (GAL), ResolveRecipients
(with free/busy), ValidateCert."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from twisted.internet.defer import Deferred

from oxsync.eas import state
from oxsync.eas.certs import validate_all
from oxsync.eas.commands import mailitems
from oxsync.eas.commands.provision import device_information
from oxsync.eas.mapping.common import InvalidValue, extended, parse_datetime
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.model import Contact, ShownAs
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.render import render_each
from oxsync.store.errors import StoreError
from oxsync.store.session import UserSession

S = "Settings"
OOF_KEY = "eas_oof"
APPLIES = ("AppliesToInternal", "AppliesToExternalKnown", "AppliesToExternalUnknown")


def settings(eas: Eas, req: EasRequest) -> Any:
    d = eas.write(req, lambda session: _settings(session, req), light=True)
    oof = req.body.find(f"{S}:Oof") if req.body is not None else None
    if eas.mail is None or oof is None:
        return d
    from oxsync.eas.oof import with_sieve

    return d.addCallback(lambda response: with_sieve(eas, req, response, setting=oof.find(f"{S}:Set") is not None))


def _settings(session: UserSession, req: EasRequest) -> EasResponse:
    out = E(f"{S}:Settings", E(f"{S}:Status", "1"))
    for child in req.body or []:
        if child.tag == f"{S}:Oof":
            out.append(_oof(session, child))
        elif child.tag == f"{S}:DeviceInformation":
            if req.device_id not in state.NOT_PERSISTED_DEVICES:
                record = state.load_device(session, req.device_id)
                record["info"] = {**record.get("info", {}), **device_information(child)}
                state.touch_device(session, req.device_id, record)
            out.append(E(f"{S}:DeviceInformation", E(f"{S}:Status", "1")))
        elif child.tag == f"{S}:UserInformation":
            out.append(_user_information(session, req))
        elif child.tag == f"{S}:DevicePassword":
            out.append(E(f"{S}:DevicePassword", E(f"{S}:Status", "1")))
        elif child.tag == f"{S}:RightsManagementInformation":
            out.append(E(f"{S}:RightsManagementInformation", E(f"{S}:Status", "1")))
        else:
            out.children[0].text = "2"
    return EasResponse(out)


def _user_information(session: UserSession, req: EasRequest) -> Element:
    me = session.me()
    addresses = session.allowed_senders()  # the addresses the user may send as (a From the device offers)
    smtp = [E(f"{S}:SMTPAddress", a) for a in addresses if a]
    if req.v >= 14.1:
        emails = E(f"{S}:EmailAddresses", E(f"{S}:PrimarySmtpAddress", me.email), *smtp)
        body = E(f"{S}:Accounts", E(f"{S}:Account", E(f"{S}:UserDisplayName", me.display_name), emails))
    else:
        body = E(f"{S}:EmailAddresses", *smtp)
    return E(f"{S}:UserInformation", E(f"{S}:Status", "1"), E(f"{S}:Get", body))


def _oof(session: UserSession, elem: Element) -> Element:
    stored = session.get_settings()
    oof = stored.get(OOF_KEY) or {"state": "0", "messages": {}}
    setter = elem.find(f"{S}:Set")
    if setter is not None:
        new_state = setter.findtext(f"{S}:OofState", oof.get("state", "0"))
        if new_state not in ("0", "1", "2"):
            return E(f"{S}:Oof", E(f"{S}:Status", "5"))
        oof = {"state": new_state, "messages": dict(oof.get("messages", {}))}
        try:
            if new_state == "2":
                oof["start"] = extended(parse_datetime(setter.findtext(f"{S}:StartTime", "")))
                oof["end"] = extended(parse_datetime(setter.findtext(f"{S}:EndTime", "")))
        except InvalidValue:
            return E(f"{S}:Oof", E(f"{S}:Status", "5"))
        for message in setter.findall(f"{S}:OofMessage"):
            audience = next((a for a in APPLIES if message.find(f"{S}:{a}") is not None), None)
            if audience is None:
                continue
            oof["messages"][audience] = {"enabled": message.findtext(f"{S}:Enabled", "0"),
                                         "reply": message.findtext(f"{S}:ReplyMessage", "")[:65536],
                                         "body_type": message.findtext(f"{S}:BodyType", "Text")}
        session.put_settings({**stored, OOF_KEY: oof})
        return E(f"{S}:Oof", E(f"{S}:Status", "1"))
    get = E(f"{S}:Get", E(f"{S}:OofState", oof.get("state", "0")))
    if oof.get("state") == "2":
        get.append(E(f"{S}:StartTime", oof.get("start", "")))
        get.append(E(f"{S}:EndTime", oof.get("end", "")))
    for audience in APPLIES:
        message = oof.get("messages", {}).get(audience)
        if message is not None:
            get.append(E(f"{S}:OofMessage", E(f"{S}:{audience}"), E(f"{S}:Enabled", message["enabled"]),
                         E(f"{S}:ReplyMessage", message["reply"]), E(f"{S}:BodyType", message["body_type"])))
    return E(f"{S}:Oof", E(f"{S}:Status", "1"), get)


# ------------------------------------------------------------------ Search (GAL)


def _range(text: str | None, limit: int) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in (text or f"0-{limit - 1}").split("-"))
    except ValueError:
        return 0, limit - 1
    low = max(0, low)
    return low, max(low, min(high, low + limit - 1))


def _picture(contact: Contact, max_size: int | None, budget: list[int]) -> Element:
    if not contact.image1:
        return E("GAL:Picture", E("GAL:Status", "173"))
    if max_size is not None and len(contact.image1) > max_size:
        return E("GAL:Picture", E("GAL:Status", "174"))
    if budget[0] <= 0:
        return E("GAL:Picture", E("GAL:Status", "175"))
    budget[0] -= 1
    return E("GAL:Picture", E("GAL:Status", "1"), E("GAL:Data", base64.b64encode(contact.image1).decode("ascii")))


GAL_FIELDS = (("DisplayName", "display_name"), ("Phone", "phone_business"), ("Office", "room_number"),
              ("Title", "position"), ("Company", "company"), ("FirstName", "first_name"), ("LastName", "last_name"),
              ("HomePhone", "phone_home"), ("MobilePhone", "mobile1"), ("EmailAddress", "email1"))
"""GAL properties <-> contact fields (Alias comes from the account login)."""


def search(eas: Eas, req: EasRequest) -> Any:
    store = req.body.find("Search:Store") if req.body is not None else None
    if store is not None and store.findtext("Search:Name", "") == "Mailbox" and eas.mail is not None:
        options = store.find("Search:Options")
        low, high = _range(options.findtext("Search:Range") if options is not None else None,
                           eas.config.max_search_results)
        return mailitems.search_mailbox(eas, req, store, low, high).addCallback(
            lambda found: EasResponse(E("Search:Search", E("Search:Status", "1"), E("Search:Response", found)))
        ).addErrback(mailitems.unavailable_response, "Search:Search", "Search:Status", "110")
    return eas.read(req, lambda session: _search(eas, session, req))


def _search(eas: Eas, session: UserSession, req: EasRequest) -> EasResponse:
    store = req.body.find("Search:Store") if req.body is not None else None
    if store is None:
        return EasResponse(E("Search:Search", E("Search:Status", "2")))
    name = store.findtext("Search:Name", "")
    query = store.findtext("Search:Query", "").strip()
    options = store.find("Search:Options")
    limit = eas.config.max_search_results
    low, high = _range(options.findtext("Search:Range") if options is not None else None, limit)
    result_store = E("Search:Store")
    out = E("Search:Search", E("Search:Status", "1"), E("Search:Response", result_store))
    if name != "GAL" or not query:
        result_store.append(E("Search:Status", "1" if name == "Mailbox" else "2"))
        if name == "Mailbox":
            result_store.children += [E("Search:Result"), E("Search:Range", "0-0"), E("Search:Total", "0")]
        return EasResponse(out)
    matches = [c for c in session.search_objects(GLOBAL_ADDRESS_BOOK, query, limit=high + 1)
               if isinstance(c, Contact)]
    logins = {u.contact_id: u.login for u in session.users()}
    picture = options.find("Search:Picture") if options is not None else None
    max_size = None
    budget = [limit]
    if picture is not None:
        size = picture.findtext("Search:MaxSize")
        count = picture.findtext("Search:MaxPictures")
        max_size = int(size) if size and size.isdigit() else None
        budget = [int(count) if count and count.isdigit() else limit]
    page = matches[low:high + 1]
    result_store.append(E("Search:Status", "1"))
    def result(contact: Contact) -> Element:
        props = E("Search:Properties")
        for tag, attr in GAL_FIELDS:
            value = getattr(contact, attr)
            if value:
                props.append(E(f"GAL:{tag}", value))
        if logins.get(contact.object_id):
            props.append(E("GAL:Alias", logins[contact.object_id]))
        if picture is not None and req.v >= 14.1:
            props.append(_picture(contact, max_size, budget))
        return E("Search:Result", props)

    result_store.children += render_each("eas", page, result, folder_id=GLOBAL_ADDRESS_BOOK)
    if not page:
        result_store.append(E("Search:Result"))
    result_store.append(E("Search:Range", f"{low}-{low + max(0, len(page) - 1)}"))
    result_store.append(E("Search:Total", str(len(matches))))
    return EasResponse(out)


# ------------------------------------------------------------------ ResolveRecipients

SLOT = timedelta(minutes=30)
BUSY_DIGIT = {ShownAs.FREE: 0, ShownAs.TEMPORARY: 1, ShownAs.RESERVED: 2, ShownAs.ABSENT: 3}
MAX_SLOTS = 7 * 48


def merged_free_busy(periods: list[Any], start: datetime, end: datetime) -> str:
    slots: list[str] = []
    cursor = start
    while cursor < end and len(slots) < MAX_SLOTS:
        slot_end = cursor + SLOT
        digit = 0
        for period in periods:
            if period.start < slot_end and period.end > cursor:
                digit = max(digit, BUSY_DIGIT.get(period.shown_as, 2))
        slots.append(str(digit))
        cursor = slot_end
    return "".join(slots)


def resolve_recipients(eas: Eas, req: EasRequest) -> Any:
    return eas.read(req, lambda session: _resolve(eas, session, req))


def _resolve(eas: Eas, session: UserSession, req: EasRequest) -> EasResponse:
    R = "ResolveRecipients"
    if req.body is None:
        return EasResponse(E(f"{R}:{R}", E(f"{R}:Status", "5")))
    options = req.body.find(f"{R}:Options")
    availability = options.find(f"{R}:Availability") if options is not None else None
    window = None
    if availability is not None:
        try:
            start = parse_datetime(availability.findtext(f"{R}:StartTime", ""))
            end = parse_datetime(availability.findtext(f"{R}:EndTime", ""))
        except InvalidValue:
            return EasResponse(E(f"{R}:{R}", E(f"{R}:Status", "5")))
        window = (start, min(end, start + SLOT * MAX_SLOTS))
    out = E(f"{R}:{R}", E(f"{R}:Status", "1"))
    users = {u.id: u for u in session.users()}
    for to in req.body.findall(f"{R}:To")[:100]:
        text = to.value_text().strip()
        response = out.append(E(f"{R}:Response", E(f"{R}:To", text)))
        found: list[tuple[str, str, int | None]] = []
        principal = session.find_principal(text) if "@" in text or text.isalnum() else None
        if principal is not None and principal[0] == "user" and principal[1] in users:
            user = users[principal[1]]
            found = [(user.display_name, user.email, user.id)]
        elif text:
            for contact in session.search_objects(GLOBAL_ADDRESS_BOOK, text, limit=10):
                if isinstance(contact, Contact) and contact.email1:
                    found.append((contact.display_name, contact.email1, contact.user_id))
        if not found:
            response.children += [E(f"{R}:Status", "4"), E(f"{R}:RecipientCount", "0")]
            continue
        response.children += [E(f"{R}:Status", "1" if len(found) == 1 else "2"),
                              E(f"{R}:RecipientCount", str(len(found)))]
        for display, email, user_id in found:
            recipient = E(f"{R}:Recipient", E(f"{R}:Type", "1"), E(f"{R}:DisplayName", display or email),
                          E(f"{R}:EmailAddress", email))
            if window is not None:
                recipient.append(_availability(session, user_id, window))
            response.append(recipient)
    return EasResponse(out)


def _availability(session: UserSession, user_id: int | None, window: tuple[datetime, datetime]) -> Element:
    R = "ResolveRecipients"
    start, end = window
    if user_id is None:
        slots = "4" * max(1, int((end - start) / SLOT))
        return E(f"{R}:Availability", E(f"{R}:Status", "1"), E(f"{R}:MergedFreeBusy", slots))
    try:
        periods = session.free_busy(start, end, user_id=user_id)
    except StoreError:
        return E(f"{R}:Availability", E(f"{R}:Status", "163"))
    return E(f"{R}:Availability", E(f"{R}:Status", "1"), E(f"{R}:MergedFreeBusy", merged_free_busy(periods, start, end)))


# ------------------------------------------------------------------ ValidateCert


def validate_cert(eas: Eas, req: EasRequest) -> Deferred[EasResponse] | EasResponse:
    """Check each S/MIME certificate against the sent chain and the trusted roots (oxsync.eas.certs)."""
    body = req.body
    certificates = body.find("ValidateCert:Certificates") if body is not None else None
    if body is None or certificates is None:
        return EasResponse(E("ValidateCert:ValidateCert", E("ValidateCert:Status", "2")))
    blobs = [c.value_text() or "" for c in certificates.findall("ValidateCert:Certificate")]
    chain_node = body.find("ValidateCert:CertificateChain")
    chain = [c.value_text() or "" for c in chain_node.findall("ValidateCert:Certificate")] if chain_node is not None else []
    limit = eas.settings.eas.max_validate_certificates
    if not blobs or len(blobs) > limit or len(chain) > limit:
        return EasResponse(E("ValidateCert:ValidateCert", E("ValidateCert:Status", "2")))
    check_crl = (body.findtext("ValidateCert:CheckCrl") or "0").strip() == "1"

    def answer(statuses: list[int]) -> EasResponse:
        out = E("ValidateCert:ValidateCert", E("ValidateCert:Status", "1"))
        for status in statuses:
            out.append(E("ValidateCert:Certificate", E("ValidateCert:Status", str(status))))
        return EasResponse(out)

    d = eas.async_store.run(validate_all, blobs, chain, eas.settings.eas.trusted_ca_file, check_crl)
    return d.addCallback(answer)
