"""A small populated tenant for store tests: alice, bob, carol, a group and default folders."""

from __future__ import annotations

from dataclasses import dataclass

from oxsync.model import Module
from oxsync.store import accounts
from oxsync.store import folders as folder_ops
from oxsync.store.api import Store


@dataclass
class World:
    store: Store
    tenant_id: int
    alice: int
    bob: int
    carol: int
    team: int

    def default_folder(self, user_id: int, module: Module) -> int:
        with self.store.transaction(self.tenant_id) as tx:
            found = folder_ops.default_folder_id(tx, user_id, module)
        assert found is not None
        return found

    def as_user(self, user_id: int, write: bool = False):  # type: ignore[no-untyped-def]
        return self.store.session(self.tenant_id, user_id, write=write)


def build_world(store: Store) -> World:
    tenant = store.create_tenant("example.com")
    with store.transaction(tenant.id, write=True) as tx:
        alice = accounts.create_user(tx, "alice", "alice-pw", first_name="Alice", last_name="Martin")
        bob = accounts.create_user(tx, "bob", "bob-pw", first_name="Bob", last_name="Durand")
        carol = accounts.create_user(tx, "carol", "carol-pw", first_name="Carol", last_name="Petit")
        team = accounts.create_group(tx, "team", "Team", [alice.id, bob.id])
    return World(store, tenant.id, alice.id, bob.id, carol.id, team.id)
