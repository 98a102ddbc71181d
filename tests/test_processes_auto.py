"""`[server] processes = "auto"`, the default: one serving process per core this process may run on
(`os.sched_getaffinity`), at most `processes_auto_max`, and one where several cannot serve (an `ssl:`
endpoint, an in-memory SQLite database), resolved once at start (oxsync/processes.py `resolve`); and
a `kill -9` of the first process under it: its copies die with it at once (the kernel sends them
SIGTERM, PR_SET_PDEATHSIG), none keeps the port or serves, and a restarted `oxsync serve` binds the same
port and serves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from oxsync import processes
from oxsync.cli import main
from oxsync.config import ConfigError, Settings, StoreSettings, apply_overrides, load_settings
from oxsync.listeners import ServerStartError
from oxsync.store.api import Store
from tests.live import wait_until
from tests.procstat import proc_stat
from tests.serveproc import Serve, env, self_signed


def _settings(endpoint: str, url: str, **server: object) -> Settings:
    return apply_overrides(Settings(store=StoreSettings(url=url)), {"server": {"http_endpoint": endpoint, **server}})


def _expected() -> int:
    """What auto computes on this machine (1 on a one-core machine: then no copy runs)."""
    return min(len(os.sched_getaffinity(0)), Settings().server.processes_auto_max)


def test_auto_is_the_default_and_the_file_may_spell_it(tmp_path: Path) -> None:
    assert Settings().server.processes == processes.PROCESSES_AUTO == 0
    config = tmp_path / "oxsync.toml"
    for written, value in (('"auto"', 0), ('"Auto"', 0), ("0", 0), ("3", 3)):
        config.write_text(f"[server]\nprocesses = {written}\n")
        assert load_settings(config).server.processes == value
    for written, needle in (('"many"', "'auto'"), ("-1", "processes"), ("true", "expected int")):
        config.write_text(f"[server]\nprocesses = {written}\n")
        with pytest.raises(ConfigError, match=needle):
            load_settings(config)
    config.write_text("[server]\nprocesses_auto_max = 0\n")
    with pytest.raises(ConfigError, match="processes_auto_max"):
        load_settings(config)


def test_auto_resolves_to_the_usable_cores_at_most_the_max(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = Store(Settings(store=StoreSettings(url=f"sqlite:///{tmp_path}/o.db")))
    try:
        tcp = _settings("tcp:0:interface=127.0.0.1", store.settings.store.url)
        cores = len(os.sched_getaffinity(0))
        resolved = processes.resolve(tcp, store)
        assert (resolved.count, resolved.auto) == (min(cores, 8), True)
        assert resolved.why.startswith(f"auto: {cores} usable core")
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(12)))  # a bigger machine
        assert processes.resolve(tcp, store).count == 8
        assert "processes_auto_max = 8" in processes.resolve(tcp, store).why
        assert processes.resolve(apply_overrides(tcp, {"server": {"processes_auto_max": 3}}), store).count == 3
        explicit = processes.resolve(apply_overrides(tcp, {"server": {"processes": 5}}), store)
        assert (explicit.count, explicit.auto, explicit.why) == (5, False, "[server] processes = 5")
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # taskset -c 0
        assert processes.resolve(tcp, store).count == 1
    finally:
        store.dispose()


def test_auto_is_one_process_where_several_cannot_serve(tmp_path: Path) -> None:
    store = Store(Settings(store=StoreSettings(url=f"sqlite:///{tmp_path}/o.db")))
    memory = SimpleNamespace(engine=create_engine("sqlite://"))  # what resolve reads of a store (Store
    try:  # itself refuses an in-memory database; a caller's store may not)
        key, cert = self_signed(tmp_path)
        tls = _settings(f"ssl:0:privateKey={key}:certKey={cert}", store.settings.store.url)
        resolved = processes.resolve(tls, store)
        assert (resolved.count, resolved.auto) == (1, True)
        assert "ssl:" in resolved.why and "put TLS in front" in resolved.why
        assert processes.resolve(_settings("unix:/tmp/x.sock", store.settings.store.url), store).count == 1
        in_memory = processes.resolve(_settings("tcp:0", "sqlite://"), memory)
        assert in_memory.count == 1 and "in memory" in in_memory.why
        # /metrics is served by the first process alone: "auto" serves what a scrape sees whole
        metered = apply_overrides(_settings("tcp:0", store.settings.store.url), {"server": {"admin_endpoint": "tcp:0"}})
        assert (processes.resolve(metered, store).count, processes.resolve(metered, store).why) == (
            1, f"auto: one, as {processes.METRICS_OF_THE_FIRST}")
        explicit = apply_overrides(metered, {"server": {"processes": 2}})
        assert processes.resolve(explicit, store).count == 2  # written: served as written (warned at start)
        with pytest.raises(ServerStartError, match="in memory"):  # written explicitly: refused, not ignored
            processes.shared_listener(_settings("tcp:0", "sqlite://", processes=2), memory)
        with pytest.raises(ServerStartError, match="needs a tcp: http_endpoint"):
            processes.shared_listener(apply_overrides(tls, {"server": {"processes": 3}}), store)
    finally:
        store.dispose()
        memory.engine.dispose()


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (the copies of a serving process)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = proc_stat(entry)
            except OSError:
                continue
            if stat.ppid == pid and stat.state != "Z":
                found.add(stat.pid)
    return found


def _state(pid: int) -> str:
    """`R`, `S`, `T` (stopped), `Z`...; `gone` once it has no /proc entry."""
    try:
        return proc_stat(pid).state
    except OSError:
        return "gone"


def _gone(pid: int) -> bool:
    """Ended (a zombie not reaped yet by init counts as ended: it holds no socket and serves nothing)."""
    return _state(pid) in ("Z", "gone")


def _pending(pid: int) -> int:
    """The signals waiting for `pid` (a stopped process keeps them until it is continued)."""
    mask = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            mask |= int(line.split()[1], 16)
    return mask


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _serving_pid(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
        return int(json.loads(response.read())["process"])


def _serve(db: str, config: Path, port: int) -> tuple[Serve, int, str]:
    server = Serve("--config", str(config), "--db", db, "serve", "--listen", f"tcp:{port}:interface=127.0.0.1",
                   "--udp-port", "0")
    printed = server.wait_for("CalDAV/CardDAV discovery")
    bound = int(printed.split("CalDAV/CardDAV discovery: http://127.0.0.1:", 1)[1].split("/", 1)[0])
    return server, bound, printed


def test_serve_runs_one_process_per_core_and_a_kill_9_takes_them_all(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/db.sqlite"
    assert main(["--db", db, "init", "--domain", "example.com"]) == 0
    config = tmp_path / "oxsync.toml"  # no access log: nobody reads serve's stderr until it ends
    config.write_text('[server]\nprocesses = "auto"\n[log]\naccess_log = false\n')
    expected, cores = _expected(), len(os.sched_getaffinity(0))
    server, port, printed = _serve(db, config, 0)
    restarted, copies = None, set()
    try:
        assert f"serving processes: {expected} (auto: {cores} usable core" in printed
        first = server.proc.pid
        assert wait_until(lambda: len(_children(first)) == expected - 1, 60), _children(first)
        copies = _children(first)
        seen: set[int] = set()  # every copy serves (it asked for its death signal before it listened)
        assert wait_until(lambda: seen.add(_serving_pid(port)) or seen == copies | {first}, 60), (seen, copies)
        for copy in copies:
            os.kill(copy, signal.SIGSTOP)  # held still: what reaches it when the first process dies stays pending
        for copy in copies:
            assert wait_until(lambda c=copy: _state(c) == "T")
        os.kill(first, signal.SIGKILL)
        server.proc.wait(30)
        for copy in copies:  # the kernel sent each copy SIGTERM as its parent died (PR_SET_PDEATHSIG)
            assert wait_until(lambda c=copy: bool(_pending(c) & (1 << (signal.SIGTERM - 1))), 30), _pending(copy)
            os.kill(copy, signal.SIGCONT)
        for copy in copies:
            assert wait_until(lambda c=copy: _gone(c), 60), f"copy {copy} outlived its first process"
        assert _refused(port)  # nothing of the killed server accepts on its port
        restarted, again, printed = _serve(db, config, port)  # the same port, bound at once
        assert again == port and f"serving processes: {expected}" in printed
        new = {restarted.proc.pid}
        assert wait_until(lambda: len(_children(restarted.proc.pid)) == expected - 1, 60)
        new |= _children(restarted.proc.pid)
        answered = {_serving_pid(port) for _ in range(20)}
        assert answered and answered <= new, (answered, new, copies)  # no request served by an orphan
        assert restarted.stop() == 0
        assert wait_until(lambda: all(_gone(pid) for pid in new), 60)
    finally:
        for proc in (server, restarted):
            if proc is not None:
                proc.stop()
        for copy in copies:  # a failed check leaves no stopped copy holding the port
            if not _gone(copy):
                os.kill(copy, signal.SIGKILL)


PDEATHSIG = """
import ctypes, sys
from oxsync import processes
processes.die_with_parent()
value = ctypes.c_int(0)
ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
print(value.value)
"""


def test_a_copy_dies_with_its_parent_and_leaves_when_the_parent_died_before_it_asked() -> None:
    """A copy asks the kernel for SIGTERM at its parent's death; in the race PR_SET_PDEATHSIG leaves (the
    first process died between starting the copy and the copy's request: no signal will come) the copy,
    reparented, sees a parent that is not the first process and leaves without serving."""
    alive = subprocess.run([sys.executable, "-c", PDEATHSIG], capture_output=True, text=True, timeout=60,
                           env=env(**{processes.PARENT_ENV: str(os.getpid())}))
    assert alive.returncode == 0 and alive.stdout.strip() == str(int(signal.SIGTERM)), alive.stderr
    dead = subprocess.run([sys.executable, "-c", PDEATHSIG], capture_output=True, text=True, timeout=60,
                          env=env(**{processes.PARENT_ENV: str(os.getpid() + 4_000_000)}))  # never a pid here
    assert dead.returncode == 1 and "the first serving process is gone" in dead.stderr and not dead.stdout
