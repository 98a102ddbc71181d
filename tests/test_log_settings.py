"""[log] settings: level, destination (stderr or a rotation-safe 0600 file), JSON or text, the access log
switch; secrets never written in either format."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from oxsync.config import ConfigError, LogSettings, load_settings
from oxsync.logs import configure_from_settings
from tests.live import http_request
from tests.serveproc import Serve


@pytest.fixture
def restore_root_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_text_file_level_redaction_and_rotation(tmp_path: Path, restore_root_logging) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "logs" / "oxsync.log"
    configure_from_settings(LogSettings(level="warning", destination=str(path), format="text"))
    log = logging.getLogger("oxsync.test")
    log.info("not written")
    log.warning("login failed", extra={"login": "alice", "password": "hunter2", "cookie": "sessionid=abc"})
    text = path.read_text()
    assert "not written" not in text
    assert "oxsync.test: login failed" in text and 'login="alice"' in text
    assert "hunter2" not in text and "sessionid=abc" not in text and text.count("[redacted]") == 2
    assert not text.lstrip().startswith("{")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.rename(tmp_path / "logs" / "oxsync.log.1")  # what logrotate does
    log.error("after rotation")
    assert "after rotation" in path.read_text() and "after rotation" not in (tmp_path / "logs" / "oxsync.log.1").read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_json_format_to_stderr_by_default(capsys: pytest.CaptureFixture[str], restore_root_logging) -> None:  # type: ignore[no-untyped-def]
    configure_from_settings(LogSettings())
    logging.getLogger("oxsync.test").info("hello", extra={"authorization": "Basic xyz"})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["msg"] == "hello" and entry["authorization"] == "[redacted]"


def test_bad_log_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text('[log]\nformat = "xml"\n')
    with pytest.raises(ConfigError, match=r"\[log\] format"):
        load_settings(config)
    config.write_text('[log]\nlevel = "loud"\n')
    with pytest.raises(ConfigError, match=r"\[log\] level"):
        load_settings(config)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("enabled", [True, False])
def test_access_log_switch(live_server, store, enabled: bool, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, log={"access_log": enabled})
    with caplog.at_level(logging.INFO, logger="oxsync.access"):
        assert http_request(running.port, "GET", "/health")[0] == 200
        running.call(lambda: None)
    assert len([r for r in caplog.records if r.name == "oxsync.access"]) == (1 if enabled else 0)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_access_log_fields_built_only_for_a_line_written(  # type: ignore[no-untyped-def]
        live_server, store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A request's access-log fields (address, URI, user agent, login, duration) are built only when
    its line is written: with `oxsync.access` above INFO the line is dropped and nothing is built for
    it (the request is still counted in the metrics); at INFO the line carries them as before."""
    import oxsync.server as server_module
    from oxsync import metrics

    built: list[dict[str, object]] = []
    real = server_module.access_log_fields

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        built.append(real(*args, **kw))
        return built[-1]
    monkeypatch.setattr(server_module, "access_log_fields", counting)
    running = live_server(store, log={"access_log": True})

    def health_requests() -> float:
        return metrics.REGISTRY.get_sample_value(
            "oxsync_http_requests_total", {"dialect": "health", "command": "GET", "status": "2xx"}) or 0.0
    before = health_requests()
    with caplog.at_level(logging.WARNING, logger="oxsync.access"):
        assert http_request(running.port, "GET", "/health")[0] == 200
        running.call(lambda: None)
    assert built == [] and not [r for r in caplog.records if r.name == "oxsync.access"]
    assert health_requests() == before + 1
    with caplog.at_level(logging.INFO, logger="oxsync.access"):
        assert http_request(running.port, "GET", "/health")[0] == 200
        running.call(lambda: None)
    lines = [r for r in caplog.records if r.name == "oxsync.access"]
    assert len(built) == 1 and len(lines) == 1
    assert lines[0].getMessage() == "GET /health 200" and lines[0].__dict__["uri"] == "/health"
    assert health_requests() == before + 2


def test_serve_logs_where_the_config_says(tmp_path: Path) -> None:
    from oxsync.cli import main

    db = f"sqlite:///{tmp_path}/db.sqlite"
    assert main(["--db", db, "init"]) == 0
    config = tmp_path / "oxsync.toml"
    log_file = tmp_path / "log" / "oxsync.log"
    config.write_text(f'[log]\ndestination = "{log_file}"\nformat = "text"\nlevel = "info"\n')
    server = Serve("--config", str(config), "--db", db, "serve", "--listen", "tcp:0:interface=127.0.0.1",
                   "--udp-port", "0")
    try:
        server.wait_for("CalDAV/CardDAV discovery")
    finally:
        assert server.stop() == 0
    text = log_file.read_text()
    assert "oxsync.server: listening" in text and stat.S_IMODE(os.stat(log_file).st_mode) == 0o600
