"""`python -m bench.sim`: run the CCS-style load simulator and print the threshold table.

Exits 0 whether the thresholds pass or fail (the verdict is in the output); non-zero only when the
simulator itself failed (an exception in a client loop, a node that did not start, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench.sim.base import Options
from bench.sim.clients import parse_mix
from bench.sim.run import PROFILES, SimConfig, run


def parse_args(argv: list[str] | None = None) -> SimConfig:
    p = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    p.add_argument("--profile", choices=sorted(PROFILES), default="sqlite")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--ramp", type=float, default=10.0, help="seconds to start all users (linear)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds to run after the ramp")
    p.add_argument("--mix", default="iphone=40,android=20,outlook=30,dav=10", help="client type percentages")
    p.add_argument("--contacts", type=int, default=300, help="contacts per user")
    p.add_argument("--appointments", type=int, default=200, help="appointments per user")
    p.add_argument("--thresholds", type=Path, default=Path(__file__).with_name("thresholds.json"))
    p.add_argument("--out", type=Path, default=Path("bench/results/sim"))
    p.add_argument("--heartbeat", default="60-300", help="iPhone Ping heartbeat range, seconds")
    p.add_argument("--android-heartbeat", type=int, default=60)
    p.add_argument("--eas-edit-every", type=float, default=300.0)
    p.add_argument("--ox-poll-every", type=float, default=30.0)
    p.add_argument("--ox-edit-every", type=float, default=120.0)
    p.add_argument("--ox-freebusy-every", type=float, default=180.0)
    p.add_argument("--dav-poll-every", type=float, default=60.0)
    p.add_argument("--dav-put-every", type=float, default=300.0)
    p.add_argument("--ox-coalesce", type=float, default=None, help="[ox] push_coalesce_seconds (default: server's 3 s)")
    p.add_argument("--seed-cache", type=Path, default=None,
                   help="directory keeping seeded stores for later runs with the same sizes (bench/sim/seedcache.py)")
    p.add_argument("--processes", default=None,
                   help="each node's [server] processes (a number or auto; default: the server's default)")
    a = p.parse_args(argv)
    low, _, high = a.heartbeat.partition("-")
    options = Options(heartbeat=(int(low), int(high or low)), android_heartbeat=a.android_heartbeat,
                      eas_edit_every=a.eas_edit_every, ox_poll_every=a.ox_poll_every, ox_edit_every=a.ox_edit_every,
                      ox_freebusy_every=a.ox_freebusy_every, dav_poll_every=a.dav_poll_every,
                      dav_put_every=a.dav_put_every)
    return SimConfig(a.profile, a.users, a.ramp, a.duration, parse_mix(a.mix), a.contacts, a.appointments,
                     a.thresholds, a.out, options, a.ox_coalesce, a.seed_cache, a.processes)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("bench.sim").setLevel(logging.INFO)
    try:
        cfg = parse_args(argv)
        result = run(cfg)
    except Exception:
        logging.exception("simulator failed")
        return 2
    print(result.table)
    print(f"outputs in {cfg.out}")
    if result.sim_errors:
        for error in result.sim_errors[:5]:
            print(error, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
