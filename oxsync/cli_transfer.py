"""Verbs that act AS a user on folders: `folder list|show|share`, `import`, `export`.

Each runs through `UserSession`, so the store's rights checks and quotas apply exactly as for a
client; sharing changes one permission entry, acting as the folder's owner. What must hold for an
import: every bad record is reported with its line number and skipped; all good records are written
in ONE write transaction, so that a failure at write time (quota, invalid data) rolls the whole
import back and nothing is half-written.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from oxsync.cli_common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Context,
    UsageError,
    err,
    group_id_of,
    out,
    principal_names,
    table,
    user_id_of,
)
from oxsync.config import LimitSettings
from oxsync.formats import vcard
from oxsync.formats.vcard_rows import ResolveUid
from oxsync.model import Appointment, Contact, Module, Permission, Rights, Task
from oxsync.model.permissions import (
    LEVEL_NAMES,
    VALID_FOLDER_VALUES,
    VALID_OBJECT_VALUES,
    level_for_rights,
    rights_for_level,
)
from oxsync.model.text import xml_safe
from oxsync.render import render_each, render_one
from oxsync.store.errors import InvalidInput, StoreError
from oxsync.store.folders import ALL_USERS, default_folder_id
from oxsync.store.objects import AnyObject
from oxsync.store.session import UserSession
from oxsync.store.tx import Tx
from oxsync.store.validate import check_object

FORMAT_OF_SUFFIX = {".vcf": "vcf", ".vcard": "vcf", ".ics": "ics", ".ical": "ics", ".ifb": "ics"}
MODULES_OF_FORMAT = {"vcf": (Module.CONTACT,), "ics": (Module.CALENDAR, Module.TASK)}
CLASS_OF_MODULE: dict[Module, type] = {Module.CONTACT: Contact, Module.CALENDAR: Appointment, Module.TASK: Task}
PROGRESS_DELAY_SECONDS = 0.5
"""On a terminal the bar appears only for imports that take longer than this (i.e. large files)."""

_NEWLINE = re.compile(r"\r\n|\r|\n")
_END_VCARD = re.compile(r"^end:vcard[ \t]*$", re.IGNORECASE)


# ---------------------------------------------------------------- folders


def parse_rights(text: str) -> Rights:
    """'FOLDER,READ,WRITE,DELETE[,admin]' in OX values, e.g. '4,4,2,2' or '8,4,4,4,admin'."""
    parts = [p.strip().lower() for p in text.split(",")]
    admin = parts[-1] == "admin"
    numbers = parts[:-1] if admin else parts
    if len(numbers) != 4 or not all(n.isdigit() for n in numbers):
        raise argparse.ArgumentTypeError("rights are FOLDER,READ,WRITE,DELETE[,admin], e.g. 4,4,2,2")
    folder, read, write, delete = (int(n) for n in numbers)
    if folder not in VALID_FOLDER_VALUES or {read, write, delete} - VALID_OBJECT_VALUES:
        raise argparse.ArgumentTypeError(
            f"folder right is one of {sorted(VALID_FOLDER_VALUES)}, object rights one of {sorted(VALID_OBJECT_VALUES)}"
        )
    return Rights(folder, read, write, delete, admin)


def parse_level(text: str) -> Rights:
    try:
        return rights_for_level(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rights_text(rights: Rights) -> str:
    """'4 Author (4/4/2/2)' for an Outlook preset, 'custom (4/4/0/0)' otherwise."""
    raw = f"{rights.folder}/{rights.read}/{rights.write}/{rights.delete}" + ("/admin" if rights.admin else "")
    level = level_for_rights(rights)
    return f"custom ({raw})" if level is None else f"{level} {LEVEL_NAMES[level]} ({raw})"


def cmd_folder_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.user_session(args.user) as session:
        logins, _ = principal_names(session.tx)
        rows = [(fa.folder.id, fa.folder.title, fa.folder.module.value if fa.folder.module else "-",
                 "shared" if fa.shared else fa.folder.type.value, logins.get(fa.folder.owner or -1, "-"),
                 rights_text(fa.rights)) for fa in session.list_folders()]
    out(table(("id", "title", "module", "type", "owner", "rights"), rows))
    return EXIT_OK


def _grantee(tx: Tx, args: argparse.Namespace) -> tuple[int, bool]:
    if args.all_users:
        return ALL_USERS, True
    if args.group:
        return group_id_of(tx, args.group), True
    return user_id_of(tx, args.user), False


def _print_permissions(tx: Tx, folder_id: int, entries: list[Permission]) -> None:
    logins, groups = principal_names(tx)
    rows = [("group" if p.is_group else "user", (groups if p.is_group else logins).get(p.entity, str(p.entity)),
             rights_text(p.rights)) for p in entries]
    out(f"permissions of folder {folder_id}:")
    out(table(("kind", "entity", "rights"), rows))


def cmd_folder_share(ctx: Context, args: argparse.Namespace) -> int:
    """Add, replace or (--revoke) one entry; the rest of the folder's permissions stay as they are."""
    with ctx.user_session(args.owner, write=True) as session:
        key = _grantee(session.tx, args)
        current = session.get_folder(args.folder_id).folder.permissions
        entries = [p for p in current if (p.entity, p.is_group) != key]
        if args.revoke and len(entries) == len(current):
            raise CliError(f"folder {args.folder_id} has no entry for that {'group' if key[1] else 'user'}")
        if not args.revoke:
            entries.append(Permission(key[0], key[1], args.rights if args.level is None else args.level))
        access = session.set_permissions(args.folder_id, entries)
        _print_permissions(session.tx, args.folder_id, access.folder.permissions)
    return EXIT_OK


