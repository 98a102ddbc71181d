"""A DAV:multistatus written while it is built, so that no whole-folder tree is held in memory.

Listings, syncs and reports append their responses to `Multistatus.root` (an lxml element with the
usual prefixes) and call `step()` after each one: every FLUSH_EVERY children are serialized to bytes
and dropped. A response already serialized (`dav/members.py` writes object members from a per-listing
template) is added with `write()`, in document order with the elements. The bytes go to a spooled file, in memory up to SPOOL_BYTES and on disk beyond, which
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
        self._written: list[str] = []
        self.responses = 0

    def step(self) -> None:
        """Call after appending to `root`: serializes and drops its children every `flush_every`."""
        if len(self.root) >= self.flush_every:
            self._flush()

    def write(self, response: str) -> None:
        """Add one serialized child of the multistatus (as `etree.tostring(child, encoding=str)` inside
        the root would give it: the root's prefixes, no declarations of its own)."""
        if len(self.root):
            self._flush()
        self._written.append(response)
        if len(self._written) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        """Serialize what is held: the written children first (they precede any element appended
        since: `write` flushes the elements before it holds a string), then the elements."""
        if self._written:
            if self._head is None:
                self._start()
            self._spool.write("".join(self._written).encode("utf-8"))
            self.responses += len(self._written)
            self._written.clear()
        count = len(self.root)
        if not count:
            return
        data = etree.tostring(self.root, xml_declaration=True, encoding="utf-8")
        if self._head is None:
            self._start(data)
        start_tag_end = len(self._head or b"")
        self._spool.write(data[start_tag_end:len(data) - len(self._tail)])
        self.responses += count
        del self.root[:]

    def _start(self, data: bytes | None = None) -> None:
        """Write the document's head (declaration, the root's start tag) and keep its end tag, from
        `data` (the root serialized with children) or from the root serialized with a placeholder."""
        if data is None:
            placeholder = etree.SubElement(self.root, qn(DAV, "response"))
            data = etree.tostring(self.root, xml_declaration=True, encoding="utf-8")
            self.root.remove(placeholder)
        start_tag_end = data.index(b">", data.index(b"?>") + 2) + 1
        close = data.rindex(b"</")
        self._head, self._tail = data[:start_tag_end], data[close:]
        self._spool.write(self._head)

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
