"""A throwaway IMAP-only Dovecot with plain passwords in a passwd-file: the IMAP server SOGo's ActiveSync
needs (`SOGoIMAPServer`) in bench_eas_peers.py.

SOGo logs in to IMAP with the user's own password, so the users here are SOGo's SQL users with the same
passwords. Runs like tests/dovecot.py's (oxsync.mail.runner): as the `dovecot` user under root, its own
directory and free port, stopped by its own pid.
"""

from __future__ import annotations

import grp
import tempfile
from pathlib import Path

from oxsync.mail.dovecot import Listeners
from oxsync.mail.runner import DovecotProcess, free_port

CONF = """\
instance_name = bench-sogo-{port}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 2000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
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
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service imap {{
  process_limit = 2048
}}
service anvil {{
  chroot =
}}
"""


class PasswdDovecot(DovecotProcess):
    def __init__(self, users: list[tuple[str, str]]) -> None:
        port = free_port()
        super().__init__(Path(tempfile.mkdtemp(prefix="bench-dovecot-")), "", Listeners(port, 0, 0), "")
        self.users = users

    def write_config(self) -> None:
        """A passwd-file IMAP server (SOGo logs in with the devices' credentials); the runner's
        `launch` checks the file, starts Dovecot and waits for the IMAP listener."""
        self.dir.chmod(0o755)
        (self.dir / "home").mkdir()
        passwd = self.dir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}:{self.uid}:{self.gid}::{self.dir}/home/{u}::\n"
                                  for u, p in self.users))
        passwd.chmod(0o600)
        self.conf.write_text(CONF.format(port=self.listeners.imap, base=self.dir, user=self.user, uid=self.uid,
                                         group=grp.getgrgid(self.gid).gr_name))

    def stop(self) -> None:
        import shutil

        try:
            super().stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