def cmd_folder_show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.user_session(args.user) as session:
        access = session.get_folder(args.folder_id)
        folder = access.folder
        module = folder.module.value if folder.module else "-"
        out(f"folder {folder.id} {folder.title!r}: {module}, {'shared' if access.shared else folder.type.value}; "
            f"your rights {rights_text(access.rights)}")
        _print_permissions(session.tx, args.folder_id, folder.permissions)
    return EXIT_OK


# ---------------------------------------------------------------- import records


@dataclass
class Record:
    """One good record of the input: an object (plus, for a series, its change exceptions)."""

    line: int
    obj: AnyObject
    exceptions: list[AnyObject] = field(default_factory=list)


@dataclass
class Outcome:
    imported: int = 0
    skipped: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    """(line, UID) of records already in the folder: reported in one summary line, not one each."""

    def duplicate(self, line: int, uid: str) -> None:
        self.skipped += 1
        self.duplicates.append((line, uid))

    def summary(self, folder_id: int | None = None) -> None:
        if self.duplicates:
            line, uid = self.duplicates[0]
            where = f" in folder {folder_id}" if folder_id is not None else ""
            tqdm.write(f"skipped: {len(self.duplicates)} record(s) whose UID is already{where} "
                       f"(first: line {line}, UID {uid})", file=sys.stderr)

    def skip(self, line: int, reason: str) -> None:
        """Report a skipped record; `reason` may already name its line (the parsers' messages do)."""
        self.skipped += 1
        message = f"skipped: {reason}" if f"line {line}" in reason else f"skipped: line {line}: {reason}"
        tqdm.write(message, file=sys.stderr)  # keeps an active progress bar intact


class ImportFailed(CliError):
    """A write failed; the transaction was rolled back."""


# ---------------------------------------------------------------- input


def _progress(args: argparse.Namespace, total: int, unit: str, desc: str) -> tqdm:
    """A bar on stderr when asked (--progress) or on a terminal (then only once it takes a while)."""
    enabled = args.progress or sys.stderr.isatty()
    delay = 0 if args.progress else PROGRESS_DELAY_SECONDS
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=not enabled, delay=delay, leave=False)


def _read_text(path: Path, limits: LimitSettings) -> str:
    size = path.stat().st_size
    if size > limits.max_import_bytes:
        raise CliError(f"{path} is {size} bytes, over limits.max_import_bytes ({limits.max_import_bytes})")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        err(f"{path} is not UTF-8; reading it as Windows-1252")
        return data.decode("cp1252", errors="replace")


