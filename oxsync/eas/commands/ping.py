"""Ping: park until one of the folders changes or the heartbeat ends.

What must hold: the parameters are validated and cached in one short transaction; the request is
parked (on the reactor, no thread, no connection) *before* the "anything already changed?" check,
so a commit landing between the check and the parking cannot be missed; folders the device never
synced count as changed; unknown folders are Status 7; heartbeat outside the bounds is Status 5 with
the bound; too many folders Status 6 with MaxFolders; an empty Ping reuses the cached parameters
(Status 3 when there are none); a newer Ping of the same device answers the older one (Status 1).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from oxsync.eas import mailfolders, mailsync, state
from oxsync.eas.protocol import MAIL_FOLDERS
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E
from oxsync.mail import MailUnavailable, gateway
from oxsync.store.errors import NotFound
from oxsync.store.session import UserSession

MAIL_IDS = frozenset(server_id for server_id, _, _ in MAIL_FOLDERS)


def ping_status(status: int, *children: Any) -> EasResponse:
    return EasResponse(E("Ping:Ping", E("Ping:Status", str(status)), *children))


def changed_folders(session: UserSession, device_id: str, folders: list[int]) -> list[int]:
    out = []
    for folder_id in folders:
        st = session.get_state(device_id, state.collection_key(str(folder_id)))
        if st is None or st.get("pending") or session.folder_revision(folder_id)[0] > int(st.get("base", 0)):
            out.append(folder_id)
    return out


def ping(eas: Eas, req: EasRequest) -> Deferred[EasResponse]:
    cfg = eas.config

    mail_entries: list[tuple[str, int, dict[str, Any] | None]] = []
    """Mail folders of this Ping: (ServerId, bus id, the device's collection state)."""

    def prepare(session: UserSession) -> EasResponse | tuple[int, list[int], list[str]]:
        cached = session.get_state(req.device_id, state.LAST_PING) or {} \
            if req.device_id not in state.NOT_PERSISTED_DEVICES else {}
        heartbeat: int | None = cached.get("heartbeat")
        ids: list[str] | None = cached.get("folders")
        body = req.body
        if body is not None:
            text = body.findtext("Ping:HeartbeatInterval")
            if text is not None:
                if not text.strip().isdigit():
                    return ping_status(4)
                heartbeat = int(text)
            folders_elem = body.find("Ping:Folders")
            if folders_elem is not None:
                ids = [f.findtext("Ping:Id", "") for f in folders_elem.findall("Ping:Folder")]
        if heartbeat is None or not ids:
            return ping_status(3)
        if heartbeat < cfg.min_heartbeat_seconds:
            return ping_status(5, E("Ping:HeartbeatInterval", str(cfg.min_heartbeat_seconds)))
        if heartbeat > cfg.max_heartbeat_seconds:
            return ping_status(5, E("Ping:HeartbeatInterval", str(cfg.max_heartbeat_seconds)))
        if len(ids) > cfg.max_ping_folders:
            return ping_status(6, E("Ping:MaxFolders", str(cfg.max_ping_folders)))
        folder_ids: list[int] = []
        for server_id in ids:
            if eas.mail is not None and mailfolders.is_mail_id(server_id) and server_id != mailfolders.OUTBOX_ID:
                if len(server_id) > 64:
                    return ping_status(7)
                bus = mailsync.bus_id(server_id)
                mail_entries.append((server_id, bus, session.get_state(req.device_id, state.collection_key(server_id))))
                folder_ids.append(bus)
                continue
            if server_id in MAIL_IDS:
                continue
            if not server_id.isdigit() or len(server_id) > 18:
                return ping_status(7)
            try:
                if session.get_folder(int(server_id)).folder.module is None:
                    return ping_status(7)
            except NotFound:
                return ping_status(7)
            folder_ids.append(int(server_id))
        save = body is not None and req.device_id not in state.NOT_PERSISTED_DEVICES and \
            (cached.get("heartbeat"), cached.get("folders")) != (heartbeat, ids)
        return heartbeat, folder_ids, ids if save else []

    def remember(result: EasResponse | tuple[int, list[int], list[str]]) -> Any:
        if isinstance(result, EasResponse) or not result[2]:
            return result
        params = {"heartbeat": result[0], "folders": result[2]}
        return eas.write(req, lambda session: session.put_state(req.device_id, state.LAST_PING, params),
                         light=True).addCallback(
            lambda _: result)

    def park(result: EasResponse | tuple[int, list[int], list[str]]) -> Any:
        if isinstance(result, EasResponse):
            return result
        heartbeat, folder_ids, _ = result
        done: Deferred[EasResponse] = Deferred()

        names = {bus: server_id for server_id, bus, _ in mail_entries}

        def changed(folders: frozenset[int] | list[int]) -> None:
            if not done.called:
                done.callback(ping_status(2, E("Ping:Folders", *[
                    E("Ping:Folder", names.get(f, str(f))) for f in sorted(folders)])))

        def expired() -> None:
            if not done.called:
                done.callback(ping_status(1))

        entry = eas.parked.park((req.tenant_id, req.user_id, req.device_id), frozenset(folder_ids), heartbeat,
                                changed, expired, expired)
        if req.http is not None:
            req.http.notifyFinish().addBoth(lambda _: eas.parked.cancel(entry))

        def checked(already: list[int]) -> None:
            if already and not entry.done:
                eas.parked.cancel(entry)
                changed(already)

        def failed(failure: Any) -> None:
            eas.parked.cancel(entry)
            if not done.called:
                done.errback(failure)

        pim_ids = [f for f in folder_ids if f >= 0]
        eas.read(req, lambda session: changed_folders(session, req.device_id, pim_ids),
                 light=True).addCallbacks(checked, failed)
        if mail_entries and eas.mail is not None:
            watch_mail(eas, req, entry, mail_entries, done, checked)
        return done

    return eas.read(req, prepare, light=True).addCallback(remember).addCallback(park)


def watch_mail(eas: Eas, req: EasRequest, entry: Any, entries: list[tuple[str, int, dict[str, Any] | None]],
               done: Deferred[EasResponse], checked: Any) -> None:
    """One STATUS per mail folder (already changed since the device's last Sync?), then hand the folders
    to the node's watcher until the Ping is answered; the Ping itself holds no IMAP connection."""
    mail = eas.mail
    assert mail is not None
    account = req.principal.email

    def look(conn: Any) -> list[tuple[int, str | None, tuple[int, int, int], bool]]:
        folders = mail.cached_folders(account) or mail.list_folders_sync(conn, account)
        out: list[tuple[int, str | None, tuple[int, int, int], bool]] = []
        for server_id, bus, st in entries:
            folder = mailfolders.find(folders, server_id)
            if folder is None:
                folders = mail.list_folders_sync(conn, account)
                folder = mailfolders.find(folders, server_id)
            if folder is None:
                out.append((bus, None, (0, 0, 0), True))
                continue
            now = gateway.status(conn, folder.name)
            moved = st is None or st.get("uidvalidity") != now.uidvalidity or bool(st.get("pending")) or \
                now.uidnext > int(st.get("uidnext") or 0)  # new mail since the last Sync (mailpush.wakes)
            out.append((bus, folder.name, (now.uidvalidity, now.uidnext, now.modseq), moved))
        return out

    def looked(rows: list[tuple[int, str | None, tuple[int, int, int], bool]]) -> None:
        if entry.done:
            return
        if any(name is None for _, name, _, _ in rows):
            eas.parked.cancel(entry)
            if not done.called:
                done.callback(ping_status(7))
            return
        watcher = eas.mail_watcher
        if watcher is not None:
            keys = [watcher.watch(req.tenant_id, account, name, bus, values) for bus, name, values, _ in rows
                    if name is not None]
            done.addBoth(lambda result: ([watcher.unwatch(k) for k in keys], result)[1])
        checked([bus for bus, _, _, moved in rows if moved])

    def unavailable(failure: Any) -> None:
        failure.trap(MailUnavailable)
        eas.parked.cancel(entry)
        if not done.called:
            done.callback(ping_status(8))  # server error: the device retries later

    mail.run(account, look).addCallbacks(looked, unavailable)
