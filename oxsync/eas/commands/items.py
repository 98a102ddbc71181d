"""GetItemEstimate, MoveItems, ItemOperations (items and attachments), MeetingResponse."""

from __future__ import annotations

import base64
import struct
from typing import Any

from twisted.internet.defer import maybeDeferred

from oxsync.eas import state
from oxsync.eas.collection import CollectionRequest, CollectionSync, mark_moved
from oxsync.eas.commands import mailitems
from oxsync.eas.commands.sync import MAIL_IDS, map_context, resolve_collection
from oxsync.eas.mailfolders import is_mail_id
from oxsync.eas.mapping.registry import BY_MODULE
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element, encode
from oxsync.model import Appointment, Confirmation, Module
from oxsync.render import render_one
from oxsync.store.errors import InvalidData, NotFound, PermissionDenied, StoreError
from oxsync.store.session import UserSession

CLASS_OF = {Module.CONTACT: "Contacts", Module.CALENDAR: "Calendar", Module.TASK: "Tasks"}


# ------------------------------------------------------------------ GetItemEstimate


def get_item_estimate(eas: Eas, req: EasRequest) -> Any:
    unlisted: list[tuple[Element, mailitems.Unlisted]] = []

    def counted(response: EasResponse) -> Any:
        if not unlisted:
            return response
        return mailitems.count_unlisted(eas, req, unlisted).addCallback(lambda _: response).addErrback(
            mailitems.unavailable_response, "GetItemEstimate:GetItemEstimate", "GetItemEstimate:Status", "110")

    return eas.read(req, lambda session: _estimate(eas, session, req, unlisted)).addCallback(counted)


def _estimate(eas: Eas, session: UserSession, req: EasRequest,
              unlisted: list[tuple[Element, mailitems.Unlisted]]) -> EasResponse:
    out = E("GetItemEstimate:GetItemEstimate")
    collections = req.body.find("GetItemEstimate:Collections") if req.body is not None else None
    if collections is None:
        return EasResponse(E("GetItemEstimate:GetItemEstimate", E("GetItemEstimate:Status", "2")))
    for coll in collections.findall("GetItemEstimate:Collection"):
        cid = coll.findtext("GetItemEstimate:CollectionId", "")
        key = coll.findtext("AirSync:SyncKey")
        options = coll.find("AirSync:Options")
        filter_text = (options.findtext("AirSync:FilterType") if options is not None else None) \
            or coll.findtext("AirSync:FilterType")
        response = E("GetItemEstimate:Response")
        out.append(response)
        if mailitems.concerns_mail(eas, cid):
            estimate = mailitems.estimate_mail(session, req.device_id, cid, int(filter_text)
                                               if filter_text and filter_text.isdigit() else None)
            if isinstance(estimate, mailitems.Unlisted):
                unlisted.append((response, estimate))
            elif estimate is None:
                response.append(E("GetItemEstimate:Status", "3"))
            else:
                response.children += [E("GetItemEstimate:Status", "1"), E(
                    "GetItemEstimate:Collection", E("GetItemEstimate:CollectionId", cid),
                    E("GetItemEstimate:Estimate", str(estimate)))]
            continue
        target = resolve_collection(session, cid)
        if target is None:
            response.append(E("GetItemEstimate:Status", "2"))
            continue
        st = session.get_state(req.device_id, state.collection_key(cid))
        if st is None or key == "0":
            response.append(E("GetItemEstimate:Status", "3"))
            continue
        if key is not None and key not in (st.get("key"), st.get("prev_key")):
            response.append(E("GetItemEstimate:Status", "4"))
            continue
        module, folder_id = target
        engine = CollectionSync(session, req.device_id, module, folder_id,
                                map_context(session, req, CollectionRequest(key or "", cid), eas), 0)
        filter_type = int(filter_text) if filter_text and filter_text.isdigit() else None
        estimate = engine.estimate(st, filter_type)
        response.append(E("GetItemEstimate:Status", "1"))
        response.append(E("GetItemEstimate:Collection", E("GetItemEstimate:CollectionId", cid),
                          E("GetItemEstimate:Estimate", str(estimate))))
    return EasResponse(out)