def _input_format(path: Path, text: str, wanted: str | None) -> str:
    if wanted:
        return wanted
    if path.suffix.lower() in FORMAT_OF_SUFFIX:
        return FORMAT_OF_SUFFIX[path.suffix.lower()]
    head = text[:4096].upper()
    for marker, fmt in (("BEGIN:VCALENDAR", "ics"), ("BEGIN:VCARD", "vcf")):
        if marker in head:
            return fmt
    raise UsageError(f"cannot tell the format of {path}: use --format vcf|ics")


def _parse_vcf(text: str, args: argparse.Namespace, limits: LimitSettings, outcome: Outcome) -> list[Record]:
    """Contacts and distribution lists; list members are resolved later, at write time."""
    records: list[Record] = []
    total = len(_NEWLINE.findall(text)) + 1
    done = 0
    with _progress(args, total, "lines", "parsing") as bar:
        for card in vcard.parse_vcards(text, limits=limits):
            bar.update(max(0, card.line - done))
            done = max(done, card.line)
            if card.contact is None:
                outcome.skip(card.error_line or card.line, card.error or "unreadable card")
            else:
                records.append(Record(card.line, card.contact))
        bar.update(max(0, total - done))
    return records


def _parse_ics(text: str, args: argparse.Namespace, limits: LimitSettings, outcome: Outcome) -> list[Record]:
    """Events and tasks; a series comes with its RECURRENCE-ID overrides. Attendees stay external."""
    from oxsync.formats import ical

    records: list[Record] = []
    for item in ical.parse_calendar(text, limits=limits):
        if isinstance(item, ical.ParseError):
            outcome.skip(item.line, str(item))
        elif item.master is None:  # occurrences without their series (an invitation to some of them):
            first, *others = item.exceptions  # the first is a plain appointment listing the others
            first.recurrence_date_position, first.recurrence_position = None, None
            first.change_exceptions = sorted(o.recurrence_date_position for o in others
                                             if o.recurrence_date_position is not None)
            records.append(Record(item.line, first, list(others)))
        else:
            records.append(Record(item.line, item.master, list(item.exceptions)))
    return records


PARSERS: dict[str, Callable[[str, argparse.Namespace, LimitSettings, Outcome], list[Record]]] = {
    "vcf": _parse_vcf, "ics": _parse_ics,
}


# ---------------------------------------------------------------- writing


def _targets(session: UserSession, fmt: str, folder_id: int | None) -> dict[type, int]:
    """Object class -> folder: the user's default folders, the given folder for its own module."""
    targets: dict[type, int] = {}
    for module in MODULES_OF_FORMAT[fmt]:
        found = default_folder_id(session.tx, session.user_id, module)
        if found is not None:
            targets[CLASS_OF_MODULE[module]] = found
    if folder_id is not None:
        held = session.get_folder(folder_id).folder.module
        if held is None or held not in MODULES_OF_FORMAT[fmt]:
            raise UsageError(f"folder {folder_id} holds {held.value if held else 'no objects'}; a .{fmt} file goes "
                             "into a " + " or ".join(m.value for m in MODULES_OF_FORMAT[fmt]) + " folder")
        targets[CLASS_OF_MODULE[held]] = folder_id
    return targets


def _create(session: UserSession, folder_id: int, record: Record, outcome: Outcome) -> None:
    """Create one record (a series first, then its exceptions linked to it); duplicates are skipped."""
    uid = getattr(record.obj, "uid", "")
    if uid and session.find_by_uid(folder_id, uid) is not None:
        outcome.duplicate(record.line, uid)
        return
    for obj in (record.obj, *record.exceptions):  # an import is not a scheduling request: no conflict
        if isinstance(obj, Appointment):         # checks (a double-booked resource is still refused)
            obj.ignore_conflicts = True
    master = session.create_object(folder_id, record.obj)
    for exception in record.exceptions:
        # OX model: a change exception is its own object linked to the series by recurrence_id; it
        # carries no UID of its own (the series' UID is unique in the folder, dialects reuse it)
        exception.recurrence_id, exception.uid = master.object_id, ""  # type: ignore[union-attr]
        session.create_object(folder_id, exception)
    if record.exceptions and isinstance(master, Appointment) and master.recurrence_id is None:
        master.recurrence_id = master.object_id  # occurrences without their series: the first heads them
        session.update_object(folder_id, master)
    outcome.imported += 1


