"""`GET /metrics` on the admin listener: the Prometheus text exposition of `oxsync.metrics.REGISTRY`.

The admin listener is separate from the client-facing one (`[server] admin_endpoint`, off unless set):
metrics tell who is busy, so they are not served where phones connect.
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from oxsync import metrics


class MetricsResource(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", metrics.CONTENT_TYPE.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        return metrics.scrape()


class AdminRoot(Resource):
    """`/` of the admin listener; `/metrics` always, other admin pages register beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.putChild(b"metrics", MetricsResource())

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self if path == b"" else super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"oxsync admin: /metrics\n"
