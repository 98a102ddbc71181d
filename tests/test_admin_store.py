"""Store side of the console (issue 16): per-account rights enforced for every dialect, admin scope,
the audit log and API tokens. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from oxsync.model import Appointment, Module, Participant, ParticipantKind, Permission, Task
from oxsync.model.folder import PUBLIC_ROOT
from oxsync.model.permissions import rights_for_level
from oxsync.store import accounts, admin, admin_ops
from oxsync.store import schema as s
from oxsync.store.errors import AuthenticationFailed, InvalidData, NotFound, PermissionDenied
from tests.world import World


def _set(world: World, user_id: int, **flags: bool) -> None:
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, user_id, flags=flags)


def _public_folder(world: World) -> int:
    with world.as_user(world.alice, write=True) as session:
        folder = session.create_folder(PUBLIC_ROOT, "Company", Module.CONTACT).folder
        entries = [*folder.permissions, Permission(0, True, rights_for_level(2))]
        session.set_permissions(folder.id, entries)
    assert folder.id is not None
    return folder.id


def _meeting(world: World, organizer: int, *guests: Participant) -> Appointment:
    start = datetime(2027, 1, 4, 9, tzinfo=UTC)
    parts = [Participant(ParticipantKind.USER, organizer), *guests]
    return Appointment(title="Review", start_date=start, end_date=start + timedelta(hours=1), participants=parts,
                       ignore_conflicts=True)


# ---------------------------------------------------------------- public folders right


def test_public_folders_right_off_hides_them_everywhere(world: World) -> None:
    company = _public_folder(world)
    with world.as_user(world.carol) as session:
        assert company in {a.folder.id for a in session.list_folders()}
        _, rev = session.revision()
        rev = session.revision()[0]
    _set(world, world.carol, public_folders=False)
    with world.as_user(world.carol) as session:
        ids = {a.folder.id for a in session.list_folders()}
        assert company not in ids and PUBLIC_ROOT in ids  # the root stays, closed
        with pytest.raises(NotFound):
            session.get_folder(company)
        with pytest.raises(NotFound):
            session.list_objects(company)
        with pytest.raises(PermissionDenied):
            session.create_folder(PUBLIC_ROOT, "Mine", Module.CONTACT)
        delta = session.folder_delta(rev)
        assert company in delta.gone  # the next hierarchy delta of every client drops it
        assert 6 in ids  # the global address book is a system folder and stays
    with world.as_user(world.bob) as session:  # others unaffected
        assert company in {a.folder.id for a in session.list_folders()}
    _set(world, world.carol, public_folders=True)
    with world.as_user(world.carol) as session:
        assert company in {a.folder.id for a in session.list_folders()}


# ---------------------------------------------------------------- collaborative sharing right


def test_sharing_right_off_refuses_new_grants_but_allows_removal(world: World) -> None:
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        folder = session.get_folder(contacts).folder
        session.set_permissions(contacts, [*folder.permissions, Permission(world.bob, False, rights_for_level(2))])
    _set(world, world.alice, sharing=False)
    with world.as_user(world.alice, write=True) as session:
        folder = session.get_folder(contacts).folder
        with pytest.raises(PermissionDenied, match="collaborative sharing"):
            session.set_permissions(contacts, [*folder.permissions, Permission(world.carol, False, rights_for_level(4))])
        widened = [p if p.entity != world.bob else Permission(world.bob, False, rights_for_level(6))
                   for p in folder.permissions]
        with pytest.raises(PermissionDenied):
            session.set_permissions(contacts, widened)
        session.set_permissions(contacts, [p for p in folder.permissions if p.entity != world.bob])  # unsharing is fine


def test_sharing_right_off_refuses_invitations_and_delegation(world: World) -> None:
    with world.store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room9", "room9@example.com")
    _set(world, world.alice, sharing=False)
    calendar = world.default_folder(world.alice, Module.CALENDAR)
    tasks = world.default_folder(world.alice, Module.TASK)
    with world.as_user(world.alice, write=True) as session:
        with pytest.raises(PermissionDenied):
            session.create_object(calendar, _meeting(world, world.alice, Participant(ParticipantKind.USER, world.bob)))
        with pytest.raises(PermissionDenied):
            session.create_object(calendar, _meeting(world, world.alice, Participant(
                ParticipantKind.EXTERNAL_USER, 0, email="x@elsewhere.test")))
        with pytest.raises(PermissionDenied):
            session.create_object(tasks, Task(title="Do it", participants=[Participant(ParticipantKind.USER, world.bob)]))
        booked = session.create_object(calendar, _meeting(world, world.alice, Participant(ParticipantKind.RESOURCE, room.id)))
        assert booked.object_id is not None
        own = session.create_object(calendar, _meeting(world, world.alice))
        own.participants.append(Participant(ParticipantKind.USER, world.carol))
        with pytest.raises(PermissionDenied):
            session.update_object(calendar, own)
    _set(world, world.alice, sharing=True)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(calendar, _meeting(world, world.alice, Participant(ParticipantKind.USER, world.bob)))


def test_invitation_check_takes_the_account_row_the_transaction_read(world: World) -> None:
    """A DAV write reads its own account (`me`) first: the invitation check answers from that row, with
    no statement on the account's groups and rights (bench/README y-pgput), and the answer is the row's."""
    from sqlalchemy import event as sa_event

    calendar = world.default_folder(world.alice, Module.CALENDAR)
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)
    sa_event.listen(world.store.engine, "before_cursor_execute", note)
    try:
        for sharing in (False, True):
            _set(world, world.alice, sharing=sharing)
            with world.as_user(world.alice, write=True) as session:
                assert session.me().sharing is sharing
                seen.clear()
                meeting = _meeting(world, world.alice, Participant(ParticipantKind.USER, world.bob))
                if sharing:
                    assert session.create_object(calendar, meeting).object_id is not None
                else:
                    with pytest.raises(PermissionDenied, match="collaborative sharing"):
                        session.create_object(calendar, meeting)
                assert not [q for q in seen if "group_members" in q], seen
            refused = pytest.raises(PermissionDenied) if not sharing else nullcontext()
            with world.as_user(world.alice, write=True) as session, refused:  # nothing read before: with the groups
                session.create_object(calendar, _meeting(world, world.alice, Participant(ParticipantKind.USER, world.bob)))
    finally:
        sa_event.remove(world.store.engine, "before_cursor_execute", note)


# ---------------------------------------------------------------- admin scope and audit


def _second_tenant(world: World) -> tuple[int, int]:
    other = world.store.create_tenant("other.test")
    with world.store.transaction(other.id, write=True) as tx:
        dave = accounts.create_user(tx, "dave", "dave-pw", flags={"tenant_admin": True})
    return other.id, dave.id


def test_admin_scope_tenant_admin_own_tenant_only(world: World) -> None:
    other, dave = _second_tenant(world)
    _set(world, world.alice, tenant_admin=True)
    alice = admin.user_actor(world.store, world.tenant_id, world.alice, "console", "192.0.2.1")
    bob = admin.user_actor(world.store, world.tenant_id, world.bob, "console", "192.0.2.2")
    assert alice.tenant_admin and not alice.platform
    page = admin_ops.list_accounts(world.store, alice, world.tenant_id)
    assert page["total"] == 3
    with pytest.raises(NotFound):  # another tenant's ids look like nothing at all
        admin_ops.list_accounts(world.store, alice, other)
    with pytest.raises(NotFound):
        admin_ops.update_account(world.store, alice, other, dave, active=False)
    with pytest.raises(PermissionDenied):
        admin_ops.list_accounts(world.store, bob, world.tenant_id)
    with pytest.raises(PermissionDenied):  # a tenant admin cannot make platform admins
        admin_ops.update_account(world.store, alice, world.tenant_id, world.bob, flags={"platform_admin": True})
    platform = admin.Actor("ops@provider", "api", platform=True)
    admin_ops.update_account(world.store, platform, other, dave, active=False)
    with world.store.transaction(other) as tx:
        assert accounts.get_user(tx, dave).active is False


def test_every_admin_action_is_audited_in_its_transaction(world: World) -> None:
    _set(world, world.alice, tenant_admin=True)
    alice = admin.user_actor(world.store, world.tenant_id, world.alice, "console", "192.0.2.1")
    user, password = admin_ops.create_account(world.store, alice, world.tenant_id, "erin", protocols=[])
    assert password
    admin_ops.update_account(world.store, alice, world.tenant_id, user.id, active=False)
    admin_ops.reset_password(world.store, alice, world.tenant_id, user.id)
    with pytest.raises(InvalidData):  # typed confirmation
        admin_ops.delete_account(world.store, alice, world.tenant_id, user.id, confirm="someone")
    admin_ops.delete_account(world.store, alice, world.tenant_id, user.id, confirm="erin")
    rows = admin.read_audit(world.store, alice, world.tenant_id)
    assert [r["action"] for r in rows] == ["account.delete", "account.password", "account.suspend", "account.create"]
    assert all(r["actor"] == "alice@example.com" and r["via"] == "console" and r["address"] == "192.0.2.1"
               for r in rows)
    assert password not in str(rows)
    with pytest.raises(PermissionDenied):  # only platform admins read every tenant's log
        admin.read_audit(world.store, alice, None)


# ---------------------------------------------------------------- API tokens


def test_api_tokens_hashed_scoped_revocable(world: World) -> None:
    other, _ = _second_tenant(world)
    _set(world, world.alice, tenant_admin=True)
    alice = admin.user_actor(world.store, world.tenant_id, world.alice, "console", "")
    with pytest.raises(PermissionDenied):
        admin.create_token(world.store, alice, "everything", None)
    with pytest.raises(NotFound):
        admin.create_token(world.store, alice, "theirs", other)
    token_id, token = admin.create_token(world.store, alice, "automation", world.tenant_id)
    with world.store.engine.connect() as conn:
        stored = conn.execute(select(s.api_tokens.c.token_hash)).scalars().all()
    assert token not in stored and len(stored) == 1
    actor = admin.token_actor(world.store, token, "198.51.100.7")
    assert actor.may_act_on(world.tenant_id) and not actor.may_act_on(other)
    with pytest.raises(NotFound):
        admin_ops.list_accounts(world.store, actor, other)
    with pytest.raises(AuthenticationFailed):
        admin.token_actor(world.store, token + "x", "")
    admin.revoke_token(world.store, alice, token_id)
    with pytest.raises(AuthenticationFailed):
        admin.token_actor(world.store, token, "")
    assert [r["action"] for r in admin.read_audit(world.store, alice, world.tenant_id)] == ["token.revoke", "token.create"]