def _member_resolver(session: UserSession, folder_id: int) -> ResolveUid:
    """A list member's UID -> the contact in the target folder (created by this import or before)."""

    def resolve(uid: str) -> tuple[int | None, int | None, str, str] | None:
        found = session.find_by_uid(folder_id, uid)
        if not isinstance(found, Contact):
            return None
        return found.object_id, folder_id, found.email1 or found.email2 or found.email3, found.display_name

    return resolve


def _card_text(lines: list[str], start: int) -> str:
    """The card that begins on line `start` (1-based), up to its END:VCARD."""
    end = next((i for i in range(start - 1, len(lines)) if _END_VCARD.match(lines[i])), len(lines) - 1)
    return "\r\n".join(lines[start - 1:end + 1]) + "\r\n"


def _reparse_lists(session: UserSession, folder_id: int, text: str, lists: list[Record]) -> list[Record]:
    """Parse distribution lists again now that the file's contacts exist, so members resolve to them."""
    lines = _NEWLINE.split(text)
    resolve = _member_resolver(session, folder_id)
    out: list[Record] = []
    for record in lists:
        card = next(iter(vcard.parse_vcards(_card_text(lines, record.line), resolve_uid=resolve)), None)
        out.append(Record(record.line, card.contact) if card is not None and card.contact is not None else record)
    return out


IMPORT_BATCH = 500
"""Records without change exceptions are created this many at a time (`session.create_objects`)."""


class _Pending:
    """Plain records waiting to be created together in their folder (one write per table per batch)."""

    def __init__(self, session: UserSession, outcome: Outcome) -> None:
        self.session, self.outcome = session, outcome
        self.folder_id: int | None = None
        self.records: list[Record] = []
        self.uids: set[str] = set()

    def add(self, folder_id: int, record: Record) -> None:
        """Queue `record` (a duplicate UID, already in the folder or queued, is skipped as `_create` does)."""
        if folder_id != self.folder_id or len(self.records) >= IMPORT_BATCH:
            self.flush()
        self.folder_id = folder_id
        uid = getattr(record.obj, "uid", "")
        if uid and (uid in self.uids or self.session.find_by_uid(folder_id, uid) is not None):
            self.outcome.duplicate(record.line, uid)
            return
        if isinstance(record.obj, Appointment):  # an import is not a scheduling request (see `_create`)
            record.obj.ignore_conflicts = True
        self.uids.add(uid)
        self.records.append(record)

    def flush(self) -> None:
        if not self.records:
            return
        assert self.folder_id is not None
        records, self.records, self.uids = self.records, [], set()
        originals = [copy.deepcopy(r.obj) for r in records]  # a failed batch has stamped them
        tx = self.session.tx
        tx.stamp  # noqa: B018 - taken outside the savepoint: a failed batch does not undo it
        savepoint = tx.conn.begin_nested()
        try:
            self.session.create_objects(self.folder_id, [r.obj for r in records])
        except (StoreError, ValueError):
            savepoint.rollback()  # again one by one, so that the record that fails is named by its line
            for record, obj in zip(records, originals, strict=True):
                record.obj = obj
                try:
                    _create(self.session, self.folder_id, record, self.outcome)
                except (StoreError, ValueError) as exc:
                    raise ImportFailed(f"line {record.line}: {exc}; the import was rolled back, nothing was "
                                       "imported") from exc
            return
        savepoint.commit()
        self.outcome.imported += len(records)


