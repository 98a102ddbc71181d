"""The `oxsync` command, run in-process through `main(argv)` against a real SQLite file."""

from __future__ import annotations

import io
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from oxsync.cli import main
from oxsync.config import Settings, StoreSettings
from oxsync.formats.vcard import parse_vcards
from oxsync.model import Contact, Module, Permission, Protocol, Rights
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.store import accounts
from oxsync.store.api import Store
from oxsync.store.errors import AccessRefused, AuthenticationFailed
from oxsync.store.folders import default_folder_id


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/oxsync.db"


@pytest.fixture
def run(db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    def invoke(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--db", db_url, *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = Store(Settings(store=StoreSettings(url=db_url, thread_pool_size=2)))
    yield st
    st.dispose()


@pytest.fixture
def tenant(run: Run) -> Run:
    """An initialised store with alice and bob (passwords alice-pw, bob-pw)."""
    assert run("init", "--domain", "example.com").code == 0
    assert run("user", "add", "alice", "--password", "alice-pw", "--first-name", "Alice", "--last-name", "Adams").code == 0
    assert run("user", "add", "bob", "--password-stdin", stdin="bob-pw\n").code == 0
    return run


def ids(store: Store, login: str) -> tuple[int, int]:
    found = store.resolve_login(login)
    assert found is not None
    return found


def default_folder(store: Store, login: str, module: Module) -> int:
    tenant_id, user_id = ids(store, login)
    with store.transaction(tenant_id) as tx:
        found = default_folder_id(tx, user_id, module)
    assert found is not None
    return found


def object_count(store: Store, login: str, folder_id: int) -> int:
    tenant_id, user_id = ids(store, login)
    with store.session(tenant_id, user_id) as session:
        return len(session.list_objects(folder_id))


def gab(store: Store, user_id: int) -> list[Contact]:
    """The global address book as one user sees it."""
    tenant_id = store.tenants()[0].id
    with store.session(tenant_id, user_id) as session:
        return [c for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if isinstance(c, Contact)]


# ---------------------------------------------------------------- init, tenants, usage errors


def test_init_is_idempotent_and_sets_limits(run: Run, store: Store) -> None:
    first = run("init", "--domain", "Example.COM", "--max-accounts", "5", "--quota", "2M")
    assert first.code == 0 and "created tenant example.com" in first.out
    again = run("init", "--domain", "example.com")
    assert again.code == 0 and "already exists" in again.out
    (tenant,) = store.tenants()
    assert (tenant.domain, tenant.max_accounts, tenant.quota_bytes) == ("example.com", 5, 2 * 1024 * 1024)
    assert run("tenant", "set", "--max-accounts", "none", "--quota", "1G").code == 0
    assert store.tenant("example.com").max_accounts is None
    assert store.tenant("example.com").quota_bytes == 1024**3
    assert "example.com" in run("tenant", "list").out


def test_commands_before_init_fail_without_creating_a_database(run: Run, tmp_path: Path) -> None:
    result = run("user", "list")
    assert result.code == 1 and "oxsync init" in result.err
    assert not (tmp_path / "oxsync.db").exists()


def test_tenant_choice_and_usage_errors(tenant: Run, store: Store) -> None:
    store.create_tenant("other.org")
    several = tenant("user", "list")
    assert several.code == 2 and "--tenant" in several.err
    assert "alice" in tenant("--tenant", "example.com", "user", "list").out
    assert tenant("--tenant", "nowhere.net", "user", "list").code == 1
    assert tenant("--tenant", "example.com", "user", "frobnicate").code == 2
    assert tenant("--tenant", "example.com", "user", "set", "alice").code == 2  # nothing to change
    taken = tenant("--tenant", "other.org", "user", "add", "alice", "--password", "x-pw")  # bare logins are global
    assert taken.code != 0 and "already used in tenant example.com" in taken.err


def test_config_file_and_db_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "oxsync.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/from-config.db"\n', encoding="utf-8")
    assert main(["--config", str(config), "init"]) == 0
    assert (tmp_path / "from-config.db").exists()
    assert main(["--config", str(config), "--db", f"sqlite:///{tmp_path}/other.db", "init"]) == 0
    assert (tmp_path / "other.db").exists()
    config.write_text("[store]\nurll = 1\n", encoding="utf-8")
    assert main(["--config", str(config), "user", "list"]) == 1
    assert "urll" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "user", "list"]) == 1


