"""Writer process for the crash test: commits contacts with device state, acknowledging each commit.

Usage: python -m tests.crash_writer STORE_URL TENANT_ID USER_ID FOLDER_ID
Prints "ACK <object_id> <uid>" on stdout only after the transaction has committed.
"""

from __future__ import annotations

import sys

from oxsync.config import Settings, StoreSettings
from oxsync.model import Contact
from oxsync.store.api import Store


def main() -> None:
    url, tenant_id, user_id, folder_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = Store(Settings(store=StoreSettings(url=url, thread_pool_size=1)))
    n = 0
    while True:
        n += 1
        uid = f"crash-{n}"
        with store.session(tenant_id, user_id, write=True) as session:
            contact = session.create_object(folder_id, Contact(last_name=f"Crash {n}", uid=uid, note="x" * 2000))
            state = session.get_state("crashdev", str(folder_id)) or {"known": []}
            state["known"].append(contact.object_id)
            state["sync_key"] = n
            session.put_state("crashdev", str(folder_id), state)
        print(f"ACK {contact.object_id} {uid}", flush=True)


if __name__ == "__main__":
    main()