def _write_all(session: UserSession, records: list[Record], targets: dict[type, int], args: argparse.Namespace,
               outcome: Outcome, text: str) -> None:
    """Create every record; distribution lists last. A store error aborts (and rolls back) everything.
    Records without change exceptions go in batches (`_Pending`), a series with exceptions on its own."""
    plain: list[Record] = []
    lists: list[Record] = []
    for record in records:
        (lists if isinstance(record.obj, Contact) and record.obj.is_distribution_list else plain).append(record)
    pending = _Pending(session, outcome)
    with _progress(args, len(records), "records", "importing") as bar:
        for batch in (plain, lists):
            if batch is lists and lists:
                pending.flush()  # the lists' members resolve to the contacts created so far
                batch = _reparse_lists(session, targets[Contact], text, lists)
            for record in batch:
                try:
                    for obj in (record.obj, *record.exceptions):  # before anything of the record is written
                        check_object(obj, session.tx.settings.limits)
                except InvalidInput as exc:  # this record is refused; the others are imported
                    outcome.skip(record.line, str(exc))
                    bar.update(1)
                    continue
                if not record.exceptions:
                    pending.add(targets[type(record.obj)], record)
                    bar.update(1)
                    continue
                pending.flush()
                try:
                    _create(session, targets[type(record.obj)], record, outcome)
                except (StoreError, ValueError) as exc:
                    raise ImportFailed(f"line {record.line}: {exc}; the import was rolled back, nothing was "
                                       "imported") from exc
                bar.update(1)
        pending.flush()


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    """One file (a directory written by `export --all` goes to `cli_people.import_dir`, which wraps this)."""
    limits = ctx.settings.limits
    text = _read_text(args.file, limits)
    fmt = _input_format(args.file, text, args.format)
    outcome = Outcome()
    try:
        records = PARSERS[fmt](text, args, limits, outcome)
    except ValueError as exc:  # the input as a whole is refused (size, not a calendar at all)
        raise CliError(f"{args.file}: {exc}") from exc
    try:
        with ctx.user_session(args.user, write=True) as session:
            targets = _targets(session, fmt, args.folder)
            _write_all(session, records, targets, args, outcome, text)
    except ImportFailed as exc:
        err(f"oxsync: {exc}")
        err(f"imported 0, skipped {outcome.skipped}")
        return EXIT_ERROR
    outcome.summary()
    out(f"imported {outcome.imported}, skipped {outcome.skipped}")
    return EXIT_OK


# ---------------------------------------------------------------- export


def _render_vcf(objects: list[AnyObject], args: argparse.Namespace) -> tuple[str, int]:
    contacts = [o for o in objects if isinstance(o, Contact)]
    uids = {c.object_id: c.uid for c in contacts if c.uid}
    cards = render_each("export", contacts, lambda c: vcard.contact_to_vcard(
        c, args.vcard_version, uid_for_member=lambda m: uids.get(m.contact_id)))
    return xml_safe("".join(cards)), len(contacts) - len(cards)


def _series(objects: Iterable[AnyObject]) -> Iterator[tuple[AnyObject, list[AnyObject]]]:
    """Masters with their change exceptions (an exception whose series is not here stands alone)."""
    objs = list(objects)
    ids = {o.object_id for o in objs}
    exceptions: dict[int, list[AnyObject]] = {}
    for o in objs:
        if isinstance(o, Appointment) and o.recurrence_id is not None and o.is_exception and o.recurrence_id in ids:
            exceptions.setdefault(o.recurrence_id, []).append(o)
    for o in objs:
        if not (isinstance(o, Appointment) and o.is_exception and o.recurrence_id in ids):
            yield o, exceptions.get(o.stored_id, [])


def _render_ics(objects: list[AnyObject], args: argparse.Namespace) -> tuple[str, int]:
    from oxsync.formats import ical

    items = [ical.CalendarItem("VEVENT" if isinstance(m, Appointment) else "VTODO", m.uid, 0, m, e)  # type: ignore[arg-type]
             for m, e in _series(objects)]
    # each item is rendered on its own first: one that cannot be is left out (logged), not the file
    good = [item for item in items if render_one("export", item, lambda i: ical.items_to_ical([i]),
                                                 object_id=getattr(item.master, "object_id", None),
                                                 folder_id=getattr(item.master, "folder_id", None)) is not None]
    return xml_safe(ical.items_to_ical(good)), len(items) - len(good)


