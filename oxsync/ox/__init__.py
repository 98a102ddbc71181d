"""The Open-Xchange WebDAV/XML dialect (OXtender for Outlook, KDE's OX resource), free/busy and UDP push.

`install(service)` registers `/servlet/webdav.*`, starts the UDP push listener as a child service of
the OxsyncService (so it stops with it) and subscribes it to the change bus.
"""

from __future__ import annotations

from twisted.web.resource import Resource

from oxsync.ox.attachments import AttachmentServlet
from oxsync.ox.auth import OxAuth, SessionCookies, load_secret
from oxsync.ox.freebusy import FreeBusyServlet
from oxsync.ox.servlet import OxContext, VersionServlet, XmlServlet
from oxsync.push.udp import SharedLogins, UdpPush
from oxsync.web.context import DialectHost

XML_SERVLETS = ("folders", "contacts", "calendar", "tasks", "groupuser")


class ServletRoot(Resource):
    """`/servlet`: children `webdav.<name>`."""


def install(service: DialectHost) -> None:
    ctx = service.site.context
    settings = ctx.settings
    logins = SharedLogins(settings.ox.push_registration_ttl_seconds, settings.ox.push_max_registrations * 4,
                          ctx.async_store)
    cookies = SessionCookies(load_secret(settings), settings.auth.session_cookie_max_age_seconds)
    auth = OxAuth(ctx.authenticator, cookies, on_login=logins.record)
    ox = OxContext(settings, ctx.async_store, auth)
    root = ServletRoot()
    for name in XML_SERVLETS:
        root.putChild(f"webdav.{name}".encode(), XmlServlet(ox, name))
    root.putChild(b"webdav.attachments", AttachmentServlet(ox))
    root.putChild(b"webdav.version", VersionServlet(settings.ox.version_string))
    root.putChild(b"webdav.freebusy", FreeBusyServlet(ctx.async_store, settings.ox))
    service.site.root.register("servlet", root)
    if not getattr(service, "primary", True):  # another serving process of this node holds the UDP port
        return
    push = UdpPush(settings, ctx.async_store, ctx.bus, ctx.async_store.reactor, logins)
    push.setServiceParent(service)
    service.ox_push = push  # type: ignore[attr-defined]

