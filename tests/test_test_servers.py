"""The suite's throwaway servers start even when the port they picked was taken before they bound it
(another process may bind any port between our pick and the server's bind: CI flakes otherwise)."""

from __future__ import annotations

import socket

import pytest

from tests.fixtures import SKIP_PG
from tests.pgcluster import PgCluster


@pytest.mark.skipif(SKIP_PG, reason="OXSYNC_SKIP_PG=1")
def test_pg_cluster_picks_another_port_when_its_port_was_taken() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        cluster = PgCluster()
        cluster.port = taken  # as if another process had bound it after our pick
        cluster.start()
        try:
            assert cluster.port != taken
            with cluster._admin() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            cluster.stop()


def test_dovecot_picks_other_ports_when_one_was_taken(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from oxsync.mail.dovecot import Listeners
    from tests.dovecot import Dovecot
    from tests.fixtures import make_store

    store = make_store(f"sqlite:///{tmp_path}/oxsync.db")
    with socket.socket() as squatter:  # bound, not listening: were it listening, the readiness check (every
        squatter.bind(("127.0.0.1", 0))  # port accepts) could pass in the moment before Dovecot exits
        taken = squatter.getsockname()[1]
        dovecot = Dovecot(str(store.engine.url))
        imap = dovecot.listeners.imap
        dovecot.listeners = Listeners(imap, taken, dovecot.listeners.sieve)  # LMTP's port taken after our pick
        try:
            dovecot.start()
            assert taken not in (dovecot.listeners.lmtp, dovecot.listeners.imap, dovecot.listeners.sieve)
            assert dovecot.proc is not None and dovecot.proc.poll() is None
            with socket.create_connection(("127.0.0.1", dovecot.listeners.imap), timeout=10) as sock:
                assert sock.makefile("rb").readline().startswith(b"* OK")
        finally:
            dovecot.stop()
            store.dispose()


def test_dovecot_ports_are_distinct_even_when_the_kernel_hands_one_back(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Three pick-and-close calls in a row may get the same port back (seen under pytest-xdist:
    doveconf refused "duplicate listener"); the ports are held until all are chosen."""
    import tests.dovecot as dovecot_module

    monkeypatch.setattr(dovecot_module, "free_port", lambda: 40000, raising=False)  # the kernel's worst case
    dovecot = dovecot_module.Dovecot("sqlite:///unused.db")
    try:
        ports = (dovecot.listeners.imap, dovecot.listeners.lmtp, dovecot.listeners.sieve)
        assert len(set(ports)) == 3, ports
    finally:
        dovecot.stop()
