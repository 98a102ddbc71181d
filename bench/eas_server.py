"""Helpers for the ActiveSync benches: seed a SQLite store, run oxsync+EAS in a child process.

The server runs in its own process so that its RSS can be measured alone (psutil).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from oxsync.config import Settings, StoreSettings
from oxsync.model import Contact, Module
from oxsync.store import accounts
from oxsync.store import folders as folder_ops
from oxsync.store.api import Store
from oxsync.store.objects import insert_object

CHILD = r"""
import sys
from oxsync.config import Settings, StoreSettings, apply_overrides
from oxsync.store.api import Store
from oxsync.server import run_server
from oxsync.eas import install
url, overrides = sys.argv[1], eval(sys.argv[2])
settings = apply_overrides(Settings(store=StoreSettings(url=url, thread_pool_size=8)), overrides)
store = Store(settings)
run_server(settings, store, on_ready=lambda port: print(port, flush=True), configure_logs=False, setup=install)
"""


def seed(directory: str, contacts: int) -> tuple[str, int, int]:
    """A store with user bench/bench-pw and `contacts` contacts; returns (url, user id, folder id)."""
    url = f"sqlite:///{directory}/eas-bench.db"
    store = Store(Settings(store=StoreSettings(url=url)))
    store.create_schema()
    tenant = store.create_tenant("bench.example")
    with store.transaction(tenant.id, write=True) as tx:
        user = accounts.create_user(tx, "bench", "bench-pw")
        folder = folder_ops.default_folder_id(tx, user.id, Module.CONTACT)
        assert folder is not None
        for n in range(contacts):
            contact = Contact(first_name=f"First{n}", last_name=f"Last{n}", email1=f"p{n}@example.org",
                              phone_business=f"+33 1 00 00 {n:05d}", company="ACME", street=f"{n} rue de la Paix",
                              city="Paris", note="A short note about this contact.")
            insert_object(tx, contact, folder, user.id)
            tx.record_object_change(folder, contact.object_id, gone=False, kind="create")
    store.dispose()
    return url, user.id, folder


def start(url: str, overrides: dict | None = None) -> tuple[subprocess.Popen[str], int]:  # type: ignore[type-arg]
    data = {"server": {"http_endpoint": "tcp:0:interface=127.0.0.1"}, **(overrides or {})}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, repr(data)], stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parent.parent))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    time.sleep(0.2)
    return proc, int(line)
