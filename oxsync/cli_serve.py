"""`oxsync serve`: the settings the command line adds, the start-up, and what clients must enter.

What must hold: the printed instructions are what a phone, Outlook and a CalDAV client really enter
(the public name and scheme, TLS on when TLS is configured, the UDP port that is really bound); and a
server that cannot start every listener exits non-zero with one line (see oxsync/listeners.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxsync.advertised import imap_server, smtp_server
from oxsync.cli_common import EXIT_OK, CliError, Context, _sqlite_path, out, table
from oxsync.config import Settings, apply_overrides
from oxsync.endpoints import public_host, public_scheme, udp_bind_interface
from oxsync.store.api import Store

if TYPE_CHECKING:
    from oxsync.processes import Resolved


def serve_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """The [server] settings given on the command line win over the configuration file."""
    flags = {"http_endpoint": "listen", "udp_port": "udp_port", "udp_interface": "udp_interface",
             "public_host": "public_host", "public_scheme": "public_scheme", "admin_endpoint": "admin_listen"}
    server: dict[str, Any] = {k: getattr(args, v, None) for k, v in flags.items() if getattr(args, v, None) is not None}
    sections: dict[str, dict[str, Any]] = {"server": server} if server else {}
    if getattr(args, "console_listen", None):
        sections["console"] = {"endpoint": args.console_listen}
    return apply_overrides(settings, sections) if sections else settings


def connection_instructions(settings: Settings, logins: dict[str, str | None], http_port: int | None = None,
                            udp_port: int | None = None, serving: Resolved | None = None,
                            console_port: int | None = None) -> str:
    """How each client dialect connects, for every account (password None = not shown); `serving`: how
    many serving processes run and why (`oxsync.processes.Resolved`); `console_port`: the port the console
    listener bound (None: the one its endpoint names)."""
    srv = settings.server
    scheme, host = public_scheme(srv), public_host(srv, http_port)
    base = f"{scheme}://{host}"
    udp = udp_port if udp_port is not None else srv.udp_port
    lines = [
        f"oxsync listening on {srv.http_endpoint}; UDP push on {udp_bind_interface(srv) or '0.0.0.0'}:{udp}",
    ]
    if serving is not None:
        lines.append(f"serving processes: {serving.count} ({serving.why})")
    if srv.admin_endpoint:
        lines.append(f"metrics (Prometheus) on the admin listener {srv.admin_endpoint}: /metrics")
    lines += console_lines(settings, logins, console_port)
    lines += [
        "",
        f"Exchange ActiveSync ('Exchange' account on phones, tablets, Outlook): server {host}, "
        + ("SSL on" if scheme == "https" else "SSL off") + ", user name and password below, no domain",
        f"OXtender for Outlook: server URL {base}  (requests go to {base}/servlet/webdav.*)",
        f"  free/busy search path: {base}/servlet/webdav.freebusy?username=%NAME%&server=%SERVER%",
        f"  UDP push port: {udp}",
        f"CalDAV/CardDAV discovery: {base}/.well-known/caldav and {base}/.well-known/carddav",
        *mail_lines(settings),
        "User name in every client: the bare login (unique across tenants), login@domain, or an address of the account",
        "",
    ]
    rows = []
    for login, password in logins.items():
        rows.append((login, password or "(the account's password)",
                     f"{base}/dav/calendars/{login}/", f"{base}/dav/addressbooks/{login}/"))
    lines.append(table(("user name", "password", "CalDAV", "CardDAV"), rows))
    return "\n".join(lines)


def mail_lines(settings: Settings) -> list[str]:
    """IMAP/SMTP settings for Outlook's mail (OXtender manual: Outlook reaches the mailbox over IMAP/SMTP),
    from the same source as Thunderbird autoconfig and the Mac profile (oxsync.advertised)."""
    imap, smtp = imap_server(settings), smtp_server(settings)
    if imap is None:
        return ["Mail: no IMAP server configured ([mail] imap_host): phones see empty mail folders"]
    security = {"SSL": "SSL/TLS", "STARTTLS": "STARTTLS"}.get(imap.socket_type, "no encryption (loopback only)")
    return [f"Mail in Outlook/Thunderbird (IMAP): server {imap.host}, port {imap.port}, {security}, "
            "user name = the account's e-mail address, the account's password (phones get mail over ActiveSync)",
            "  outgoing (SMTP): " + (f"server {smtp.host}:{smtp.port}" if smtp else
                                     "none configured ([outbound] smtp_relay): the demo delivers no outgoing mail")]


def console_lines(settings: Settings, logins: dict[str, str | None], bound: int | None = None) -> list[str]:
    """The web console's URL, and who signs in there (the demo admin with its password); `bound`: the port
    its listener bound, which differs from the endpoint's for `tcp:0`."""
    endpoint = settings.console.endpoint
    if not endpoint:
        return []
    from oxsync.endpoints import endpoint_interface

    interface = endpoint_interface(endpoint) or "127.0.0.1"
    port = str(bound) if bound else endpoint.split(":")[1] if ":" in endpoint else ""
    scheme = "https" if endpoint.startswith("ssl:") else "http"
    host = f"[{interface}]" if ":" in interface else interface
    lines = [f"web console and admin API: {scheme}://{host}:{port}/  (admin API: /admin/api/, OpenAPI: "
             f"/admin/api/openapi.json)"]
    from oxsync.demo import DEMO_ADMIN

    if logins.get(DEMO_ADMIN):
        lines.append(f"  console admin (demo tenant and platform): {DEMO_ADMIN} / {logins[DEMO_ADMIN]}")
    return lines


