"""A DAV:multistatus written while it is built, so that no whole-folder tree is held in memory.

Listings, syncs and reports append their responses to `Multistatus.root` (an lxml element with the
usual prefixes) and call `step()` after each one: every FLUSH_EVERY children are serialized to bytes
and dropped. The bytes go to a spooled file, in memory up to SPOOL_BYTES and on disk beyond, which
the HTTP side sends in chunks (`oxsync.dav.resource`). The status stays open until the handler
returns, so an error met late (a work limit, a store error) still gives the protocol's own answer:
the spool is discarded, nothing half-written has left the server.
"""

from __future__ import annotations

import tempfile
from typing import IO

from lxml import etree

from oxsync.dav.xml import DAV, new_root, qn

FLUSH_EVERY = 200
"""Responses serialized at a time: the lxml tree never holds more than this many."""
SPOOL_BYTES = 1 << 20
"""Multistatus bodies up to this size stay in memory; larger ones are spooled to a temporary file."""


class Multistatus:
    def __init__(self, flush_every: int | None = None, spool_bytes: int | None = None) -> None:
        self.root = new_root(qn(DAV, "multistatus"))
        self.flush_every = flush_every or FLUSH_EVERY
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by the sender
            max_size=spool_bytes or SPOOL_BYTES)
        self._head: bytes | None = None
        self._tail = b""
        self.responses = 0

    def step(self) -> None:
        """Call after appending to `root`: serializes and drops its children every `flush_every`."""
        if len(self.root) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        count = len(self.root)
        if not count:
            return
        data = etree.tostring(self.root, xml_declaration=True, encoding="utf-8")
        start_tag_end = data.index(b">", data.index(b"?>") + 2) + 1
        close = data.rindex(b"</")
        if self._head is None:
            self._head, self._tail = data[:start_tag_end], data[close:]
            self._spool.write(self._head)
        self._spool.write(data[start_tag_end:close])
        self.responses += count
        del self.root[:]

    def finish(self) -> tuple[bytes, IO[bytes] | None]:
        """(body, None) when the whole document is small, else (b"", the spooled file at offset 0)."""
        self._flush()
        if self._head is None:  # nothing was appended: an empty multistatus
            self._spool.close()
            return etree.tostring(self.root, xml_declaration=True, encoding="utf-8"), None
        self._spool.write(self._tail)
        rolled = bool(getattr(self._spool, "_rolled", True))
        self._spool.seek(0)
        if not rolled:
            body = self._spool.read()
            self._spool.close()
            return body, None
        return b"", self._spool

    def discard(self) -> None:
        self._spool.close()