# ------------------------------------------------------------------ MoveItems


def move_items(eas: Eas, req: EasRequest) -> Any:
    moves = req.body.findall("Move:Move") if req.body is not None else []
    mail = [m for m in moves if mailitems.concerns_mail(eas, m.findtext("Move:SrcFldId", ""),
                                                         m.findtext("Move:DstFldId", ""))]
    if not mail:
        return eas.write(req, lambda session: _move(session, req, moves))
    pim = [m for m in moves if not any(m is x for x in mail)]

    def combine(mail_responses: list[Element]) -> Any:
        if not pim:
            return EasResponse(E("Move:MoveItems", *mail_responses))
        def merged(moved: EasResponse) -> EasResponse:
            pim_responses = moved.body.children if isinstance(moved.body, Element) else []
            return EasResponse(E("Move:MoveItems", *pim_responses, *mail_responses))

        return eas.write(req, lambda session: _move(session, req, pim)).addCallback(merged)

    return mailitems.move_mail(eas, req, mail).addCallback(combine).addErrback(
        mailitems.unavailable_response, "Move:MoveItems", "Move:Status", "110")


def _move(session: UserSession, req: EasRequest, moves: list[Element]) -> EasResponse:
    out = E("Move:MoveItems")
    for move in moves:
        src_id = move.findtext("Move:SrcMsgId", "")
        src, dst = move.findtext("Move:SrcFldId", ""), move.findtext("Move:DstFldId", "")
        response = out.append(E("Move:Response", E("Move:SrcMsgId", src_id)))
        if src == dst:
            response.append(E("Move:Status", "4"))
            continue
        source, target = resolve_collection(session, src), resolve_collection(session, dst)
        if source is None or source[1] is None or not src_id.isdigit():
            response.append(E("Move:Status", "1"))
            continue
        if target is None or target[1] is None:
            response.append(E("Move:Status", "2"))
            continue
        try:
            moved = session.move_object(source[1], int(src_id), target[1])
        except NotFound:
            response.append(E("Move:Status", "1"))
            continue
        except (PermissionDenied, InvalidData, StoreError):
            response.append(E("Move:Status", "5"))
            continue
        mark_moved(session, req.device_id, src, dst, int(src_id), moved.last_modified)
        response.append(E("Move:Status", "3"))
        response.append(E("Move:DstMsgId", str(moved.object_id)))
    return EasResponse(out)


# ------------------------------------------------------------------ ItemOperations


MULTIPART_CONTENT_TYPE = b"application/vnd.ms-sync.multipart"


def _part_bytes(elem: Element, attachment: bool) -> bytes:
    if elem.opaque is not None:
        return elem.opaque
    text = elem.text or ""
    return base64.b64decode(text) if attachment else text.encode("utf-8")


def multipart(response: EasResponse) -> EasResponse:
    """MS-ASCMD 2.2.1.10 / MS-ASHTTP: each fetched Data moves to a later part, `ItemOperations:Part` n in its place.

    Body: int32 part count, then int32 offset and int32 length per part (little-endian), then the parts;
    part 0 is the WBXML response."""
    if not isinstance(response.body, Element) or response.code != 200:
        return response
    parts: list[bytes] = [b""]

    def walk(elem: Element, inside_properties: bool) -> None:
        for i, child in enumerate(elem.children):
            if child.tag == "ItemOperations:Data" and inside_properties:
                parts.append(_part_bytes(child, True))
            elif child.tag == "AirSyncBase:Data" and inside_properties and elem.tag == "AirSyncBase:Body":
                parts.append(_part_bytes(child, False))
            else:
                walk(child, inside_properties or child.tag == "ItemOperations:Properties")
                continue
            elem.children[i] = E("ItemOperations:Part", str(len(parts) - 1))

    walk(response.body, False)
    parts[0] = encode(response.body)
    header_size = 4 + 8 * len(parts)
    out = [struct.pack("<i", len(parts))]
    offset = header_size
    for part in parts:
        out.append(struct.pack("<ii", offset, len(part)))
        offset += len(part)
    return EasResponse(b"".join(out + parts), response.code, response.headers, MULTIPART_CONTENT_TYPE)


