"""calendar-query of one month (issue 11) on oxsync alone: server CPU seconds and wall time per query,
first and warm, with the same events as bench_peers (`peers_data.py`). With --pg, oxsync runs on a
throwaway PostgreSQL cluster and the CPU of its processes (postmaster and backends) is printed too.
Compare two trees by running this file under each one's PYTHONPATH (the load and the server use that
tree's code):

    cd TREE && PYTHONPATH=$PWD .venv/bin/python /path/to/bench/bench_query.py [events] [warm runs] [--pg]
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
from bench.peers_servers import Client, Oxsync, database_pids  # noqa: E402


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--pg"]
    events = int(args[0]) if args else 10000
    warm = int(args[1]) if len(args) > 1 else 5
    cluster = None
    if "--pg" in sys.argv:
        from tests.pgcluster import PgCluster

        cluster = PgCluster()
        cluster.start()
    try:
        with tempfile.TemporaryDirectory() as work:
            peer = Oxsync(Path(work), cluster.empty_database(), "oxsync-pg") if cluster else Oxsync(Path(work))
            began = time.monotonic()
            peer.setup(events, 0)
            print(f"loaded {events} events in {time.monotonic() - began:.0f} s", flush=True)
            peer.start()
            try:
                client = Client(peer.port, peer.auth)
                body = query_body(*MONTH)
                for run in range(warm + 1):
                    pids, db = peer.pids(), database_pids(cluster.data if cluster else None)
                    cpu, db_cpu, wall = cpu_seconds(pids), cpu_seconds(db), time.monotonic()
                    status, answer = client.request("REPORT", peer.cal, body, Depth="1",
                                                    Content_Type="application/xml")
                    wall, cpu, db_cpu = time.monotonic() - wall, cpu_seconds(pids) - cpu, cpu_seconds(db) - db_cpu
                    assert status == 207, status
                    database = f", database CPU {db_cpu:.3f} s" if cluster else ""
                    print(f"{'first' if run == 0 else 'warm '} query: {responses(answer)} answers, server CPU {cpu:.3f} s"
                          f"{database}, wall {wall:.3f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                peer.stop()
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
