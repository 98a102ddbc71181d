"""Collected addresses (hosting FAQ, seed 000: "Populer les contacts", off by default because of mailing
lists): when the account's switch is on, the people it writes to through oxsync that are not yet in
its contacts are added to a "Collected addresses" contacts folder, created on first use, which every
client syncs like any other folder. Runs in the transaction that queues the mail."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, or_, select

from oxsync.model import Contact, Module
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK, PRIVATE_ROOT
from oxsync.store import accounts, objects
from oxsync.store import schema as s
from oxsync.store.folder_edits import FolderEdits
from oxsync.store.object_edits import ObjectEdits
from oxsync.store.reminders import options
from oxsync.store.tx import Tx
from oxsync.store.viewer import Viewer

TITLE = "Collected addresses"
FOLDER_KEY = "collected_folder_id"
MAX_PER_MESSAGE = 50


def _own_contact_folders(tx: Tx, user_id: int) -> list[int]:
    f = s.folders
    return [r.id for r in tx.conn.execute(select(f.c.id).where(and_(
        f.c.tenant_id == tx.tenant_id, f.c.owner_id == user_id, f.c.module == Module.CONTACT.value)))]


def known_addresses(tx: Tx, user_id: int, wanted: set[str]) -> set[str]:
    """Which of `wanted` are already in the user's own contact folders or the global address book."""
    if not wanted:
        return set()
    o = s.objects
    folders = [*_own_contact_folders(tx, user_id), GLOBAL_ADDRESS_BOOK]
    like = or_(*(o.c.search_text.contains(address) for address in wanted))
    rows = tx.conn.execute(select(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.kind == "contact",
                                                o.c.folder_id.in_(folders), like))).all()
    found: set[str] = set()
    for contact in objects.load_objects(tx, rows):
        assert isinstance(contact, Contact)
        found |= {e.lower() for e in (contact.email1, contact.email2, contact.email3) if e}
    return found & wanted


def _folder(tx: Tx, user_id: int) -> int:
    settings = accounts.user_settings(tx, user_id)
    folder_id = settings.get(FOLDER_KEY)
    if folder_id in _own_contact_folders(tx, user_id):
        return int(folder_id)
    folder = FolderEdits(Viewer(tx, user_id)).create_folder(PRIVATE_ROOT, TITLE, Module.CONTACT)
    assert folder.folder.id is not None
    settings[FOLDER_KEY] = folder.folder.id
    accounts.store_user_settings(tx, user_id, settings)
    return folder.folder.id


def collect(tx: Tx, user_id: int, people: Iterable[tuple[str, str]]) -> list[str]:
    """Add unknown (name, address) pairs when the account collects addresses; returns those added."""
    if not options(tx, user_id)["collect_addresses"]:
        return []
    own = accounts.get_user(tx, user_id).email.lower()
    wanted: dict[str, str] = {}
    for name, address in list(people)[:MAX_PER_MESSAGE]:
        address = address.strip().lower()
        if "@" in address and address != own:
            wanted.setdefault(address, name.strip())
    new = sorted(set(wanted) - known_addresses(tx, user_id, set(wanted)))
    if not new:
        return []
    edits = ObjectEdits(Viewer(tx, user_id))
    folder_id = _folder(tx, user_id)
    for address in new:
        name = wanted[address]
        first, _, last = name.partition(" ") if name else ("", "", "")
        edits.create_object(folder_id, Contact(display_name=name or address, first_name=first, last_name=last,
                                                 email1=address))
    return new
