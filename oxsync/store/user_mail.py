"""Mail a user sends through the store, and what it brings back: From checks, the outbound queue,
iMIP replies to meetings they organise, and collected addresses."""

from __future__ import annotations

from oxsync.store.collect import collect
from oxsync.store.itip import apply_reply
from oxsync.store.sending import allowed_senders, queue_user_mail
from oxsync.store.tx import Tx


class UserMail:
    """Mail on behalf of `user_id` inside `tx`, queued in the same transaction as the change that caused it."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id

    def allowed_senders(self) -> list[str]:
        """Primary address first, then the send-as addresses an administrator declared."""
        return allowed_senders(self.tx, self.user_id)

    def send_mail(self, key: str, from_address: str, recipients: list[str], message: bytes,
                  subject: str = "", names: dict[str, str] | None = None) -> bool:
        """Queue a message the user sends (From checked); False if `key` was queued before.
        `names`: display names by lower-cased address (for collected addresses)."""
        return queue_user_mail(self.tx, self.user_id, key=key, from_address=from_address,
                               recipients=recipients, message=message, subject=subject, names=names)

    def apply_itip_reply(self, uid: str, attendee: str, partstat: str, comment: str = "", instance: str = "") -> str:
        """An outside attendee answered a meeting this user organises (iMIP REPLY): see store/itip.py."""
        return apply_reply(self.tx, self.user_id, uid, attendee, partstat, comment, instance)

    def collect_addresses(self, people: list[tuple[str, str]]) -> list[str]:
        """(name, address) pairs into "Collected addresses" when the account collects; returns those added."""
        return collect(self.tx, self.user_id, people)
