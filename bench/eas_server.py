"""Helpers for the ActiveSync benches: seed a SQLite store, run oxsync+EAS in a child process.

The server runs in its own process so that its RSS can be measured alone (psutil).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.sim.seed import seed_contact_folder

CHILD = r"""
import sys
from oxsync.config import ServerSettings, Settings, StoreSettings, apply_overrides
from oxsync.store.api import Store
from oxsync.server import run_server
from oxsync.eas import install
url, overrides = sys.argv[1], eval(sys.argv[2])
# one serving process: this bench's figures are one process's ([server] processes defaults to auto)
settings = apply_overrides(Settings(store=StoreSettings(url=url, thread_pool_size=8), server=ServerSettings(processes=1)),
                           overrides)
store = Store(settings)
run_server(settings, store, on_ready=lambda port: print(port, flush=True), configure_logs=False, setup=install)
"""


def seed(directory: str, contacts: int) -> tuple[str, int, int]:
    """A store with user bench/bench-pw and `contacts` contacts; returns (url, user id, folder id)."""
    url = f"sqlite:///{directory}/eas-bench.db"
    user_id, folder = seed_contact_folder(url, contacts)
    return url, user_id, folder


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