def _demo_passwords_path(settings: Settings) -> Path:
    db = _sqlite_path(settings.store.url)
    return (db.parent if db is not None else Path("var")) / "demo-passwords.txt"


def check_schema(store: Store, *, migrate: bool) -> None:
    """Refuse to serve a database whose schema is not the one this code was written for."""
    from oxsync.store.migrate import schema_state

    try:
        state, at, head = schema_state(store.engine)
    except Exception as exc:  # the database cannot be reached at all
        raise CliError(f"cannot read the database ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if state == "empty":
        raise CliError("the database has no oxsync schema: run `oxsync init` first")
    if state == "unknown":
        raise CliError(f"the database schema is at {at}, which this oxsync (schema {head}) does not know: "
                       "a newer oxsync has migrated it")
    if state == "behind" and not migrate:
        raise CliError(f"the database schema is at {at}, this oxsync needs {head}: run `oxsync migrate` "
                       "(after a backup), or serve with --migrate")
    if state == "behind":
        store.create_schema()
        out(f"schema migrated from {at} to {head}")


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    from oxsync import processes

    copy = processes.is_copy()  # a further serving process: the first one set up the demo, told the operator
    if copy:
        processes.die_with_parent()
    ctx.settings = serve_settings(ctx.settings, args)
    store = ctx.open_store(create=args.demo and not copy)
    logins: dict[str, str | None] = {"<login>": None}
    demo_mail: Any = None
    if copy:
        pass  # serves with the first process's settings (the demo's mail server included)
    elif args.demo:
        from oxsync.demo import ensure_demo

        store.create_schema()
        logins = dict(ensure_demo(store, _demo_passwords_path(ctx.settings)))
        if not ctx.settings.mail.imap_host:
            demo_mail = _start_demo_mail(ctx, store)
    else:
        check_schema(store, migrate=args.migrate or ctx.settings.store.migrate_on_start)
    try:
        from oxsync.dialects import install_all
        from oxsync.server import ServerStartError, run_server
    except ImportError as exc:
        raise CliError(f"the server is not available: {exc}") from exc

    services: list[Any] = []

    def setup(service: Any) -> None:
        services.append(service)
        install_all(service)

    def on_ready(port: int) -> None:
        push = getattr(services[0], "ox_push", None) if services else None
        udp = push.bound_port if push is not None and push.port is not None else None
        serving = getattr(services[0], "serving_processes", None) if services else None
        console = services[0].listener_states().get("console", {}).get("port") if services else None
        out(connection_instructions(ctx.settings, logins, port, udp, serving, console))
        sys.stdout.flush()

    try:
        run_server(ctx.settings, store, on_ready=on_ready, setup=setup)
    except ServerStartError as exc:
        raise CliError(f"cannot start: {exc}") from exc
    finally:
        if demo_mail is not None:
            demo_mail.stop()
    return EXIT_OK


def _start_demo_mail(ctx: Context, store: Store) -> Any:
    """The demo Dovecot (oxsync/mail/demo.py) with the demo users' mailboxes; [mail] points at it."""
    from oxsync.demo import DEMO_DOMAIN
    from oxsync.mail.demo import start_demo_dovecot
    from oxsync.store import accounts

    tenant = store.tenant(DEMO_DOMAIN)
    with store.transaction(tenant.id) as tx:
        addresses = [u.email.lower() for u in accounts.list_users(tx)]
    proc = start_demo_dovecot(_demo_passwords_path(ctx.settings).parent, ctx.settings.store.url, addresses)
    if proc is not None:
        # ManageSieve for out-of-office and rules; mail between demo users straight into their mailboxes
        lmtp = ctx.settings.outbound.lmtp_local or f"{proc.listeners.address}:{proc.listeners.lmtp}"
        ctx.settings = apply_overrides(ctx.settings, {
            "mail": {**proc.mail_settings(), "managesieve_port": proc.listeners.sieve},
            "outbound": {"lmtp_local": lmtp}})
    return proc


def cmd_dns(ctx: Context, args: argparse.Namespace) -> int:
    """The records to publish for a tenant's domain, in zone-file syntax."""
    from oxsync.onboarding.dns import dns_records

    ctx.settings = serve_settings(ctx.settings, args)
    domain = ctx.tenant.domain
    out(f"; DNS records for {domain}: clients find oxsync from an address @{domain}")
    out(f"; the TLS certificate must also name autodiscover.{domain} and autoconfig.{domain}")
    for record in dns_records(ctx.settings, domain):
        out(record)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the server")
    p.add_argument("--demo", action="store_true", help="create a demo tenant with users and data if missing")
    p.add_argument("--listen", metavar="ENDPOINT",
                   help="[server] http_endpoint: a Twisted endpoint, e.g. tcp:8080:interface=0.0.0.0 or "
                        "ssl:443:privateKey=key.pem:certKey=cert.pem")
    p.add_argument("--udp-port", type=int, metavar="N", help="[server] udp_port: OXtender UDP push port")
    p.add_argument("--udp-interface", metavar="ADDR",
                   help="[server] udp_interface (default: where HTTP listens)")
    p.add_argument("--public-host", metavar="NAME[:PORT]",
                   help="[server] public_host: the name clients enter (default: derived from --listen)")
    p.add_argument("--public-scheme", choices=("http", "https"),
                   help="[server] public_scheme (default: https for ssl: endpoints)")
    p.add_argument("--admin-listen", metavar="ENDPOINT",
                   help="[server] admin_endpoint: serve /metrics there, e.g. tcp:9180:interface=127.0.0.1")
    p.add_argument("--migrate", action="store_true",
                   help="bring an older database schema up to date first ([store] migrate_on_start)")
    p.add_argument("--console-listen", metavar="ENDPOINT",
                   help="[console] endpoint: the web console and admin API, e.g. tcp:8090:interface=127.0.0.1")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("dns", help="the SRV/TXT/CNAME records to publish for --tenant DOMAIN (RFC 6764, Autodiscover, autoconfig)")
    p.add_argument("--listen", metavar="ENDPOINT", help="[server] http_endpoint")
    p.add_argument("--public-host", metavar="NAME[:PORT]", help="[server] public_host")
    p.add_argument("--public-scheme", choices=("http", "https"), help="[server] public_scheme")
    p.set_defaults(handler=cmd_dns)
