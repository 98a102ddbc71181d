"""The systemd unit and sysusers file in packaging/ are valid for this machine's systemd (verified by
`systemd-analyze verify` and `systemd-sysusers --dry-run`, which print every problem they find) and
keep the properties docs/install.md promises: Type=notify, a dedicated user, private files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serveproc import ROOT

UNIT = ROOT / "packaging" / "oxsync.service"
SYSUSERS = ROOT / "packaging" / "oxsync.sysusers"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make test` installs the systemd package (Makefile sysdeps)")
    return path


def verify(unit_text: str, tmp_path: Path, name: str = "oxsync.service", *others: Path) -> str:
    """Everything systemd-analyze says about the unit (empty = valid); ExecStart points at a real oxsync."""
    oxsync = str(Path(sys.executable).parent / "oxsync")
    unit = tmp_path / name
    unit.write_text(unit_text.replace("/opt/oxsync/bin/oxsync", oxsync))
    extra = []
    for other in others:
        (tmp_path / other.name).write_text(other.read_text().replace("/opt/oxsync/bin/oxsync", oxsync))
        extra.append(str(tmp_path / other.name))
    result = subprocess.run([tool("systemd-analyze"), "verify", str(unit), *extra], capture_output=True, text=True,
                            timeout=120)
    return (result.stdout + result.stderr).strip() + ("" if result.returncode == 0 else f"\nexit {result.returncode}")


def test_unit_is_valid(tmp_path: Path) -> None:
    assert verify(UNIT.read_text(), tmp_path) == ""


def test_backup_timer_and_service_are_valid(tmp_path: Path) -> None:
    service = ROOT / "packaging" / "oxsync-backup.service"
    timer = ROOT / "packaging" / "oxsync-backup.timer"
    assert verify(timer.read_text(), tmp_path, timer.name, service) == ""
    assert "oxsync backup " in service.read_text()


def test_the_check_sees_mistakes(tmp_path: Path) -> None:
    """systemd-analyze exits 0 on unknown keys; the test reads what it prints instead."""
    broken = UNIT.read_text().replace("Type=notify", "Type=notyfy").replace("UMask=0077", "UMask=0077\nUmask=0077")
    said = verify(broken, tmp_path)
    assert "notyfy" in said and "Umask" in said


def test_unit_promises(tmp_path: Path) -> None:
    settings = dict(re.findall(r"^(\w+)=(.*)$", UNIT.read_text(), flags=re.M))
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert settings["KillMode"] == "control-group"  # the serving processes' copies end with the service
    assert settings["User"] == "oxsync" and settings["UMask"] == "0077"
    assert settings["StateDirectoryMode"] == "0700" and settings["ExecStart"].endswith("oxsync serve")
    assert "oxsync" in SYSUSERS.read_text().split()
    (tmp_path / "root" / "etc").mkdir(parents=True)
    result = subprocess.run([tool("systemd-sysusers"), "--dry-run", f"--root={tmp_path / 'root'}", str(SYSUSERS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Creating user 'oxsync'" in result.stdout + result.stderr, result.stderr