def item_operations(eas: Eas, req: EasRequest) -> Any:
    d = maybeDeferred(_item_operations_any, eas, req)
    if req.accept_multipart:
        d.addCallback(multipart)
    return d


def _item_operations_any(eas: Eas, req: EasRequest) -> Any:
    ops = list(enumerate(req.body)) if req.body is not None else []
    mail = [(i, op) for i, op in ops if mailitems.is_mail_operation(eas, op)]
    if not mail:
        return eas.read(req, lambda session: _item_operations(eas, session, req))
    mail_ids = {i for i, _ in mail}

    def combine(mail_results: dict[int, Element]) -> Any:
        def pim(session: UserSession) -> EasResponse:
            response = E("ItemOperations:Response")
            for i, op in ops:
                if i in mail_ids:
                    response.append(mail_results[i])
                elif op.tag == "ItemOperations:Fetch":
                    response.append(_fetch(eas, session, req, op))
                else:
                    response.append(E(op.tag, E("ItemOperations:Status", "156")))
            return EasResponse(E("ItemOperations:ItemOperations", E("ItemOperations:Status", "1"), response))
        return eas.read(req, pim)

    return mailitems.item_operations_mail(eas, req, mail).addCallback(combine).addErrback(
        mailitems.unavailable_response, "ItemOperations:ItemOperations", "ItemOperations:Status", "110")


def _item_operations(eas: Eas, session: UserSession, req: EasRequest) -> EasResponse:
    if req.body is None:
        return EasResponse(E("ItemOperations:ItemOperations", E("ItemOperations:Status", "2")))
    response = E("ItemOperations:Response")
    for op in req.body:
        if op.tag == "ItemOperations:Fetch":
            response.append(_fetch(eas, session, req, op))
        else:
            response.append(E(op.tag, E("ItemOperations:Status", "156")))
    return EasResponse(E("ItemOperations:ItemOperations", E("ItemOperations:Status", "1"), response))


def _fetch(eas: Eas, session: UserSession, req: EasRequest, op: Element) -> Element:
    reference = op.findtext("AirSyncBase:FileReference")
    if reference is not None:
        return _fetch_attachment(session, reference)
    cid, sid = op.findtext("AirSync:CollectionId", ""), op.findtext("AirSync:ServerId", "")
    out = E("ItemOperations:Fetch")
    module, folder_id = resolve_collection(session, cid) or (None, None)
    if module is None or folder_id is None or not sid.isdigit():
        out.append(E("ItemOperations:Status", "6"))
        return out
    try:
        obj = session.get_object(folder_id, int(sid))
    except (NotFound, InvalidData):  # unknown, unreadable, or an id no object can have
        out.append(E("ItemOperations:Status", "6"))
        return out
    coll = CollectionRequest("", cid)
    options = op.find("ItemOperations:Options")
    pref = options.find("AirSyncBase:BodyPreference") if options is not None else None
    if pref is not None:
        kind = pref.findtext("AirSyncBase:Type", "1")
        coll.body_type = int(kind) if kind in ("1", "2") else 1
        size = pref.findtext("AirSyncBase:TruncationSize")
        coll.truncation = int(size) if size and size.isdigit() else None
    context = map_context(session, req, coll, eas)
    data = render_one("eas", obj, lambda o: BY_MODULE[module].to_eas(o, context), folder_id=folder_id)
    if data is None:  # cannot be converted: this fetch fails cleanly, the others are served
        out.append(E("ItemOperations:Status", "6"))
        return out
    out.children += [E("ItemOperations:Status", "1"), E("AirSync:CollectionId", cid), E("AirSync:ServerId", sid),
                     E("AirSync:Class", CLASS_OF[module]), E("ItemOperations:Properties", *data.children)]
    return out