def test_account_limit_is_enforced(run: Run) -> None:
    run("init", "--max-accounts", "1")
    assert run("user", "add", "alice", "--password", "pw").code == 0
    refused = run("user", "add", "bob", "--password", "pw")
    assert refused.code == 1 and "maximum" in refused.err


# ---------------------------------------------------------------- users


def test_user_add_generates_a_password_once(run: Run, store: Store) -> None:
    run("init")
    result = run("user", "add", "carol", "--name", "Carol C", "--email", "c.c@example.com", "--protocols", "dav,mobile",
                 "--quota", "10k", "--alias", "cc@example.com", "ccc@example.com")
    assert result.code == 0
    password = result.out.split("password:")[1].strip()
    assert len(password) >= 16
    principal = store.authenticate("carol", password, Protocol.DAV)
    assert principal.email == "c.c@example.com"
    with pytest.raises(AccessRefused):
        store.authenticate("carol", password, Protocol.OUTLOOK)
    assert store.resolve_login("ccc@example.com") == ids(store, "carol")
    assert password not in run("user", "show", "carol").out


def test_user_list_show_set(tenant: Run, store: Store) -> None:
    listing = tenant("user", "list")
    assert listing.code == 0
    assert "alice@example.com" in listing.out and "bob@example.com" in listing.out and "unlimited" in listing.out
    tenant("group", "add", "team", "--member", "alice")
    shown = tenant("user", "show", "alice").out
    for expected in ("Alice Adams", "team", "dav,imap,mobile,outlook", "active", "calendar"):
        assert expected in shown
    changed = tenant("user", "set", "alice", "--name", "Alice A.", "--protocols", "outlook", "--quota", "1M",
                     "--password-stdin", stdin="new-pw\n")
    assert changed.code == 0 and "new-pw" not in changed.out
    store.authenticate("alice", "new-pw", Protocol.OUTLOOK)
    with pytest.raises(AuthenticationFailed):
        store.authenticate("alice", "alice-pw", Protocol.OUTLOOK)
    tenant_id, alice = ids(store, "alice")
    with store.transaction(tenant_id) as tx:
        user = accounts.get_user(tx, alice)
    (gab_entry,) = [c for c in gab(store, alice) if c.object_id == user.contact_id]
    assert (user.display_name, user.protocols, user.quota_bytes) == ("Alice A.", frozenset({Protocol.OUTLOOK}), 1024**2)
    assert gab_entry.display_name == "Alice A."
    generated = tenant("user", "set", "alice", "--generate-password")
    store.authenticate("alice", generated.out.split("password:")[1].strip(), Protocol.OUTLOOK)


def test_suspend_and_resume(tenant: Run, store: Store) -> None:
    assert tenant("user", "suspend", "bob").code == 0
    with pytest.raises(AccessRefused):
        store.authenticate("bob", "bob-pw", Protocol.MOBILE)
    assert "suspended" in tenant("user", "list").out
    assert tenant("user", "resume", "bob").code == 0
    store.authenticate("bob", "bob-pw", Protocol.MOBILE)


def test_aliases_add_and_remove(tenant: Run, store: Store) -> None:
    assert tenant("user", "set", "bob", "--add-alias", "robert@example.com").code == 0
    assert store.resolve_login("robert@example.com") == ids(store, "bob")
    taken = tenant("user", "set", "alice", "--add-alias", "robert@example.com")
    assert taken.code == 1 and "already in use" in taken.err
    assert tenant("user", "set", "bob", "--remove-alias", "robert@example.com").code == 0
    assert store.resolve_login("robert@example.com") is None
    assert tenant("user", "set", "bob", "--remove-alias", "robert@example.com").code == 1


