"""The user-facing store API: every read and write checked against the user's effective rights.

A `UserSession` lives for one transaction. Dialects never see SQLAlchemy; they call its methods and
translate `StoreError`s into their protocol's errors.

The session is a set of collaborators, each a small class with one concern, that share the `Viewer`
(the user's rights, visibility and readable rows, cached for the transaction) and delegate every
object access to it:

| collaborator | module | answers |
| --- | --- | --- |
| `Viewer` | `viewer.py` | rights, folder and object reads, optimistic concurrency (`require_unchanged`) |
| `FolderEdits` | `folder_edits.py` | creating, changing, re-permissioning, deleting folders |
| `ObjectEdits` | `object_edits.py` | creating, changing, deleting, moving objects; confirming meetings |
| `create_objects` | `bulk_load.py` | many new objects of one folder in one write per table (imports, loads) |
| `Occurrences` | `occurrences.py` | one occurrence of a series: change, delete, end the series before it |
| `Attachments` | `attachments.py` | attachments of an object |
| `Deltas` | `deltas.py` | revisions, object and folder deltas, collection revisions (CTags) |
| `Lookups` | `lookups.py` | by UID, by DAV resource name, by text; busy time of hidden appointments |
| `BulkReads`, `ServedTexts` | `bulk.py` | many objects of a folder in few statements; the served-text cache |
| `ProtocolState` | `protocol_state.py` | per device and per user protocol state |
| `Directory` | `directory.py` | users, groups, resources, addresses |
| `UserMail` | `user_mail.py` | mail the user sends, iMIP replies, collected addresses |

The collaborators import each other only downwards (viewer, then edits, then occurrences), and none
imports this module: the session is the only place they meet. The table below (`__init__`) binds each
public call to the collaborator that answers it, so the dialects' API stays one object.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from oxsync.store.attachments import Attachments
from oxsync.store.bulk import BulkReads, ServedTexts
from oxsync.store.bulk_load import create_objects
from oxsync.store.deltas import Deltas
from oxsync.store.directory import Directory
from oxsync.store.folder_edits import FolderEdits
from oxsync.store.lookups import Lookups
from oxsync.store.object_edits import ObjectEdits
from oxsync.store.occurrences import Occurrences
from oxsync.store.protocol_state import ProtocolState
from oxsync.store.scheduling import BusyPeriod, free_busy
from oxsync.store.tx import Tx
from oxsync.store.user_mail import UserMail
from oxsync.store.viewer import Viewer


class UserSession:
    """Store operations on behalf of one authenticated user, inside one transaction."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id
        self.viewer = viewer = Viewer(tx, user_id)
        self.folder_edits = folders = FolderEdits(viewer)
        self.object_edits = edits = ObjectEdits(viewer)
        self.occurrences = occurrences = Occurrences(viewer, edits)
        self.attachments = attachments = Attachments(viewer)
        self.deltas = deltas = Deltas(viewer)
        self.lookups = lookups = Lookups(viewer)
        self.bulk = bulk = BulkReads(viewer)
        self.texts = texts = ServedTexts(tx, user_id)
        self.state = state = ProtocolState(tx, user_id)
        self.directory = directory = Directory(tx, user_id)
        self.mail = mail = UserMail(tx, user_id)

        # rights, reads and optimistic concurrency
        self.rights = viewer.rights
        self.list_folders = viewer.list_folders
        self.get_folder = viewer.get_folder
        self.list_objects = viewer.list_objects
        self.get_object = viewer.get_object
        self.require_unchanged = viewer.require_unchanged
        # folder writes
        self.create_folder = folders.create_folder
        self.update_folder = folders.update_folder
        self.set_permissions = folders.set_permissions
        self.delete_folder = folders.delete_folder
        # object writes, meetings and series
        self.create_object = edits.create_object
        self.create_objects = partial(create_objects, edits)
        """(folder id, objects) -> created: as many `create_object` calls, in one write per table (store/bulk_load.py)."""
        self.update_object = edits.update_object
        self.delete_object = edits.delete_object
        self.move_object = edits.move_object
        self.confirm = edits.confirm
        self.change_occurrence = occurrences.change_occurrence
        self.delete_occurrence = occurrences.delete_occurrence
        self.end_series_before = occurrences.end_series_before
        # attachments
        self.add_attachment = attachments.add_attachment
        self.get_attachment = attachments.get_attachment
        self.delete_attachment = attachments.delete_attachment
        # change tracking
        self.revision = deltas.revision
        self.rev_for_ms = deltas.rev_for_ms
        self.object_delta = deltas.object_delta
        self.folder_delta = deltas.folder_delta
        self.folder_revision = deltas.folder_revision
        # lookups
        self.find_by_uid = lookups.find_by_uid
        self.find_by_resource_name = lookups.find_by_resource_name
        self.search_objects = lookups.search_objects
        self.hidden_busy = lookups.hidden_busy
        # bulk reads for reports, served-text cache
        self.objects_by_resource_names = bulk.objects_by_resource_names
        self.objects_by_ids = bulk.objects_by_ids
        self.written_object = bulk.written_object
        self.series_members = bulk.series_members
        self.list_versions = bulk.list_versions
        self.member_page = bulk.member_page
        self.list_objects_in_range = bulk.list_objects_in_range
        self.objects_in_range = bulk.objects_in_range
        self.cached_texts = texts.cached_texts
        self.remember_texts = texts.remember_texts
        # protocol state and settings
        self.get_state = state.get_state
        self.get_states = state.get_states
        self.put_state = state.put_state
        self.delete_state = state.delete_state
        self.device_collections = state.device_collections
        self.device_ids = state.device_ids
        self.get_settings = state.get_settings
        self.put_settings = state.put_settings
        # directory
        self.me = directory.me
        self.users = directory.users
        self.user = directory.user
        self.groups = directory.groups
        self.resources = directory.resources
        self.find_principal = directory.find_principal
        self.find_principals = lookups.find_principals
        self.deleted_principals = directory.deleted_principals
        # mail the user sends
        self.allowed_senders = mail.allowed_senders
        self.send_mail = mail.send_mail
        self.apply_itip_reply = mail.apply_itip_reply
        self.collect_addresses = mail.collect_addresses

    def free_busy(self, start: datetime, end: datetime, *, user_id: int | None = None,
                  resource_id: int | None = None) -> list[BusyPeriod]:
        """Merged busy periods of any user or resource of the tenant; no titles, so no rights needed."""
        return free_busy(self.tx, start, end, user_id=user_id, resource_id=resource_id)