RENDERERS: dict[str, Callable[[list[AnyObject], argparse.Namespace], tuple[str, int]]] = {
    "vcf": _render_vcf, "ics": _render_ics}
"""Format -> renderer returning (file text, objects left out because they cannot be rendered)."""


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    """One folder (`--all` goes to `cli_people.export_all`, which wraps this)."""
    if args.folder is None:
        raise UsageError("give --folder ID, or --all DIR for every folder of the user")
    with ctx.user_session(args.user) as session:
        module = session.get_folder(args.folder).folder.module
        natural = next((f for f, modules in MODULES_OF_FORMAT.items() if module in modules), None)
        if natural is None or (args.format and args.format != natural):
            raise UsageError(f"folder {args.folder} holds {module.value if module else 'no objects'}: "
                             f"export it as {natural or 'nothing'}")
        objects = session.list_objects(args.folder)
    text, left_out = RENDERERS[natural](objects, args)
    if args.output and str(args.output) != "-":
        with open(args.output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    err(f"exported {len(objects) - left_out} object(s) from folder {args.folder}"
        + (f"; {left_out} left out: they cannot be rendered (see the log)" if left_out else ""))
    return EXIT_OK


# ---------------------------------------------------------------- registration


def _register_folders(sub: argparse._SubParsersAction) -> None:
    folders = sub.add_parser("folder", help="folders and sharing").add_subparsers(dest="action", required=True,
                                                                                  metavar="ACTION")
    p = folders.add_parser("list", help="folders visible to a user, with their rights")
    p.add_argument("--user", required=True, metavar="LOGIN")
    p.set_defaults(handler=cmd_folder_list)
    p = folders.add_parser("show", help="a folder's permission entries, as seen by a user")
    p.add_argument("folder_id", type=int, metavar="FOLDER_ID")
    p.add_argument("--user", required=True, metavar="LOGIN")
    p.set_defaults(handler=cmd_folder_show)
    p = folders.add_parser("share", help="grant, change or revoke one permission entry, acting as the owner")
    p.add_argument("folder_id", type=int, metavar="FOLDER_ID")
    p.add_argument("--owner", required=True, metavar="LOGIN", help="the user who changes the permissions")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="LOGIN")
    who.add_argument("--group", metavar="NAME")
    who.add_argument("--all-users", action="store_true")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--level", type=parse_level, metavar="0-8", help="Outlook permission level")
    what.add_argument("--rights", type=parse_rights, metavar="F,R,W,D[,admin]", help="OX values, e.g. 4,4,2,2")
    what.add_argument("--revoke", action="store_true", help="remove the entry")
    p.set_defaults(handler=cmd_folder_share)


def register(sub: argparse._SubParsersAction) -> None:
    _register_folders(sub)
    p = sub.add_parser("import", help="import a .vcf or .ics file into a user's folders (all or nothing), "
                                      "or a directory written by export --all")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--user", required=True, metavar="LOGIN")
    p.add_argument("--folder", type=int, metavar="ID", help="target folder (default: the user's default folders)")
    p.add_argument("--format", choices=sorted(MODULES_OF_FORMAT), help="default: from the file name or content")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a terminal")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("export", help="export a folder as .vcf (contacts) or .ics (appointments, tasks)")
    p.add_argument("--user", required=True, metavar="LOGIN", help="the user whose view of the folder is exported")
    p.add_argument("--folder", type=int, metavar="ID")
    p.add_argument("--all", type=Path, metavar="DIR",
                   help="every folder of the user into DIR: one file per folder and manifest.json (tree, permissions)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    p.add_argument("--format", choices=sorted(MODULES_OF_FORMAT))
    p.add_argument("--vcard-version", choices=list(vcard.VERSIONS), default="3.0")
    p.set_defaults(handler=cmd_export)