def test_user_delete_removes_folders_and_address_book_entry(tenant: Run, store: Store) -> None:
    tenant_id, bob = ids(store, "bob")
    _, alice = ids(store, "alice")
    with store.transaction(tenant_id) as tx:
        contact_id = accounts.get_user(tx, bob).contact_id
    calendar = default_folder(store, "bob", Module.CALENDAR)
    refused = tenant("user", "delete", "bob")  # stdin is not a terminal: --yes is required
    assert refused.code == 2 and store.resolve_login("bob") is not None
    assert tenant("user", "delete", "bob", "--yes").code == 0
    assert store.resolve_login("bob") is None
    with store.transaction(tenant_id) as tx:
        assert default_folder_id(tx, bob, Module.CALENDAR) is None
    assert all(c.object_id != contact_id for c in gab(store, alice))
    with store.session(tenant_id, alice) as session:
        assert calendar not in {fa.folder.id for fa in session.list_folders()}
    assert tenant("user", "show", "bob").code == 1


# ---------------------------------------------------------------- groups, resources, quota


def test_groups(tenant: Run, store: Store) -> None:
    tenant("user", "add", "carol", "--password", "pw")
    added = tenant("group", "add", "team", "--name", "The Team", "--member", "alice", "bob")
    assert added.code == 0 and "alice" in added.out and "bob" in added.out
    assert "carol" not in tenant("group", "members", "team", "--remove", "bob", "--add", "carol").out.split(
        "member(s)")[0]
    tenant_id, _ = ids(store, "alice")

    def members() -> set[str]:
        with store.transaction(tenant_id) as tx:
            group = accounts.get_group(tx, accounts.find_group_id(tx, "team"))  # type: ignore[arg-type]
            return {accounts.get_user(tx, m).login for m in group.members}

    assert members() == {"alice", "carol"}
    assert tenant("group", "members", "team", "--set", "bob").code == 0
    assert members() == {"bob"}
    assert "The Team" in tenant("group", "list").out
    assert tenant("group", "members", "nobody").code == 1
    assert tenant("group", "add", "team").code == 1  # exists
    assert tenant("group", "delete", "team").code == 0
    assert "team" not in tenant("group", "list").out


def test_resources(tenant: Run, store: Store) -> None:
    result = tenant("resource", "add", "room1", "--email", "room1@example.com", "--name", "Room 1",
                    "--description", "projector")
    assert result.code == 0
    tenant("resource", "add", "beamer", "--email", "beamer@example.com", "--kind", "equipment")
    listing = tenant("resource", "list").out
    assert "room1@example.com" in listing and "equipment" in listing and "projector" in listing
    assert tenant("resource", "add", "room2", "--email", "room1@example.com").code == 1  # address taken
    assert tenant("resource", "add", "room3").code == 2  # --email is required
    assert tenant("resource", "delete", "beamer").code == 0
    assert "beamer" not in tenant("resource", "list").out


def test_quota_report(tenant: Run) -> None:
    tenant("tenant", "set", "--quota", "1G")
    tenant("user", "set", "alice", "--quota", "1.5M")
    report = tenant("quota")
    assert report.code == 0
    assert "1.5 MiB" in report.out and "1.0 GiB" in report.out and "bob" in report.out
    assert "accounts 2 / unlimited" in report.out
    only = tenant("quota", "--user", "alice").out
    assert "bob " not in only and "alice" in only
    assert tenant("user", "set", "alice", "--quota", "lots").code == 2


# ---------------------------------------------------------------- folders


def test_folder_share_with_level_and_custom_rights(tenant: Run, store: Store) -> None:
    tenant("group", "add", "team", "--member", "bob")
    calendar = default_folder(store, "alice", Module.CALENDAR)
    tenant_id, bob = ids(store, "bob")
    _, alice = ids(store, "alice")

    def entries() -> set[Permission]:
        with store.session(tenant_id, alice) as session:
            return set(session.get_folder(calendar).folder.permissions)

    def bob_sees() -> dict[int, Rights]:
        with store.session(tenant_id, bob) as session:
            return {fa.folder.id: fa.rights for fa in session.list_folders() if fa.shared}  # type: ignore[misc]

    assert calendar not in bob_sees()
    shared = tenant("folder", "share", str(calendar), "--owner", "alice", "--user", "bob", "--level", "2")
    assert shared.code == 0 and "Reviewer" in shared.out
    assert Permission(bob, False, Rights(2, 4, 0, 0, False)) in entries()
    assert bob_sees()[calendar] == Rights(2, 4, 0, 0, False)

    team = tenant("folder", "share", str(calendar), "--owner", "alice", "--group", "team", "--rights", "4,4,2,0")
    assert team.code == 0 and "custom (4/4/2/0)" in team.out
    assert bob_sees()[calendar] == Rights(4, 4, 2, 0, False)  # the maximum of both entries
    listing = tenant("folder", "list", "--user", "bob").out
    assert "shared" in listing and "custom (4/4/2/0)" in listing

    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--user", "bob", "--level", "8").code == 0
    assert Permission(bob, False, Rights(128, 128, 128, 128, True)) in entries()
    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--user", "bob", "--revoke").code == 0
    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--group", "team", "--revoke").code == 0
    assert calendar not in bob_sees()
    assert entries() == {Permission(alice, False, Rights(128, 128, 128, 128, True))}


