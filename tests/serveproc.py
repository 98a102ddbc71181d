"""`oxsync` as a real subprocess (`python -m oxsync`): one-shot commands and a running `serve`.

Used by the start-up, systemd, backup and packaging tests, which must see what an operator sees: the
exit code, stdout and stderr of the real command, with PYTHONPATH pointing at this tree.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("OXSYNC_CONFIG", "NOTIFY_SOCKET")}
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    out.update(extra)
    return out


def oxsync(*args: str, timeout: float = 120, extra_env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one `oxsync` command to completion."""
    return subprocess.run([sys.executable, "-m", "oxsync", *args], capture_output=True, text=True,
                          timeout=timeout, env=env(**(extra_env or {})), cwd=cwd)


class Serve:
    """A running `oxsync serve`; `wait_for(text)` reads stdout until a line contains it."""

    def __init__(self, *args: str, extra_env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "oxsync", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env(**(extra_env or {})), cwd=cwd)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """All stdout up to the first line containing `text`; AssertionError if the process ends first."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s; stdout so far: {''.join(self.out)}") from None
            if line is None:
                raise AssertionError(f"serve ended (rc {self.proc.wait()}): {''.join(self.out)}{self.stderr()}")
            self.out.append(line)
            if text in line:
                return "".join(self.out)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A fresh EC key and self-signed certificate for `name` (key.pem, cert.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def free_port(kind: int) -> Any:
    """A socket bound to a free loopback port of `kind` (SOCK_STREAM/SOCK_DGRAM); the caller closes it."""
    import socket

    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(1)
    return sock


def logged_ports(log: Path) -> dict[str, int]:
    """listener name (http, admin, console) -> the port it bound, read from a serve's JSON log file
    (`[log] destination`: each listener logs `server.listening` with its bound port once it is up, before
    the connection instructions are printed). A test serves on port 0 and reads the port here, instead of
    choosing a free port first, which another process may take before the server binds it. With
    `[server] processes` > 1 every process logs its own `http`; only the first has admin and console."""
    ports: dict[str, int] = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "server.listening":
            ports.setdefault(entry["listener"], int(entry["port"]))
    return ports
