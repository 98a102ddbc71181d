"""ActiveSync protocol constants as data: versions, commands, status codes, folder types.

Nothing here does I/O; the HTTP layer and the command handlers look values up in these tables.
"""

from __future__ import annotations

from typing import Final

WBXML_CONTENT_TYPE: Final = b"application/vnd.ms-sync.wbxml"
SERVER_VERSION: Final = b"14.1"
"""Value of `MS-Server-ActiveSync` (a server build, as Z-Push and SOGo send it)."""

VERSIONS: Final = ("12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
"""Protocol versions we speak, ascending; clients pick the highest one they share with us."""

COMMANDS: Final = (
    "Sync", "SendMail", "SmartForward", "SmartReply", "GetAttachment", "FolderSync", "FolderCreate",
    "FolderDelete", "FolderUpdate", "MoveItems", "GetItemEstimate", "MeetingResponse", "Search", "Settings",
    "Ping", "ItemOperations", "Provision", "ResolveRecipients", "ValidateCert", "Find",
)
"""Advertised in `MS-ASProtocolCommands` (AOSP refuses an account when the header is missing)."""

COMMAND_CODES: Final = {
    0: "Sync", 1: "SendMail", 2: "SmartForward", 3: "SmartReply", 4: "GetAttachment", 9: "FolderSync",
    10: "FolderCreate", 11: "FolderDelete", 12: "FolderUpdate", 13: "MoveItems", 14: "GetItemEstimate",
    15: "MeetingResponse", 16: "Search", 17: "Settings", 18: "Ping", 19: "ItemOperations", 20: "Provision",
    21: "ResolveRecipients", 22: "ValidateCert", 23: "Find",
}
"""Command byte of the base64-encoded query form (MS-ASHTTP 2.2.1.1.1.1)."""

BASE64_PARAMS: Final = {
    0: "AttachmentName", 1: "CollectionId", 2: "CollectionName", 3: "ItemId", 4: "LongId", 5: "ParentId",
    6: "Occurrence", 7: "Options", 8: "User",
}

ROOT_TAG: Final = {
    "Sync": "AirSync:Sync", "FolderSync": "FolderHierarchy:FolderSync",
    "FolderCreate": "FolderHierarchy:FolderCreate", "FolderUpdate": "FolderHierarchy:FolderUpdate",
    "FolderDelete": "FolderHierarchy:FolderDelete", "MoveItems": "Move:MoveItems",
    "GetItemEstimate": "GetItemEstimate:GetItemEstimate", "MeetingResponse": "MeetingResponse:MeetingResponse",
    "Search": "Search:Search", "Settings": "Settings:Settings", "Ping": "Ping:Ping",
    "ItemOperations": "ItemOperations:ItemOperations", "Provision": "Provision:Provision",
    "ResolveRecipients": "ResolveRecipients:ResolveRecipients", "ValidateCert": "ValidateCert:ValidateCert",
    "SendMail": "ComposeMail:SendMail", "SmartReply": "ComposeMail:SmartReply",
    "SmartForward": "ComposeMail:SmartForward", "Find": "Find:Find",
}
"""The request/response root element of each WBXML command (also where a 14.0+ gate status goes)."""

STATUS_TAG: Final = {
    "Sync": "AirSync:Status", "FolderSync": "FolderHierarchy:Status", "FolderCreate": "FolderHierarchy:Status",
    "FolderUpdate": "FolderHierarchy:Status", "FolderDelete": "FolderHierarchy:Status", "MoveItems": "Move:Status",
    "GetItemEstimate": "GetItemEstimate:Status", "MeetingResponse": "MeetingResponse:Status",
    "Search": "Search:Status", "Settings": "Settings:Status", "Ping": "Ping:Status",
    "ItemOperations": "ItemOperations:Status", "Provision": "Provision:Status",
    "ResolveRecipients": "ResolveRecipients:Status", "ValidateCert": "ValidateCert:Status",
    "SendMail": "ComposeMail:Status", "SmartReply": "ComposeMail:Status", "SmartForward": "ComposeMail:Status",
    "Find": "Find:Status",
}

# Common status codes (MS-ASCMD 2.2.2), the ones we emit.
INVALID_CONTENT: Final = 101
INVALID_WBXML: Final = 102
SERVER_ERROR: Final = 110
MAILBOX_QUOTA: Final = 113
MESSAGE_PREVIOUSLY_SENT: Final = 118
MESSAGE_HAS_NO_RECIPIENT: Final = 119
MAIL_SUBMISSION_FAILED: Final = 120
ACCESS_DENIED: Final = 130
COMMAND_NOT_SUPPORTED: Final = 137
REMOTE_WIPE_REQUESTED: Final = 140
DEVICE_NOT_PROVISIONED: Final = 142
INVALID_POLICY_KEY: Final = 144
ITEM_NOT_FOUND: Final = 150

POLICY_TYPE: Final = "MS-EAS-Provisioning-WBXML"


class FolderKind:
    """FolderHierarchy Type values (MS-ASCMD 2.2.3.186.3)."""

    USER_MAIL = 12
    INBOX = 2
    DRAFTS = 3
    DELETED = 4
    SENT = 5
    OUTBOX = 6
    TASKS = 7
    CALENDAR = 8
    CONTACTS = 9
    USER_CALENDAR = 13
    USER_CONTACTS = 14
    USER_TASKS = 15


MAIL_FOLDERS: Final = (("m2", "Inbox", 2), ("m3", "Drafts", 3), ("m4", "Deleted Items", 4),
                       ("m5", "Sent Items", 5), ("m6", "Outbox", 6))
"""Empty placeholder mail folders: iOS Mail and Outlook refuse an account without them."""

FILTER_DAYS: Final = {0: None, 1: 1, 2: 3, 3: 7, 4: 14, 5: 31, 6: 92, 7: 183}
"""Sync FilterType -> days back from now (None = everything; 8 = incomplete tasks, handled apart)."""


def version_number(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return 0.0