def test_folder_share_checks_rights_and_arguments(tenant: Run, store: Store) -> None:
    calendar = default_folder(store, "alice", Module.CALENDAR)
    denied = tenant("folder", "share", str(calendar), "--owner", "bob", "--user", "bob", "--level", "8")
    assert denied.code == 1
    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--user", "bob", "--rights", "3,4,4,4").code == 2
    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--user", "bob", "--level", "9").code == 2
    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--level", "2").code == 2  # no grantee
    everyone = tenant("folder", "share", str(calendar), "--owner", "alice", "--all-users", "--level", "0")
    assert everyone.code == 0 and "all users" in everyone.out
    assert "all users" in tenant("folder", "show", str(calendar), "--user", "bob").out
    # the owner's own entry cannot go: the default folder would lose its administrator
    assert tenant("folder", "share", str(calendar), "--owner", "alice", "--user", "alice", "--revoke").code == 1


# ---------------------------------------------------------------- vCard import / export

VCF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:John Doe\r\nN:Doe;John;;;\r\n"
    "EMAIL;TYPE=INTERNET:john@doe.example\r\nTEL;TYPE=WORK:+1 555 1234\r\nEND:VCARD\r\n"  # lines 1-8
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Broken\r\nTHIS IS NOT A CONTENT LINE\r\nEND:VCARD\r\n"  # lines 9-13
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c2\r\nFN:Jane Roe\r\nN:Roe;Jane;;;\r\nEMAIL:jane@roe.example\r\n"
    "ORG:Roe Inc.\r\nBDAY:1980-04-12\r\nEND:VCARD\r\n"  # lines 14-22
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:g1\r\nFN:Friends\r\nN:Friends;;;;\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n"
    "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:c1\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:c2\r\n"
    "X-ADDRESSBOOKSERVER-MEMBER:mailto:ext@x.example\r\nEND:VCARD\r\n"  # lines 23-32
)
SERVER_FIELDS = {"object_id", "folder_id", "created_by", "modified_by", "creation_time", "last_modified", "extra",
                 "distribution_list"}


def comparable(contact: Contact) -> dict[str, object]:
    return {f.name: getattr(contact, f.name) for f in fields(Contact) if f.name not in SERVER_FIELDS}


