"""The ActiveSync commands: `HANDLERS` maps each command name of the `Cmd=` query to its handler.

This table is the one place a command is bound to its code (`eas/http.py` dispatches through it); a
handler takes the `Eas` service and the parsed `EasRequest` and answers an `EasResponse` (or a Deferred of
one). Its keys are exactly the commands advertised in `MS-ASProtocolCommands` (`protocol.COMMANDS`).
"""

from __future__ import annotations

from collections.abc import Callable

from oxsync.eas.commands import find, folders, items, mail, mailitems, ping, provision, settings, sync
from oxsync.eas.request import EasRequest
from oxsync.eas.service import Handler

HANDLERS: dict[str, Handler] = {
    "Sync": sync.sync,
    "SendMail": mail.send,
    "SmartForward": mail.send,
    "SmartReply": mail.send,
    "GetAttachment": mailitems.get_attachment,
    "FolderSync": folders.folder_sync,
    "FolderCreate": folders.folder_create,
    "FolderDelete": folders.folder_delete,
    "FolderUpdate": folders.folder_update,
    "MoveItems": items.move_items,
    "GetItemEstimate": items.get_item_estimate,
    "MeetingResponse": items.meeting_response,
    "Search": settings.search,
    "Settings": settings.settings,
    "Ping": ping.ping,
    "ItemOperations": items.item_operations,
    "Provision": provision.provision,
    "ResolveRecipients": settings.resolve_recipients,
    "ValidateCert": settings.validate_cert,
    "Find": find.find,
}

STATE_KEYS: dict[str, Callable[[EasRequest], list[str]]] = {"Sync": sync.state_keys}
"""Commands that run the provisioning gate inside their first staged unit (`EasRequest.gate`, `Eas.staged`),
and the device state they read first beside the device record: the gate reads them all in one statement."""
