"""Simulated client types and the mix that assigns one type per simulated user.

Each client is a thread running its device's loop until the context's stop event (see base.py);
the behaviours live in eas_clients.py (iPhone, Android), ox_clients.py (Outlook/OXtender) and
dav_clients.py (CalDAV/CardDAV).
"""

from __future__ import annotations

from bench.sim.base import Context, Options, SimClient
from bench.sim.dav_clients import DavClient
from bench.sim.eas_clients import Android, IPhone
from bench.sim.ox_clients import Outlook
from bench.sim.seed import SimUser

CLIENT_TYPES: dict[str, type[SimClient]] = {"iphone": IPhone, "android": Android, "outlook": Outlook, "dav": DavClient}

__all__ = ["CLIENT_TYPES", "Context", "Options", "SimClient", "assign", "make_clients", "parse_mix"]


def parse_mix(text: str) -> dict[str, float]:
    """`iphone=40,android=20,outlook=30,dav=10` -> {type: percent}; unknown types are an error."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in CLIENT_TYPES:
            raise ValueError(f"unknown client type {name!r} (known: {', '.join(CLIENT_TYPES)})")
        mix[name] = float(value)
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("empty client mix")
    return mix


def assign(users: int, mix: dict[str, float]) -> list[str]:
    """A client type per user: counts by largest remainder, interleaved so every team gets a mix."""
    total = sum(mix.values())
    exact = {name: users * share / total for name, share in mix.items()}
    counts = {name: int(value) for name, value in exact.items()}
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[:users - sum(counts.values())]:
        counts[name] += 1
    out: list[str] = []
    while len(out) < users:
        for name in mix:
            if counts[name]:
                out.append(name)
                counts[name] -= 1
    return out


def make_clients(ctx: Context, users: list[SimUser], mix: dict[str, float]) -> list[SimClient]:
    return [CLIENT_TYPES[kind](ctx, user, index) for index, (user, kind) in enumerate(zip(users, assign(len(users), mix),
                                                                                          strict=True))]
