"""calendar-query of one month (issue 11) on oxsync alone: server CPU seconds and wall time per query,
first and warm, with the same events as bench_peers (`peers_data.py`), and the index/parsed split of
`oxsync_dav_query_objects_total`. Compare two trees by running this file under each one's PYTHONPATH
(the load and the server use that tree's code):

    cd TREE && PYTHONPATH=$PWD .venv/bin/python /path/to/bench/bench_query.py [events] [warm runs]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0] or str(Path(__file__).resolve().parent.parent))

from bench.bench_peers import cpu_seconds, query_body, responses  # noqa: E402
from bench.peers_data import MONTH  # noqa: E402
from bench.peers_servers import Client, Oxsync  # noqa: E402


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    warm = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as work:
        peer = Oxsync(Path(work))
        began = time.monotonic()
        peer.setup(events, 0)
        print(f"loaded {events} events in {time.monotonic() - began:.0f} s", flush=True)
        peer.start()
        try:
            client = Client(peer.port, peer.auth)
            body = query_body(*MONTH)
            for run in range(warm + 1):
                pids = peer.pids()
                cpu, wall = cpu_seconds(pids), time.monotonic()
                status, answer = client.request("REPORT", peer.cal, body, Depth="1", Content_Type="application/xml")
                wall, cpu = time.monotonic() - wall, cpu_seconds(pids) - cpu
                assert status == 207, status
                print(f"{'first' if run == 0 else 'warm '} query: {responses(answer)} answers, server CPU {cpu:.3f} s, "
                      f"wall {wall:.3f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            peer.stop()


if __name__ == "__main__":
    main()
