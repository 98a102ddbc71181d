"""Store hot path: full listing vs. a 10-change delta, against folder size (SQLite, embedded).

Prints one line per folder size; the delta column should stay flat while the listing grows.
Usage: python bench/bench_store_delta.py [sizes...]   (default 1000 10000)
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial

from oxsync.config import Settings, StoreSettings
from oxsync.model import Contact, Module
from oxsync.store import accounts
from oxsync.store import folders as folder_ops
from oxsync.store.api import Store
from oxsync.store.objects import insert_object


def build(size: int, directory: str) -> tuple[Store, int, int, int]:
    store = Store(Settings(store=StoreSettings(url=f"sqlite:///{directory}/bench-{size}.db")))
    store.create_schema()
    tenant = store.create_tenant("bench.example")
    with store.transaction(tenant.id, write=True) as tx:
        user = accounts.create_user(tx, "bench", "pw")
        folder = folder_ops.default_folder_id(tx, user.id, Module.CONTACT)
        assert folder is not None
        for n in range(size):
            contact = Contact(first_name=f"First{n}", last_name=f"Last{n}", email1=f"p{n}@example.org",
                              phone_business=f"+33 1 00 00 {n:05d}", company="ACME")
            insert_object(tx, contact, folder, user.id)
            tx.record_object_change(folder, contact.object_id, gone=False, kind="create")
    return store, tenant.id, user.id, folder


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(sizes: list[int]) -> None:
    print(f"{'items':>8} {'list s':>8} {'items/s':>9} {'delta(10) ms':>13} {'delta(0 changes) ms':>20}")
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            store, tenant_id, user_id, folder = build(size, directory)
            with store.session(tenant_id, user_id) as session:
                listing_s, listed = timed(partial(session.list_objects, folder))
                token, _ = session.revision()
            assert len(listed) == size
            with store.session(tenant_id, user_id, write=True) as session:
                for contact in listed[:10]:
                    contact.note = "changed"
                    session.update_object(folder, contact)
            with store.session(tenant_id, user_id) as session:
                delta_s, delta = timed(partial(session.object_delta, folder, token))
                empty_s, _ = timed(partial(session.object_delta, folder, delta.revision))
            assert len(delta.changed) == 10
            print(f"{size:>8} {listing_s:>8.2f} {size / listing_s:>9.0f} {delta_s * 1000:>13.1f} {empty_s * 1000:>20.1f}")
            store.dispose()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
