"""Start oxsync nodes for a simulation profile: one on SQLite, one on PostgreSQL, or two on PostgreSQL.

Nodes are real `oxsync serve` processes on loopback ports, sharing one store; the caller seeds the store
first (through the same URL) and stops the nodes at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Node:
    http_port: int
    udp_port: int
    process: subprocess.Popen  # type: ignore[type-arg]
    admin_port: int = 0
    """The node's admin listener (Prometheus `/metrics`), read at the end of a run (bench/sim/server_side.py)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class Cluster:
    url: str
    nodes: list[Node] = field(default_factory=list)

    def stop(self) -> None:
        for node in self.nodes:
            node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(10)
            except subprocess.TimeoutExpired:
                node.process.kill()


def start_nodes(store_url: str, count: int, workdir: Path, extra_config: str = "",
                processes: str | None = None) -> Cluster:
    """`count` nodes on `store_url`; `processes`: each node's `[server] processes` (None: the default)."""
    cluster = Cluster(store_url)
    serving = f'processes = "{processes}"\n' if processes == "auto" else f"processes = {int(processes)}\n" if processes else ""
    for index in range(count):
        http_port, udp_port, admin_port = free_port(), free_port(), free_port()
        config = workdir / f"node{index}.toml"
        config.write_text(
            f'[server]\nhttp_endpoint = "tcp:{http_port}:interface=127.0.0.1"\npublic_host = "127.0.0.1:{http_port}"\n'
            f'admin_endpoint = "tcp:{admin_port}:interface=127.0.0.1"\n{serving}'
            f'udp_port = {udp_port}\n[store]\nurl = "{store_url}"\n{extra_config}'
        )
        log = open(workdir / f"node{index}.log", "w")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen([str(Path(sys.executable).parent / "oxsync"), "--config", str(config), "serve"],
                                   stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        cluster.nodes.append(Node(http_port, udp_port, process, admin_port))
    for node in cluster.nodes:
        _wait_healthy(node)
    return cluster


def _wait_healthy(node: Node, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"node on port {node.http_port} exited with {node.process.returncode}")
        try:
            with urllib.request.urlopen(node.base_url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"node on port {node.http_port} did not become healthy")