def test_vcf_import_skips_bad_cards_and_round_trips(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.vcf"
    source.write_text(VCF, encoding="utf-8", newline="")
    result = tenant("import", str(source), "--user", "alice")
    assert result.code == 0, result.err
    assert "imported 3, skipped 1" in result.out
    assert "line 9" in result.err and "line 12" in result.err  # the bad card and its bad line
    contacts = default_folder(store, "alice", Module.CONTACT)
    tenant_id, alice = ids(store, "alice")
    with store.session(tenant_id, alice) as session:
        stored = {c.uid: c for c in session.list_objects(contacts) if isinstance(c, Contact)}
    assert set(stored) == {"c1", "c2", "g1"}
    members = stored["g1"].distribution_list or []
    assert [(m.contact_id, m.email) for m in members] == [
        (stored["c1"].object_id, "john@doe.example"), (stored["c2"].object_id, "jane@roe.example"),
        (None, "ext@x.example")]

    for version in ("3.0", "4.0"):
        target = tmp_path / f"out-{version}.vcf"
        exported = tenant("export", "--user", "alice", "--folder", str(contacts), "-o", str(target),
                          "--vcard-version", version)
        assert exported.code == 0 and "exported 3" in exported.err
        again = [c.contact for c in parse_vcards(target.read_text(encoding="utf-8"))]
        assert all(c is not None for c in again)
        assert {c.uid: comparable(c) for c in again if c} == {u: comparable(c) for u, c in stored.items()}
        assert "urn:uuid:c1" in target.read_text(encoding="utf-8")

    # importing the same file again: every good card is a duplicate, nothing changes
    repeat = tenant("import", str(source), "--user", "alice", "--progress")
    assert repeat.code == 0 and "imported 0, skipped 4" in repeat.out
    assert object_count(store, "alice", contacts) == 3


@pytest.mark.parametrize("cards", [20, 300])
def test_import_writes_objects_in_batches(tenant: Run, store: Store, tmp_path: Path, cards: int) -> None:
    """The records of a file go in through session.create_objects: one INSERT of object rows per batch
    of 500 records, however many cards the file holds (and every card is there)."""
    from sqlalchemy import Engine, event

    from bench.peers_data import card

    source = tmp_path / "many.vcf"
    source.write_text("".join(card(i) for i in range(cards)), encoding="utf-8", newline="")
    inserts: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO objects"):
            inserts.append(statement)
    event.listen(Engine, "before_cursor_execute", note)
    try:
        result = tenant("import", str(source), "--user", "alice")
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert result.code == 0 and f"imported {cards}, skipped 0" in result.out
    assert len(inserts) == 1
    assert object_count(store, "alice", default_folder(store, "alice", Module.CONTACT)) == cards


def test_import_over_quota_writes_nothing(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.vcf"
    source.write_text(VCF, encoding="utf-8", newline="")
    contacts = default_folder(store, "bob", Module.CONTACT)
    tenant_id, _ = ids(store, "bob")
    usage_before = store.usage(tenant_id)
    tenant("user", "set", "bob", "--quota", "250")  # room for the first contact (~125 B), not for all three
    before = object_count(store, "bob", contacts)
    result = tenant("import", str(source), "--user", "bob")
    assert result.code == 1
    assert "quota" in result.err and "rolled back" in result.err and "imported 0" in result.err
    assert "line 14:" in result.err  # the first card was written, then undone with the rest
    assert object_count(store, "bob", contacts) == before == 0
    assert store.usage(tenant_id)["tenant"] == usage_before["tenant"]  # type: ignore[comparison-overlap]


def test_import_refuses_a_folder_of_the_wrong_kind(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.vcf"
    source.write_text(VCF, encoding="utf-8", newline="")
    calendar = default_folder(store, "alice", Module.CALENDAR)
    assert tenant("import", str(source), "--user", "alice", "--folder", str(calendar)).code == 2
    other = default_folder(store, "alice", Module.CONTACT)
    assert tenant("import", str(source), "--user", "bob", "--folder", str(other)).code == 1  # not visible to bob
    assert tenant("import", str(tmp_path / "missing.vcf"), "--user", "alice").code == 1
    assert tenant("export", "--user", "alice", "--folder", str(calendar), "--format", "vcf").code == 2


# ---------------------------------------------------------------- iCalendar import / export

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"  # lines 1-3
    "BEGIN:VEVENT\r\nUID:ev1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20240108T090000\r\n"
    "DTEND;TZID=Europe/Berlin:20240108T093000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:Weekly\r\n"
    "END:VEVENT\r\n"  # lines 4-11
    "BEGIN:VEVENT\r\nUID:ev1\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240115T090000\r\n"
    "DTSTART;TZID=Europe/Berlin:20240115T100000\r\nDTEND;TZID=Europe/Berlin:20240115T103000\r\n"
    "SUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n"  # lines 12-19
    "BEGIN:VEVENT\r\nUID:bad1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:not-a-date\r\nSUMMARY:Broken\r\n"
    "END:VEVENT\r\n"  # lines 20-25
    "BEGIN:VEVENT\r\nUID:ev2\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240110T120000Z\r\n"
    "DTEND:20240110T130000Z\r\nSUMMARY:Lunch\r\nLOCATION:Cafe\r\nEND:VEVENT\r\n"  # lines 26-33
    "BEGIN:VTODO\r\nUID:td1\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Do things\r\nDUE;VALUE=DATE:20240120\r\n"
    "PRIORITY:1\r\nSTATUS:IN-PROCESS\r\nPERCENT-COMPLETE:40\r\nEND:VTODO\r\n"
    "END:VCALENDAR\r\n"
)


def calendar_items(text: str) -> dict[str, tuple[str, str, list[tuple[str, object]]]]:
    """uid -> (kind, title, [(exception title, its date)]) of a parsed iCalendar text."""
    from oxsync.formats.ical import CalendarItem, parse_calendar

    items = [i for i in parse_calendar(text) if isinstance(i, CalendarItem)]
    return {i.uid: (i.kind, i.master.title if i.master else "",
                    [(e.title, e.recurrence_date_position) for e in i.exceptions]) for i in items}


def test_ics_import_routes_events_and_tasks_and_round_trips(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.ics"
    source.write_text(ICS, encoding="utf-8", newline="")
    result = tenant("import", str(source), "--user", "alice")
    assert result.code == 0, result.err
    assert "imported 3, skipped 1" in result.out and "line 23" in result.err
    calendar = default_folder(store, "alice", Module.CALENDAR)
    tasks = default_folder(store, "alice", Module.TASK)
    tenant_id, alice = ids(store, "alice")
    with store.session(tenant_id, alice) as session:
        events = session.list_objects(calendar)
        todos = session.list_objects(tasks)
    series = next(e for e in events if e.uid == "ev1")
    (moved,) = [e for e in events if e.object_id != series.object_id
                and getattr(e, "recurrence_id", None) == series.object_id]
    assert moved.title == "Weekly (moved)"  # type: ignore[union-attr]
    assert series.change_exceptions == [moved.recurrence_date_position]  # type: ignore[union-attr]
    assert [t.title for t in todos] == ["Do things"]  # type: ignore[union-attr]

    out_cal, out_tasks = tmp_path / "cal.ics", tmp_path / "tasks.ics"
    assert tenant("export", "--user", "alice", "--folder", str(calendar), "-o", str(out_cal)).code == 0
    assert tenant("export", "--user", "alice", "--folder", str(tasks), "--format", "ics", "-o", str(out_tasks)).code == 0
    expected = calendar_items(ICS)
    assert calendar_items(out_cal.read_text(encoding="utf-8")) == {k: v for k, v in expected.items() if k != "td1"}
    assert calendar_items(out_tasks.read_text(encoding="utf-8")) == {"td1": expected["td1"]}


def test_ics_tasks_go_to_the_given_task_folder(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.ics"
    source.write_text(ICS, encoding="utf-8", newline="")
    tenant_id, bob = ids(store, "bob")
    with store.session(tenant_id, bob, write=True) as session:
        projects = session.create_folder(default_folder(store, "bob", Module.TASK), "Projects", Module.TASK).folder.id
    assert projects is not None
    assert tenant("import", str(source), "--user", "bob", "--folder", str(projects)).code == 0
    assert object_count(store, "bob", projects) == 1
    assert object_count(store, "bob", default_folder(store, "bob", Module.TASK)) == 0
    assert object_count(store, "bob", default_folder(store, "bob", Module.CALENDAR)) == 3  # series, exception, single
    again = tenant("import", str(source), "--user", "bob", "--folder", str(projects))
    assert again.code == 0 and "imported 0, skipped 4" in again.out


# ---------------------------------------------------------------- demo data and serve


def test_demo_builder_is_idempotent(store: Store, tmp_path: Path) -> None:
    from oxsync.demo import ensure_demo

    store.create_schema()
    path = tmp_path / "var" / "demo-passwords.txt"
    first = ensure_demo(store, path)
    assert set(first) == {"alice", "bob", "carol"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def snapshot() -> dict[str, int]:
        tenant_id = store.tenant("example.com").id
        counts: dict[str, int] = {}
        with store.transaction(tenant_id) as tx:
            counts["users"] = len(accounts.list_users(tx))
            counts["groups"] = len(accounts.list_groups(tx))
            counts["resources"] = len(accounts.list_resources(tx))
        for login in first:
            for module in Module:
                counts[f"{login}/{module.value}"] = object_count(store, login, default_folder(store, login, module))
        return counts

    before = snapshot()
    assert before["users"] == 3 and before["groups"] == 1 and before["resources"] == 1
    assert before["alice/contact"] >= 3 and before["alice/calendar"] >= 2 and before["alice/task"] >= 1
    assert before["bob/calendar"] >= 2  # his own appointment and alice's meeting
    for login, password in first.items():
        store.authenticate(login, password, Protocol.DAV)

    assert ensure_demo(store, path) == first
    assert snapshot() == before

    tenant_id, alice = ids(store, "alice")
    with store.session(tenant_id, alice) as session:
        objects = session.list_objects(default_folder(store, "alice", Module.CALENDAR))
        lists = [c for c in session.list_objects(default_folder(store, "alice", Module.CONTACT))
                 if isinstance(c, Contact) and c.is_distribution_list]
    assert any(getattr(o, "is_series", False) for o in objects)
    meeting = next(o for o in objects if getattr(o, "participants", None))
    assert {p.entity for p in meeting.participants} >= {ids(store, "bob")[1]}
    assert len(lists) == 1 and len(lists[0].distribution_list or []) == 3


def test_serve_demo_prints_how_to_connect(run: Run, db_url: str, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    calls: list[object] = []

    def fake_run_server(settings, store, on_ready=None, **_):  # type: ignore[no-untyped-def]
        calls.append(settings.server.http_endpoint)
        on_ready(43210)

    monkeypatch.setattr("oxsync.server.run_server", fake_run_server)
    result = run("serve", "--demo", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", "44999")
    assert result.code == 0, result.err
    assert calls == ["tcp:0:interface=127.0.0.1"]
    passwords = (tmp_path / "demo-passwords.txt").read_text().split()
    assert passwords[0] == "alice" and passwords[1] in result.out
    for expected in ("127.0.0.1:43210", "/servlet/webdav.freebusy?username=%NAME%&server=%SERVER%",
                     "http://127.0.0.1:43210/dav/calendars/alice/", "/dav/addressbooks/bob/", "/.well-known/caldav",
                     "44999"):
        assert expected in result.out
    assert passwords[1] not in result.err
    again = run("serve", "--demo", "--listen", "tcp:0")
    assert passwords[1] in again.out


def _events(count: int, start_hour: int = 9) -> str:
    body = "".join(f"BEGIN:VEVENT\r\nUID:ov-{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T{start_hour:02d}0000Z\r\n"
                   f"DTEND:20260310T{start_hour + 2:02d}0000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\n" for i in range(count))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n"


def test_ics_import_of_overlapping_events_runs_no_conflict_checks(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "busy.ics"
    source.write_text(_events(3), encoding="utf-8", newline="")  # three events at the same time
    result = tenant("import", str(source), "--user", "alice")
    assert result.code == 0, result.err
    assert "imported 3, skipped 0" in result.out


def test_ics_import_reports_duplicates_in_one_line(tenant: Run, store: Store, tmp_path: Path) -> None:
    source = tmp_path / "many.ics"
    source.write_text(_events(400), encoding="utf-8", newline="")
    assert tenant("import", str(source), "--user", "alice").code == 0
    again = tenant("import", str(source), "--user", "alice")
    assert again.code == 0 and "imported 0, skipped 400" in again.out
    lines = [line for line in again.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "400 record(s)" in lines[0] and "line 4" in lines[0]


def test_ics_import_keeps_occurrences_without_their_series(tenant: Run, store: Store, tmp_path: Path) -> None:
    from tests.test_dav_accept import OCCURRENCE_ONLY

    source = tmp_path / "invite.ics"
    source.write_text(OCCURRENCE_ONLY, encoding="utf-8", newline="")
    result = tenant("import", str(source), "--user", "alice")
    assert result.code == 0 and "imported 1, skipped 0" in result.out, result.err
    tenant_id, alice = ids(store, "alice")
    with store.session(tenant_id, alice) as session:
        events = session.list_objects(default_folder(store, "alice", Module.CALENDAR))
    assert sorted(e.title for e in events) == ["Steering committee", "Steering committee (moved)"]  # type: ignore[union-attr]
    out_cal = tmp_path / "out.ics"
    assert tenant("export", "--user", "alice", "--folder", str(default_folder(store, "alice", Module.CALENDAR)),
                  "-o", str(out_cal)).code == 0
    assert out_cal.read_text(encoding="utf-8").count("BEGIN:VEVENT") == 2
