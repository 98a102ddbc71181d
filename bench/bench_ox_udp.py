"""OX UDP push latency: PROPPATCH commit -> `<folder>\\x01` packet at a registered client, with the
coalescing delay set to 0 (`[ox] push_coalesce_seconds = 0`) and the
per-address packet limit lifted. Server in a child process (SQLite).

Measured from sending the PROPPATCH to receiving the packet, minus nothing: it includes the HTTP
round trip of the write itself. Usage: python bench/bench_ox_udp.py [rounds]   (default 200)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ox_propfind import seed, start  # noqa: E402
from tests.oxclient import OX, OxClient, UdpClient  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as directory:
        url, folder = seed(directory, 10)
        server, port = start(url)
        try:
            client = OxClient(port, "bench", "bench-pw")
            [gu] = client.propfind("groupuser", {"user": "*"})
            me = next(u for u in gu.props["users"] if u.findtext(f"{{{OX}}}myidentity") == "true")
            # the UDP port is ephemeral in the child: find it from the process' sockets
            import psutil

            udp_ports = [c.laddr.port for c in psutil.Process(server.pid).net_connections(kind="udp")]
            assert udp_ports, "no UDP socket"
            udp = UdpClient(udp_ports[0])
            assert udp.register(int(me.findtext(f"{{{OX}}}uid")), int(me.findtext(f"{{{OX}}}context_id"))) == b"OK\x01"
            latencies, commits = [], []
            received: list[float] = []

            def listen() -> None:
                if udp.recv(5) is not None:
                    received.append(time.perf_counter())

            for n in range(rounds):
                received.clear()

                listener = threading.Thread(target=listen)
                listener.start()
                started = time.perf_counter()
                [r] = client.proppatch("contacts", {"folder_id": folder, "last_name": f"Push{n}"})
                answered = time.perf_counter()
                listener.join()
                assert r.status == "200" and received, "no packet"
                latencies.append((received[0] - started) * 1000)
                commits.append((answered - started) * 1000)
            latencies.sort()
            print(f"UDP push, {rounds} writes, coalescing 0: PROPPATCH->packet median {statistics.median(latencies):.1f} ms, "
                  f"p95 {latencies[int(0.95 * len(latencies)) - 1]:.1f} ms, max {latencies[-1]:.1f} ms "
                  f"(PROPPATCH round trip itself: median {statistics.median(commits):.1f} ms)")
            udp.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
