"""Dovecot configuration that makes Dovecot authenticate against oxsync's own accounts.

One password, one set of rights: Dovecot's SQL passdb reads our `users`/`addresses` tables (argon2id
hashes verified by Dovecot itself under the `{ARGON2ID}` scheme), so suspension, deletion and the
`imap` protocol right apply to IMAP at once, on every node. oxsync reaches mailboxes as a Dovecot
master user (`address*master`), which bypasses the `imap` right (a phone-only account still has its
mail on the phone) but not suspension or deletion (`pass = yes` re-runs the account lookup).

Used by `make serve`'s demo Dovecot and the test harness (tests/dovecot.py); docs/mail.md shows the
production form of the same queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

PASSWORD_QUERY = (
    "SELECT lower(u.email) AS user, '{ARGON2ID}' || u.password_hash AS password "
    "FROM addresses a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.user_id "
    "WHERE a.address = '%Lu' AND u.active "
    "AND ((',' || u.protocols || ',') LIKE '%%,imap,%%' OR '%{master_user}' <> '')"
)
"""`%Lu` is the lower-cased login (any address of the account); `%%` is a literal `%` for Dovecot."""

USER_QUERY = (
    "SELECT '{mail_root}/' || u.tenant_id || '/' || u.id AS home "
    "FROM addresses a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.user_id "
    "WHERE a.address = '%Lu'"
)
"""Mailboxes live under ids, so renaming a login or an address never moves a mailbox; LMTP accepts
mail for every address of an account (aliases included) and refuses unknown ones."""


class UnsupportedStore(ValueError):
    pass


def sql_driver(store_url: str) -> tuple[str, str]:
    """(Dovecot SQL driver, its `connect` string) for a store URL (sqlite or postgresql)."""
    parts = urlsplit(store_url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        path = store_url.split(":///", 1)[1] if ":///" in store_url else ""
        if not path or path == ":memory:":
            raise UnsupportedStore("Dovecot needs a SQLite database file, not an in-memory one")
        return "sqlite", str(Path(path).resolve())
    if scheme in ("postgresql", "postgres"):
        fields = {"host": parts.hostname or "localhost", "port": str(parts.port or 5432),
                  "dbname": parts.path.lstrip("/") or "postgres", "user": unquote(parts.username or "")}
        if parts.password:
            fields["password"] = unquote(parts.password)
        return "pgsql", " ".join(f"{k}={v}" for k, v in fields.items() if v)
    raise UnsupportedStore(f"no Dovecot SQL driver for {scheme!r} store URLs")


def sql_conf(store_url: str, mail_root: str) -> str:
    """Content of the `dovecot-sql.conf.ext` file both SQL passdb and userdb read (mode 0600)."""
    driver, connect = sql_driver(store_url)
    return (f"driver = {driver}\nconnect = {connect}\n"
            f"password_query = {PASSWORD_QUERY}\n"
            f"user_query = {USER_QUERY.replace('{mail_root}', mail_root)}\n")


@dataclass(frozen=True)
class Listeners:
    imap: int
    lmtp: int
    sieve: int
    address: str = "127.0.0.1"


def dovecot_conf(base: Path, listeners: Listeners, *, user: str, group: str, uid: int, gid: int,
                 mail_root: str, master_file: Path, sql_file: Path, postmaster: str = "postmaster@localhost",
                 extra: str = "") -> str:
    """A self-contained unprivileged Dovecot (tests and the demo): everything under `base`, run as `user`."""
    return f"""\
instance_name = oxsync-{listeners.imap}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap lmtp sieve
listen = {listeners.address}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 50
imap_max_line_length = 2M
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {master_file}
  master = yes
  pass = yes
}}
passdb {{
  driver = sql
  args = {sql_file}
}}
userdb {{
  driver = sql
  args = {sql_file}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {listeners.address}
    port = {listeners.imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {listeners.address}
    port = {listeners.lmtp}
  }}
}}
service managesieve-login {{
  chroot =
  inet_listener sieve {{
    address = {listeners.address}
    port = {listeners.sieve}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = {postmaster}
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
{extra}"""