def _fetch_attachment(session: UserSession, reference: str) -> Element:
    out = E("ItemOperations:Fetch")
    parts = reference.split(":")
    if len(parts) != 3 or not all(p.isdigit() and len(p) < 19 for p in parts):
        out.children += [E("ItemOperations:Status", "15"), E("AirSyncBase:FileReference", reference)]
        return out
    folder_id, object_id, attachment_id = (int(p) for p in parts)
    try:
        attachment = session.get_attachment(folder_id, object_id, attachment_id)
    except (NotFound, PermissionDenied, InvalidData):
        out.children += [E("ItemOperations:Status", "15"), E("AirSyncBase:FileReference", reference)]
        return out
    content = attachment.content
    out.children += [E("ItemOperations:Status", "1"), E("AirSyncBase:FileReference", reference),
                     E("ItemOperations:Properties", E("AirSyncBase:ContentType", attachment.meta.mimetype),
                       E("ItemOperations:Range", f"0-{max(0, len(content) - 1)}"),
                       E("ItemOperations:Total", str(len(content))),
                       E("ItemOperations:Data", base64.b64encode(content).decode("ascii")))]
    return out


# ------------------------------------------------------------------ MeetingResponse

RESPONSES = {"1": Confirmation.ACCEPT, "2": Confirmation.TENTATIVE, "3": Confirmation.DECLINE}


def meeting_response(eas: Eas, req: EasRequest) -> Any:
    requests = req.body.findall("MeetingResponse:Request") if req.body is not None else []
    if eas.mail is not None and any(is_mail_id(r.findtext("MeetingResponse:CollectionId", "")) for r in requests):
        from oxsync.eas.meeting_mail import respond  # an invitation in a mail folder (eas/meeting_mail.py)

        return respond(eas, req, requests, lambda session, request: _answer(session, request))
    return eas.write(req, lambda session: _meeting_response(session, req))


def _meeting_response(session: UserSession, req: EasRequest) -> EasResponse:
    out = E("MeetingResponse:MeetingResponse")
    for request in req.body.findall("MeetingResponse:Request") if req.body is not None else []:
        out.append(_answer(session, request))
    return EasResponse(out)


def _answer(session: UserSession, request: Element) -> Element:
    """One Request on a calendar item: the caller's own confirmation."""
    request_id = request.findtext("MeetingResponse:RequestId", "")
    cid = request.findtext("MeetingResponse:CollectionId", "")
    answer = RESPONSES.get(request.findtext("MeetingResponse:UserResponse", ""))
    result = E("MeetingResponse:Result", E("MeetingResponse:RequestId", request_id))
    module, folder_id = (resolve_collection(session, cid) if cid not in MAIL_IDS else None) or (None, None)
    if answer is None or module != Module.CALENDAR or folder_id is None or not request_id.isdigit():
        result.append(E("MeetingResponse:Status", "2"))
        return result
    try:
        obj = session.get_object(folder_id, int(request_id))
        if not isinstance(obj, Appointment):
            raise NotFound(request_id)
        session.confirm(folder_id, int(request_id), answer, "")
    except (NotFound, InvalidData):
        result.append(E("MeetingResponse:Status", "2"))
        return result
    except StoreError:
        result.append(E("MeetingResponse:Status", "3"))
        return result
    result.append(E("MeetingResponse:Status", "1"))
    if answer != Confirmation.DECLINE:
        result.append(E("MeetingResponse:CalendarId", request_id))
    return result
