"""Out-of-office set from a phone or Outlook (EAS Settings Oof) becomes the Sieve vacation rule in the
mail server, and reading it back shows what the mail server applies (oxsync/mail/sieve.py).

The Oof is stored in the user's settings by the Settings command (as before); when a mail server is
configured, the user's whole script (filter rules + vacation) is then installed over ManageSieve on
the mail pool (never the reactor). A Get reads the active script back: if someone replaced it, the
phone sees the out-of-office as off. A failed install answers Status 4 (server unavailable) for Oof.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.mail import sieve

log = logging.getLogger("oxsync.eas.oof")
S = "Settings"
APPLIES = ("AppliesToInternal", "AppliesToExternalKnown", "AppliesToExternalUnknown")


def _oof_element(response: EasResponse) -> Element | None:
    return response.body.find(f"{S}:Oof") if isinstance(response.body, Element) else None


def _get(oof: dict[str, Any]) -> Any:
    get = E(f"{S}:Get", E(f"{S}:OofState", oof.get("state", "0")))
    if oof.get("state") == "2":
        get.append(E(f"{S}:StartTime", oof.get("start", "")))
        get.append(E(f"{S}:EndTime", oof.get("end", "")))
    for audience in APPLIES:
        message = oof.get("messages", {}).get(audience)
        if message is not None:
            get.append(E(f"{S}:OofMessage", E(f"{S}:{audience}"), E(f"{S}:Enabled", message["enabled"]),
                         E(f"{S}:ReplyMessage", message["reply"]), E(f"{S}:BodyType", message["body_type"])))
    return get


def with_sieve(eas: Eas, req: EasRequest, response: EasResponse, setting: bool) -> Deferred[EasResponse] | EasResponse:
    element = _oof_element(response)
    if element is None or element.findtext(f"{S}:Status") != "1" or eas.mail is None:
        return response
    mail = eas.mail
    account = req.principal.email

    def failed(failure: Any) -> EasResponse:
        log.error("out-of-office: mail server not reached: %s", failure.getErrorMessage(),
                  extra={"event": "eas.oof_sieve_failed", "login": req.principal.login})
        element.children = [E(f"{S}:Status", "4")]
        return response

    if setting:
        def install(script: str) -> Deferred[None]:
            return deferToThreadPool(eas.reactor, mail.pool.threads, sieve.install, mail.settings, account, script)

        installed = eas.read(req, sieve.script_for).addCallback(install)
        return installed.addCallback(lambda _: response).addErrback(failed)

    def show(found: tuple[list[Any], dict[str, Any]]) -> EasResponse:
        element.children = [c for c in element.children if c.tag != f"{S}:Get"] + [_get(found[1] or {"state": "0"})]
        return response

    found = deferToThreadPool(eas.reactor, mail.pool.threads, sieve.active_definitions, mail.settings, account)
    return found.addCallbacks(show, failed)
