"""One configuration file; every limit is a named setting with a default.

The file is TOML with one table per section (`[server]`, `[store]`, `[limits]`, ...). Unknown keys are
refused so that a typo does not silently leave a default in force.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    http_endpoint: str = "tcp:8080:interface=127.0.0.1:backlog=1024"
    """A Twisted server endpoint string; TLS with e.g. `ssl:443:privateKey=key.pem:certKey=cert.pem:backlog=1024`.
    Keep a large `backlog` (and `net.core.somaxconn` to match): after a node restart thousands of phones
    reconnect at once, and the default of 50 drops connections (bench/README.md)."""
    udp_port: int = 44335
    """OXtender UDP push port (0 = any free port, for tests)."""
    udp_interface: str = ""
    """Address the UDP push listens on; empty = the same interface as `http_endpoint` (all interfaces
    when the endpoint names none)."""
    public_host: str = ""
    """Host name (and `:port` when not the scheme's default) that clients enter, printed by `serve`
    and used in autoconfig/profiles; empty = derived from `http_endpoint` (its interface, or this
    machine's name when it listens on all interfaces)."""
    public_scheme: str = ""
    """`https` or `http` as clients see it; empty = `https` for an `ssl:` endpoint, else `http`.
    Set `https` when a TLS proxy in front of a `tcp:` endpoint terminates TLS."""
    admin_endpoint: str = ""
    """Twisted endpoint of the admin listener serving Prometheus `/metrics` (and admin pages);
    empty = off. Keep it on a private interface, e.g. `tcp:9180:interface=127.0.0.1`."""
    processes: int = 0
    """Serving processes on this node: `"auto"` (written 0 too) = one per core this process may run on
    (`os.sched_getaffinity`), at most `processes_auto_max`, and 1 where several cannot serve (an
    http_endpoint other than `tcp:`) or `admin_endpoint` serves `/metrics` (the first process's counts
    only: docs/cluster.md): `serve` logs and prints how many and why. A number N > 1 needs a
    `tcp:` http_endpoint (else `serve` refuses to start): `serve` binds the HTTP port and starts N - 1
    more processes that accept on the same socket, each with its own store pool and parked requests;
    pushes cross between them as between nodes (PostgreSQL: LISTEN/NOTIFY; SQLite: relayed by the first
    process over each copy's channel; docs/cluster.md). On SQLite their writers also take turns across
    processes on a file lock beside the database (`<database>-writer.lock`). The first process alone
    keeps the UDP push port, the admin and console listeners, outbound mail and pruning, and restarts a
    process that exits; the others die with it. One Python process uses about one core (the GIL): more
    processes use more cores."""
    processes_auto_max: int = 8
    """Most serving processes `processes = "auto"` starts, however many cores there are: each process
    has its own store pool (PostgreSQL connections: budget them per process), parked requests and
    memory (tens of MiB), and the first one relays changes and checks passwords for all the others."""
    password_broker_timeout_seconds: float = 10.0
    """With `processes` > 1 the first process checks passwords for the others (one Argon2 check per
    distinct credential on the node, docs/cluster.md): a further process waits this long for its answer,
    then checks the password itself (logged once per outage)."""
    password_broker_max_in_flight: int = 256
    """Password questions one further process may have waiting on the first at once; beyond it (either
    side) the asking process checks itself."""
    password_broker_max_bytes: int = 4096
    """Largest password question (password plus stored hash, bytes) sent to the first process; a larger
    one is checked by the process that received it."""
    gc_young_objects: int = 20_000
    """New container objects between two runs of Python's youngest garbage collection (0: Python's 700).
    At 700 a window of 100 contacts ran ~40 collections and full ones of 50-70 ms (bench/README w)."""


@dataclass(frozen=True)
class StoreSettings:
    url: str = "sqlite:////var/lib/oxsync/oxsync.db"
    """SQLAlchemy URL of the database. The default is an absolute path for a packaged install (the
    directory is created 0700); `oxsync serve --demo` without a configuration uses `./var/oxsync.db`.
    PostgreSQL: `postgresql://user@host/dbname`."""
    thread_pool_size: int = 8
    """Threads running heavy store transactions (sync windows, listings, reports, writes); the engine's
    connection pool is sized to match (plus `light_threads`)."""
    light_threads: int = 2
    """Threads added to the store pool that only cheap units take (device state, Provision, ctag,
    deltas, login bookkeeping); a cheap unit also takes any free thread before every queued heavy one,
    so it never queues behind heavy ones (docs/store.md, "The store pool"). 0 = no added thread (cheap
    units still go first)."""
    tombstone_max_age_days: int = 30
    """Tombstones older than this are pruned; older sync tokens must resync."""
    prune_interval_seconds: int = 6 * 3600
    """How often the server prunes old tombstones in every tenant (0 = never; `oxsync prune` by hand)."""
    busy_timeout_ms: int = 10000
    """SQLite: how long a writer waits for the database lock."""
    sqlite_synchronous: str = "normal"
    """SQLite (WAL) durability: `normal` syncs the log at checkpoints only, so a commit survives the
    process being killed (kill -9, a crash) but the last commits may be lost if the machine loses
    power; `full` syncs the log at every commit (power-safe, each write costs an fsync); `extra` also
    syncs the directory. docs/store.md."""
    migrate_on_start: bool = False
    """`oxsync serve` brings an older database schema up to date itself (as `oxsync migrate` would)
    instead of refusing to start. Off by default: take a backup first (docs/install.md)."""


@dataclass(frozen=True)
class LimitSettings:
    max_request_body_bytes: int = 32 * 1024 * 1024
    """Largest HTTP request body of any dialect; larger ones get 413 (EAS has its own `[eas] max_request_bytes`)."""
    max_object_bytes: int = 2 * 1024 * 1024
    """Serialized size of one contact/appointment/task, photo included."""
    max_photo_bytes: int = 1024 * 1024
    """Largest contact photo (decoded); larger ones are refused as invalid input."""
    max_attachment_bytes: int = 16 * 1024 * 1024
    """Largest attachment of one object (OX attachments servlet, EAS/DAV inline data)."""
    max_xml_depth: int = 64
    """Deepest element nesting an XML request may have (OX, DAV, Autodiscover); deeper = 400."""
    max_xml_elements: int = 200_000
    """Most elements one XML request may have; more = 400."""
    max_wbxml_depth: int = 64
    """Deepest element nesting an ActiveSync WBXML request may have."""
    max_wbxml_elements: int = 200_000
    """Most elements one ActiveSync WBXML request may have."""
    max_wbxml_string_bytes: int = 16 * 1024 * 1024
    """Longest single string or opaque value inside WBXML."""
    max_participants: int = 1000
    """Most participants of one appointment or task."""
    max_distribution_list_members: int = 5000
    """Most members of one distribution list (contact group)."""
    max_result_count: int = 10_000
    """Most objects one listing, search or report returns."""
    recurrence_window_past_days: int = 366
    """Series are expanded at most this far into the past (free/busy, time-range queries)."""
    recurrence_window_future_days: int = 5 * 366
    """Series are expanded at most this far into the future."""
    max_recurrence_instances: int = 3000
    """Instances one series may have in an expanded window; a CalDAV expand or time-range beyond it
    answers 403 CALDAV:max-instances (the store's own expansions stop there)."""
    max_expanded_instances_per_request: int = 20_000
    """Recurrence instances one request may expand in total (filters, expand, free/busy, conflict
    checks); beyond it the protocol's limit error (oxsync/store/budget.py)."""
    max_request_work_seconds: float = 30.0
    """Longest a request's store work may run where it grows with the input (recurrence expansion,
    per-object filters, every output loop through oxsync.render): past it, the protocol's limit error
    and the store thread is free again. Generous: a slow legitimate request on a loaded node must pass."""
    max_multiget_hrefs: int = 5000
    """Most hrefs in one CalDAV/CardDAV multiget (more = 403 number-of-matches-within-limits)."""
    max_import_bytes: int = 256 * 1024 * 1024
    """Largest .vcf/.ics file `oxsync import` reads."""
    refused_body_drain_seconds: float = 5.0
    refused_body_drain_bytes: int = 1024 * 1024
    """After a 413, read and discard at most this long / this much so the client sees the answer."""
    header_read_timeout_seconds: float = 20.0
    """A request's line and headers must arrive within this long of the connection opening (or of the
    previous response, on a kept-alive connection): slow senders get 408 and are closed."""
    max_connections_per_address: int = 256
    """Open HTTP connections per client IP (an office NAT holds many devices); more get 503 and close."""
    max_request_line_bytes: int = 8192
    """Longest request line (method, URI, version); longer answers 414."""
    max_header_bytes: int = 65536
    """Largest header block of one request (all lines); larger, or a single longer line, answers 431."""
    invalid_text_policy: str = "replace"
    """What the store does with characters XML 1.0 cannot carry (C0 controls but TAB/LF/CR, U+FFFE/FFFF,
    lone surrogates) in any text it is given: `replace` them with U+FFFD, or `reject` the object as
    invalid input (docs/limits.md)."""
    min_year: int = 1601
    max_year: int = 4501
    """Supported range of every stored date (inclusive, in UTC and in the given zone): what every
    dialect renders (EAS/Outlook FILETIME starts in 1601; Outlook's "no date" is 4501-01-01) with room
    for time-zone shifts and `max_recurrence_instances` yearly occurrences below Python's year 9999.
    Dates outside are refused as invalid input (docs/limits.md)."""
    max_small_number: int = 2**31 - 1
    """Largest magnitude of a counted or measured model number (intervals, alarms, durations,
    percentages, colour labels...): what OX (Java int), EAS and .NET clients hold."""
    max_wide_number: int = 2**63 - 1
    """Largest magnitude of an id, size or millisecond stamp: a signed 64-bit database column."""


@dataclass(frozen=True)
class AuthSettings:
    failed_login_window_seconds: int = 300
    """Sliding window in which failed logins are counted per user and per address."""
    max_failures_per_user: int = 10
    max_failures_per_address: int = 50
    """Failures inside the window after which further attempts get 429 until it slides."""
    session_cookie_max_age_seconds: int = 3600
    """Lifetime of the OXtender `sessionid` cookie."""
    password_hash_time_cost: int = 2
    """Argon2id passes of new password hashes (see password_hash_memory_kib)."""
    password_hash_parallelism: int = 1
    """Argon2id lanes of new password hashes (see password_hash_memory_kib)."""
    password_hash_memory_kib: int = 19456
    """Argon2id cost of new password hashes: OWASP's password storage recommendation for argon2id
    (19 MiB, 2 passes, 1 lane: ~25 ms of one core here). A server checks a password for every new
    device and after every restart, so a storm of arrivals pays one check per user: argon2-cffi's
    default (64 MiB, 3 passes, 4 lanes; RFC 9106's low-memory choice) costs ~9x the CPU and 3x the
    memory per check. Existing hashes keep their own cost until the password changes (docs/cluster.md)."""
    verified_login_cache_seconds: float = 900.0
    """A successful login is remembered this long (salted digest, per protocol), so the slow password
    hash is not paid on every request; 0 verifies every request. Suspension, resumption, password,
    alias and protocol-right changes and deletion take effect at once all the same: they reach every
    node's cache through the change bus (docs/cluster.md)."""
    password_hash_threads: int = 0
    """Threads verifying passwords (Argon2, its memory cost each while it runs): their own pool, so first
    logins never occupy store threads nor the reactor; identical concurrent credentials share one check.
    0 = one per CPU core (a one-lane hash keeps one core busy; more threads than cores only add memory)."""
    account_poll_seconds: float = 1.0
    """SQLite only: how often the server looks for account changes made by another process (the
    `oxsync` command); 0 = never. PostgreSQL nodes and the CLI tell each other through NOTIFY instead."""
    max_verified_logins: int = 50_000
    """Verified logins remembered at most (oldest forgotten first)."""
    max_tracked_throttle_keys: int = 100_000
    """Logins and addresses the failure throttle remembers at most (oldest forgotten first)."""

    def hash_pool_size(self) -> int:
        """Threads of the password-hash pool: the setting, or one per CPU core when it is 0."""
        return self.password_hash_threads if self.password_hash_threads > 0 else max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class EasSettings:
    min_heartbeat_seconds: int = 60
    """Shortest Ping / hanging Sync interval accepted (Status 5 below)."""
    max_heartbeat_seconds: int = 3540
    """Longest Ping / hanging Sync interval accepted (Status 5 above, with this limit)."""
    max_window_size: int = 512
    """Most items one Sync window may carry, whatever the client asks."""
    default_window_size: int = 100
    """Items per Sync window when the client names none."""
    max_ping_folders: int = 300
    """Most folders one Ping may watch (Status 6 above)."""
    ping_wake_batch: int = 100
    """Most parked Pings answered in one reactor turn when a change wakes many: the rest follow in the
    next turns, so other connections are served in between (the write that woke them already was)."""
    policy_requires_password: bool = False
    """The Provision policy asks devices for a device password."""
    trusted_ca_file: str = "/etc/ssl/certs/ca-certificates.crt"
    """PEM bundle of the roots ValidateCert trusts for S/MIME certificates."""
    max_validate_certificates: int = 50
    """Most certificates one ValidateCert request may carry."""
    smtp_smarthost: str = ""
    """host:port of an SMTP relay for SendMail; empty = not configured."""
    smtp_timeout_seconds: float = 30.0
    """Time limit of one SMTP submission for SendMail."""
    max_request_bytes: int = 16 * 1024 * 1024
    """Largest ActiveSync request body (SendMail MIME included); larger ones get 413."""
    require_provisioning: bool = True
    """Devices must run Provision before other commands (449 / Status 142 / 144 until they do)."""
    device_touch_seconds: int = 60
    """A device record's last-seen time is rewritten at most this often."""
    expose_mail_folders: bool = True
    """Send empty Inbox/Drafts/Deleted/Sent/Outbox folders (iOS and Outlook want them)."""
    max_sync_collections: int = 100
    """Most collections in one Sync request."""
    max_client_ids: int = 500
    """ClientId -> ServerId pairs remembered per collection (replayed Adds)."""
    max_search_results: int = 100
    """Most results of one Search (GAL or mailbox)."""
    search_mail_body: bool = False
    """Search and Find of the mailbox also match the message text (IMAP TEXT), not only subject and
    sender: finds more, costs a scan of every message body on the IMAP server."""
    max_picture_bytes: int = 5 * 1024 * 1024
    """Largest contact picture sent to a device (larger ones are left out)."""
    export_cache_objects: int = 50_000
    """Objects kept in memory between the windows of initial syncs (0 = always reload from the store)."""


@dataclass(frozen=True)
class OxSettings:
    freebusy_fbtype_mapping: str = "correct"
    """`correct` (reserved->BUSY, temporary->BUSY-TENTATIVE, absent->BUSY-UNAVAILABLE) or `ox-compat`."""
    push_coalesce_seconds: float = 3.0
    """Changes of one tenant within this delay go out as one UDP packet per folder (docs/ox-push.md)."""
    push_require_recent_http_auth: bool = True
    """A UDP REGISTER counts only if that user authenticated over HTTP from the same address recently."""
    push_registration_ttl_seconds: int = 3600
    """A UDP registration expires unless renewed; also the window of 'recent HTTP authentication'."""
    push_max_packets_per_socket_per_minute: int = 120
    """UDP packets read per source (IP, port), and sent per registered client, per minute: one socket's
    junk cannot lock out the other clients behind the same address (docs/ox-push.md)."""
    push_max_packets_per_address_per_minute: int = 6000
    """Upper bound for a whole source IP (an office NAT holds many Outlooks), read per minute."""
    push_max_registrations_per_user: int = 8
    """UDP push clients kept per user; a new one is refused while all are live (never displaces one)."""
    version_string: str = "6.20.7-Rev2"
    """Version the OX servlets report to OXtender (webdav.version)."""
    session_secret: str = ""
    """HMAC key of the OX `sessionid` cookie; empty = generated next to a SQLite DB or derived from the
    store URL (see oxsync/ox/auth.py). Set the same value on every node of a cluster."""
    push_login_recheck_seconds: float = 1.0
    """An unverified REGISTER is checked against the shared login records once more after this delay
    (the HTTP login may have just happened on another node); 0 = no second look."""
    push_max_registrations: int = 100_000
    """UDP push registrations kept at most (docs/ox-push.md)."""
    freebusy_max_requests_per_address_per_minute: int = 300
    """/servlet/webdav.freebusy needs no credentials: requests per client IP and minute (then 429)."""
    freebusy_max_unknown_per_address_per_minute: int = 30
    """... and of those, lookups of addresses that do not exist (it reveals whether one does)."""
    freebusy_max_range_days: int = 750
    """Longest range /servlet/webdav.freebusy answers (longer requests are cut)."""
    freebusy_default_past_days: int = 31
    freebusy_default_future_days: int = 92
    """Range when the client sends none (Outlook sends none): today - past ... today + future."""


@dataclass(frozen=True)
class DavSettings:
    max_resource_bytes: int = 2 * 1024 * 1024
    """Largest single CalDAV/CardDAV resource a client may PUT."""
    sync_collection_default_limit: int = 10_000
    """Page size of sync-collection when the client sends no DAV:limit."""
    listing_page_rows: int = 2_000
    """Rows a listing (PROPFIND Depth 1, sync-collection, a report over a whole collection) reads from
    the store at a time, in id order: memory stays one page, whatever the folder's size."""
    max_principal_search_results: int = 500
    """Most results of one principal-property-search."""
    texts_ahead_max_pending: int = 20_000
    """Objects written by ActiveSync, the OX dialect or any write that stored no served text, waiting to
    have their owner's CalDAV/CardDAV text rendered ahead of the first read (docs/store.md); beyond it,
    further objects are left to be rendered by their first read. 0 = render nothing ahead."""
    texts_ahead_batch: int = 200
    """Objects whose served texts one background unit of the store pool renders (about 1 ms each)."""
    texts_ahead_delay_seconds: float = 0.2
    """How long written objects gather before a unit renders their texts (a burst of writes, one unit)."""


@dataclass(frozen=True)
class OutboundSettings:
    """The outbound mail queue and its workers (docs/outbound-mail.md)."""

    smtp_relay: str = ""
    """host:port of the SMTP submission relay for all server mail; empty = `[eas] smtp_smarthost`."""
    smtp_timeout_seconds: float = 30.0
    """Time limit of one SMTP submission."""
    lmtp_local: str = ""
    """host:port of an LMTP server (Dovecot) taking mail for the accounts here directly, as the `make serve`
    demo does so that demo users can mail each other; other recipients still go to the relay."""
    workers: int = 2
    """Threads submitting mail on each node (SQLite: always 1). Each holds one database connection."""
    poll_seconds: float = 5.0
    """How often a node looks for due mail it was not woken for (enqueued on another node, retries)."""
    lease_seconds: float = 300.0
    """A claimed mail whose node did not record the outcome within this is claimed again (resent)."""
    retry_base_seconds: float = 60.0
    """First retry delay of a mail that could not be submitted."""
    retry_max_seconds: float = 6 * 3600.0
    """Longest retry delay (delays double from the base)."""
    max_attempts: int = 12
    """Attempts before a mail is marked failed (delays double from the base up to the maximum)."""
    keep_sent_days: int = 30
    """Sent and dropped mails stay listed this long (and their idempotency keys remembered)."""
    max_recipients: int = 500
    """Most recipients of one outbound mail."""
    reminder_scan_seconds: float = 60.0
    """How often due reminders (task alarms, digests) are looked for; 0 = never."""
    reminder_max_late_hours: int = 24
    """A reminder found later than this after it fell due (server was down) is skipped, not mailed."""
    digest_scan_seconds: float = 600.0
    """How often the daily digests due are looked for (each user gets one a day, at their hour, UTC)."""
    digest_upcoming_days: int = 7
    """The daily task digest lists open tasks due within this many days as upcoming."""
    relay_files_sent_copy: bool = False
    """The submission relay files a copy in the sender's Sent folder itself (some do): oxsync then does not."""
    forward_as_attachment: bool = False
    """SmartForward carries the original as a message/rfc822 attachment instead of inline text and attachments."""
    reminder_from: str = ""
    """From address of reminder and digest mails; empty = the user's own address."""


@dataclass(frozen=True)
class MailSettings:
    """The IMAP server holding the mailboxes (docs/mail.md); empty `imap_host` = no mail (placeholders)."""

    imap_host: str = ""
    """Host of the IMAP server; empty = no mail."""
    imap_port: int = 143
    """Port of the IMAP server (993 with `implicit` TLS)."""
    imap_tls: str = "none"
    """`none` (loopback only), `starttls` or `implicit` (port 993)."""
    imap_ca_file: str = ""
    """PEM roots to verify the IMAP server's certificate (empty = the system's)."""
    master_user: str = ""
    master_password: str = ""
    """Dovecot master user oxsync logs in as (`address*master_user`): background work needs no user password."""
    master_separator: str = "*"
    """Separator between the address and the master user in the IMAP login (Dovecot's auth_master_user_separator)."""
    thread_pool_size: int = 8
    """Threads running IMAP commands (never the reactor, never the store pool)."""
    max_connections_per_account: int = 2
    max_connections: int = 64
    """Per node; Dovecot's mail_max_userip_connections must allow max_connections_per_account + 1 (watcher)."""
    idle_connection_seconds: float = 120.0
    """An IMAP connection unused this long is closed."""
    timeout_seconds: float = 30.0
    """Time limit of one IMAP command."""
    watch_interval_seconds: float = 1.0
    """How often the node's watcher polls STATUS of the watched mail folders (docs/mail.md: why a poll)."""
    watch_batch: int = 200
    """Folders the watcher asks about per round; more are spread over several rounds."""
    drafts_name: str = "Drafts"
    sent_name: str = "Sent"
    trash_name: str = "Trash"
    """Fallback names when the server announces no SPECIAL-USE flags."""
    max_fetch_bytes: int = 32 * 1024 * 1024
    """Largest message or attachment fetched for a device; larger ones are truncated or refused."""
    managesieve_port: int = 4190
    """ManageSieve port of the mail server (out-of-office and filter rules; same host and master user)."""


@dataclass(frozen=True)
class ConsoleSettings:
    endpoint: str = ""
    """Twisted endpoint of the web console and `/admin/api/` (e.g. `tcp:8090:interface=127.0.0.1`, or
    `ssl:...` for TLS); empty = no console (docs/console.md)."""
    session_secret: str = ""
    """HMAC key of console session cookies; empty = random per process (sessions end at restart). Set the
    same value on every node behind one load balancer."""
    session_max_age_seconds: int = 8 * 3600
    """A console session ends this long after sign-in."""
    page_size: int = 50
    """Accounts per page in the accounts table."""
    max_page_size: int = 500
    """Largest `per_page` the admin API answers."""
    max_form_bytes: int = 64 * 1024
    """Largest console form or API JSON body; larger ones get 413."""
    audit_page_size: int = 100
    """Audit log rows per console page."""


@dataclass(frozen=True)
class OnboardingSettings:
    """Autoconfig, Apple profiles and DNS records (docs/install.md)."""

    sign_profiles: bool = True
    """Sign `/profile` (.mobileconfig) with the server's certificate so iOS shows it as verified."""
    signing_certificate: str = ""
    signing_key: str = ""
    """PEM files to sign profiles with; empty = the `privateKey`/`certKey` of an `ssl:` http_endpoint
    (no TLS endpoint and none named: profiles go out unsigned)."""


@dataclass(frozen=True)
class LogSettings:
    """Where and how `oxsync serve` logs (docs/install.md). Secrets are never written, in any format."""

    level: str = "info"
    """Lowest level written: `debug`, `info`, `warning`, `error` or `critical`."""
    destination: str = "stderr"
    """`stderr` (systemd's journal picks it up) or the path of a file, created 0600 and reopened when
    logrotate moves it away (rotation-safe, no signal needed)."""
    format: str = "json"
    """`json` (one object per line, every field) or `text` (one readable line, fields as key=value)."""
    access_log: bool = True
    """One line per HTTP request (method, path, status, duration, login); false = none (metrics still count)."""


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    eas: EasSettings = field(default_factory=EasSettings)
    ox: OxSettings = field(default_factory=OxSettings)
    dav: DavSettings = field(default_factory=DavSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    log: LogSettings = field(default_factory=LogSettings)
    onboarding: OnboardingSettings = field(default_factory=OnboardingSettings)


class ConfigError(ValueError):
    """The configuration file names an unknown section or key, or a value of the wrong type."""


PROCESSES_AUTO = 0  # `[server] processes = "auto"`: one serving process per usable core (oxsync.processes)
SPELLED: dict[tuple[str, str], dict[str, int]] = {("server", "processes"): {"auto": PROCESSES_AUTO}}
"""Integer settings that also take a word in the file; the example configuration writes the word."""


def _coerce(section: str, key: str, current: Any, value: Any) -> Any:
    expected = type(current)
    words = SPELLED.get((section, key), {})
    if words and isinstance(value, str):
        if value.lower() not in words:
            raise ConfigError(f"[{section}] {key}: expected a number or {' or '.join(map(repr, words))}, got {value!r}")
        return words[value.lower()]
    if expected is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"[{section}] {key}: expected {expected.__name__}, got {value!r}")
    return value


def apply_overrides(settings: Settings, data: dict[str, dict[str, Any]]) -> Settings:
    """Return `settings` with the values of `data` (section -> key -> value) applied."""
    changes: dict[str, Any] = {}
    sections = {f.name: f for f in fields(Settings)}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(f"unknown configuration section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of settings, got {values!r}")
        current = getattr(settings, section)
        assert is_dataclass(current) and not isinstance(current, type)
        known = {f.name for f in fields(current)}
        updates = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"unknown setting [{section}] {key}")
            updates[key] = _coerce(section, key, getattr(current, key), value)
        changes[section] = replace(current, **updates)
    return replace(settings, **changes)


def check_settings(settings: Settings) -> None:
    """Values that have a fixed set of meanings or a hard ceiling."""
    if settings.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"[log] level: expected debug, info, warning, error or critical, got {settings.log.level!r}")
    if settings.log.format not in ("json", "text"):
        raise ConfigError(f"[log] format: expected 'json' or 'text', got {settings.log.format!r}")
    if settings.store.sqlite_synchronous.lower() not in ("normal", "full", "extra"):
        raise ConfigError(f"[store] sqlite_synchronous: expected 'normal', 'full' or 'extra', "
                          f"got {settings.store.sqlite_synchronous!r}")
    if settings.server.processes < 0 or settings.server.processes_auto_max < 1:
        raise ConfigError("[server] processes: expected 'auto' or a number >= 0, processes_auto_max: at least 1")
    limits = settings.limits
    if limits.invalid_text_policy not in ("replace", "reject"):
        raise ConfigError(f"[limits] invalid_text_policy: expected 'replace' or 'reject', got {limits.invalid_text_policy!r}")
    if not 1 <= limits.min_year <= limits.max_year <= 9000:
        raise ConfigError("[limits] min_year/max_year: need 1 <= min_year <= max_year <= 9000 "
                          "(Python dates end in 9999: room is kept for zones and recurrences)")
    if not 0 < limits.max_small_number <= limits.max_wide_number <= 2**63 - 1:
        raise ConfigError("[limits] max_small_number/max_wide_number: need 0 < small <= wide <= 2**63-1")


DEFAULT_CONFIG_PATH = Path("/etc/oxsync/oxsync.toml")
CONFIG_ENV = "OXSYNC_CONFIG"
DEMO_STORE_URL = "sqlite:///var/oxsync.db"
"""Where `serve --demo` keeps its data when no configuration names a store: `./var/` of the checkout."""

_TOML_POSITION = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def config_path(explicit: str | Path | None) -> Path | None:
    """`--config`, else `$OXSYNC_CONFIG`, else /etc/oxsync/oxsync.toml when it exists, else none (defaults)."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; a syntax error becomes one ConfigError line naming file, line and column."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match is None:
            raise ConfigError(f"{path}: {exc}") from None
        raise ConfigError(f"{path}:{match['line']}:{match['col']}: TOML syntax error: {match['msg']}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None


def load_settings(path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    settings = Settings()
    if path is not None:
        try:
            settings = apply_overrides(settings, read_toml(Path(path)))
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    if overrides:
        settings = apply_overrides(settings, overrides)
    check_settings(settings)
    return settings
