"""Packaging: a built wheel installed into a fresh virtualenv gives a working `oxsync` that needs only
the runtime dependencies (test, bench and conformance packages are made unimportable there), carries
the LICENSE, and `make serve` installs only install_requires."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.live import http_request
from tests.serveproc import ROOT

EXTRAS_ONLY = ("pytest", "_pytest", "ruff", "matplotlib", "psutil", "radicale", "xandikos", "caldav",
               "caldav_server_tester", "pyactivesync", "py_spy")
"""Import names of packages that are only in the test/bench/conformance extras."""

BLOCKER = """
import importlib.abc, sys

class _NoExtras(importlib.abc.MetaPathFinder):
    BLOCKED = {blocked!r}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{{name}} is not a runtime dependency of oxsync")
        return None

sys.meta_path.insert(0, _NoExtras())
"""


def install_requires() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return {re.split(r"[<>=\[ ]", line.strip())[0].lower().replace("_", "-")
            for line in parser["options"]["install_requires"].splitlines() if line.strip()}


def clean_env() -> dict[str, str]:
    """No PYTHONPATH: this tree must not stand in for what is installed."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OXSYNC_CONFIG", "NOTIFY_SOCKET")}


def build_wheel(out: Path) -> Path:
    """From a copy of the tree, so that build/ and *.egg-info never land in the checkout."""
    source = out.parent / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "*.egg-info", ".pytest_cache", ".ruff_cache", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(out)],
                   check=True, capture_output=True, text=True, timeout=600, env=clean_env())
    [wheel] = out.glob("oxsync-*.whl")
    return wheel


def test_wheel_installs_a_working_oxsync_with_runtime_deps_only(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        license_text = archive.read(next(n for n in names if n.endswith("/LICENSE"))).decode()
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in license_text and "Version 3, 19 November 2007" in license_text
    assert any(n.startswith("oxsync/store/migrations/versions/0001") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    required = {re.split(r"[<>=\[ ;(]", line.split(":", 1)[1].strip())[0].lower().replace("_", "-")
                for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert required == install_requires()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300, env=clean_env())
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the runtime dependencies come from the test venv; the extras are made unimportable
    (site / "_oxsync_no_extras.py").write_text(BLOCKER.format(blocked=set(EXTRAS_ONLY)))
    (site / "zz_deps.pth").write_text(f"{sysconfig.get_paths()['purelib']}\nimport _oxsync_no_extras\n")
    env = clean_env()
    oxsync = str(venv / "bin" / "oxsync")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([oxsync, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import oxsync, pytest"], capture_output=True,
                           text=True, env=env)
    assert "not a runtime dependency" in where.stderr  # the blocker works
    version = re.search(r"^Version: (\S+)$", metadata, flags=re.M)
    assert version and run("--version").stdout.strip() == f"oxsync {version.group(1)}"
    db = f"sqlite:///{tmp_path}/db.sqlite"
    assert run("--db", db, "init", "--domain", "example.com").returncode == 0
    assert run("config", "example").stdout.startswith("# oxsync configuration")
    proc = subprocess.Popen([oxsync, "--db", db, "serve", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Exchange ActiveSync" in line:
                break
        server = next(x for x in lines if x.startswith("Exchange ActiveSync")).split("server ", 1)[1].split(",")[0]
        status, _, body = http_request(int(server.rsplit(":", 1)[1]), "GET", "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        imported = subprocess.run([str(venv / "bin" / "python"), "-c", "import oxsync; print(oxsync.__file__)"],
                                  capture_output=True, text=True, env=env, cwd=tmp_path).stdout
        assert imported.startswith(str(venv))
    finally:
        proc.terminate()
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""


def test_make_serve_installs_runtime_dependencies_only() -> None:
    serve = subprocess.run(["make", "-n", "-B", "serve"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    installs = [line for line in serve.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("[" not in line for line in installs), installs
    test = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "'.[test,bench,conformance]'" in test
