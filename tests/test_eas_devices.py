"""`oxsync device list|wipe|remove` against a store a live ActiveSync server wrote devices into."""

from __future__ import annotations

import pytest

from oxsync.cli import main
from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.eas_client import client


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_device_cli(live_server, store, world, capsys, backend) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install)
    phone = client(running, device_id="iphone01", user_agent="Apple-iPhone14C2/2001.1")
    phone.provision()
    phone.sync(phone.folder_of_type(9), "0")
    url = str(store.engine.url.render_as_string(hide_password=False))
    assert main(["--db", url, "device", "list"]) == 0
    listing = capsys.readouterr().out
    assert "iphone01" in listing and "Apple-iPhone14C2" in listing and "provisioned" in listing and "iPhone9C1" in listing
    row = next(line for line in listing.splitlines() if "iphone01" in line)
    assert row.count("Z") >= 2  # last seen and last sync
    assert main(["--db", url, "device", "wipe", "alice", "nosuch"]) != 0
    capsys.readouterr()
    assert main(["--db", url, "device", "wipe", "alice", "iphone01"]) == 0
    body = E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))
    assert phone.post("FolderSync", body).text("FolderHierarchy:Status") == "140"
    assert main(["--db", url, "device", "list", "--user", "alice"]) == 0
    assert "requested" in capsys.readouterr().out
    assert main(["--db", url, "device", "remove", "alice", "iphone01"]) == 0
    capsys.readouterr()
    assert main(["--db", url, "device", "list"]) == 0
    assert "iphone01" not in capsys.readouterr().out
    assert phone.post("FolderSync", body).text("FolderHierarchy:Status") == "144"  # must provision again
