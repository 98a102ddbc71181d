"""The user's server-side mail rules and out-of-office, kept as one Sieve script in Dovecot (ManageSieve).

One script, `oxsync`, is the user's active script: first the filter rules (the OXtender mail filter
plug-in: conditions on From/To/Subject/size, actions move/mark read/forward/discard/stop), generated
with sievelib's FiltersSet, then the out-of-office reply (EAS Settings Oof) as a `vacation` action,
internal senders (the tenant's domain) and external ones answered with their own text, limited to
the Oof period when one is given (`currentdate`, RFC 5260). The definitions travel in the script as
`# oxsync-...:` JSON comment lines, so reading the active script back tells what Dovecot applies (a
script replaced by someone else reads as no rules and no out-of-office).

Blocking (sievelib's ManageSieve client): call from a mail pool thread, never from the reactor.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sievelib.factory import FiltersSet
from sievelib.managesieve import Client

from oxsync.config import MailSettings

SCRIPT = "oxsync"
FIELDS = {"from": "From", "to": "To", "cc": "Cc", "subject": "Subject"}
OPERATORS = {"contains": ":contains", "is": ":is", "matches": ":matches"}
SIZE_OPERATORS = {"over": ":over", "under": ":under"}
ACTIONS = ("move", "mark_read", "forward", "discard", "stop")
MAX_RULES = 200
MAX_TEXT = 8000


class RuleError(ValueError):
    """A rule that cannot be expressed (unknown field, operator or action, missing value)."""


@dataclass
class Vacation:
    internal: str = ""
    external: str = ""
    subject: str = "Out of office"
    start: datetime | None = None
    end: datetime | None = None
    internal_domains: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    days: int = 1


def _plain(text: str, body_type: str) -> str:
    if body_type.lower() != "html":
        return text
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"<[^>]+>", "", re.sub(r"(?i)<br\s*/?>|</p>", "\n", text))).strip()


def vacation_from_oof(oof: dict[str, Any], internal_domains: list[str], addresses: list[str]) -> Vacation | None:
    """The vacation rule an EAS Oof (as stored by Settings) asks for; None when it is off."""
    state = str(oof.get("state", "0"))
    if state not in ("1", "2"):
        return None
    messages = oof.get("messages", {})

    def text(audience: str) -> str:
        message = messages.get(audience) or {}
        return _plain(message.get("reply", ""), message.get("body_type", "Text")) if message.get("enabled") == "1" else ""

    internal = text("AppliesToInternal")
    external = text("AppliesToExternalUnknown") or text("AppliesToExternalKnown")
    if not internal and not external:
        return None
    start = end = None
    if state == "2":
        start = _parse_time(oof.get("start", ""))
        end = _parse_time(oof.get("end", ""))
    return Vacation(internal=internal, external=external, start=start, end=end,
                    internal_domains=internal_domains if internal else [], addresses=addresses)


def _parse_time(value: str) -> datetime | None:
    from datetime import UTC

    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_list(items: list[str]) -> str:
    return "[" + ", ".join(_quote(i) for i in items) + "]"


def check_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise one rule: {name, match: anyof|allof, conditions: [...], actions: [...]}."""
    name = str(rule.get("name", "")).strip()[:100]
    if not name:
        raise RuleError("a rule needs a name")
    conditions = []
    for cond in rule.get("conditions", []):
        fld, op, value = str(cond.get("field", "")).lower(), str(cond.get("op", "contains")).lower(), cond.get("value")
        if fld == "size":
            if op not in SIZE_OPERATORS or not re.fullmatch(r"\d+[KMG]?", str(value or "")):
                raise RuleError(f"rule {name}: size needs over/under and a size like 500K")
        elif fld not in FIELDS or op not in OPERATORS or not str(value or ""):
            raise RuleError(f"rule {name}: condition {cond!r} is not from/to/cc/subject contains/is/matches VALUE")
        conditions.append({"field": fld, "op": op, "value": str(value)[:1000]})
    actions = []
    for action in rule.get("actions", []):
        kind, value = str(action.get("type", "")), str(action.get("value", "") or "")
        if kind not in ACTIONS or (kind in ("move", "forward") and not value):
            raise RuleError(f"rule {name}: action {action!r} is not one of {', '.join(ACTIONS)} (move/forward need a value)")
        if kind == "forward" and "@" not in value:
            raise RuleError(f"rule {name}: forward needs an address")
        actions.append({"type": kind, "value": value[:1000]})
    if not actions:
        raise RuleError(f"rule {name}: no action")
    match = "allof" if rule.get("match") == "allof" else "anyof"
    return {"name": name, "match": match, "conditions": conditions, "actions": actions}


def _rules_sieve(rules: list[dict[str, Any]]) -> tuple[list[str], str]:
    """(required extensions, the rules' Sieve text without its require line)."""
    if not rules:
        return [], ""
    fs = FiltersSet(SCRIPT)
    for rule in rules:
        conditions: list[tuple[Any, ...]] = []
        for cond in rule["conditions"]:
            if cond["field"] == "size":
                conditions.append(("size", SIZE_OPERATORS[cond["op"]], cond["value"]))
            else:
                conditions.append((FIELDS[cond["field"]], OPERATORS[cond["op"]], cond["value"]))
        actions: list[tuple[Any, ...]] = []
        # flags first: fileinto stores the message with the flags set *before* it (RFC 5232)
        ordered = sorted(rule["actions"], key=lambda a: (a["type"] != "mark_read", a["type"] == "stop"))
        for action in ordered:
            kind, value = action["type"], action["value"]
            actions.append({"move": ("fileinto", value), "mark_read": ("addflag", "\\Seen"),
                            "forward": ("redirect", value), "discard": ("discard",), "stop": ("stop",)}[kind])
        fs.addfilter(rule["name"], conditions or [("true",)], actions, matchtype=rule["match"])
    out = io.StringIO()
    fs.tosieve(out)
    text = out.getvalue()
    first, _, rest = text.partition("\n")
    required = re.findall(r'"([^"]+)"', first) if first.startswith("require") else []
    return required, rest if first.startswith("require") else text


def _vacation_sieve(v: Vacation) -> tuple[list[str], str]:
    required = ["vacation"]
    common = f":days {max(1, v.days)} :subject {_quote(v.subject[:200])}"
    if v.addresses:
        common += f" :addresses {_string_list(v.addresses)}"
    body = []
    if v.internal and v.internal_domains:
        body.append(f"if address :domain :is \"from\" {_string_list(v.internal_domains)} {{\n"
                    f"    vacation {common} {_quote(v.internal[:MAX_TEXT])};\n}}")
        if v.external:
            body.append(f"else {{\n    vacation {common} {_quote(v.external[:MAX_TEXT])};\n}}")
    elif v.external or v.internal:
        body.append(f"vacation {common} {_quote((v.external or v.internal)[:MAX_TEXT])};")
    if not body:
        return [], ""
    text = "\n".join(body)
    if v.start is not None or v.end is not None:
        required += ["date", "relational"]
        tests = []
        if v.start is not None:
            tests.append(f'currentdate :value "ge" "iso8601" {_quote(v.start.strftime("%Y-%m-%dT%H:%M:%SZ"))}')
        if v.end is not None:
            tests.append(f'currentdate :value "lt" "iso8601" {_quote(v.end.strftime("%Y-%m-%dT%H:%M:%SZ"))}')
        indented = "\n".join("    " + line for line in text.splitlines())
        text = f"if allof ({', '.join(tests)}) {{\n{indented}\n}}"
    return required, text


def render(rules: list[dict[str, Any]], oof: dict[str, Any] | None, vacation: Vacation | None) -> str:
    """The whole script: definitions as comments, rules, then the out-of-office reply."""
    need_rules, rules_text = _rules_sieve(rules)
    need_vacation, vacation_text = _vacation_sieve(vacation) if vacation is not None else ([], "")
    required = list(dict.fromkeys(need_rules + need_vacation))
    lines = [f"require {_string_list(required)};" if required else "",
             "# generated by oxsync: edit with `oxsync user rules` or the out-of-office of your phone/Outlook",
             "# oxsync-rules: " + json.dumps(rules, separators=(",", ":")),
             "# oxsync-oof: " + json.dumps(oof or {}, separators=(",", ":")),
             rules_text.strip(), "# out-of-office", vacation_text]
    return "\n".join(line for line in lines if line) + "\n"


def definitions(script: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rules, out-of-office) an oxsync script carries; a foreign script carries neither."""
    rules: list[dict[str, Any]] = []
    oof: dict[str, Any] = {}
    for line in script.splitlines():
        if line.startswith("# oxsync-rules: "):
            rules = json.loads(line[len("# oxsync-rules: "):])
        elif line.startswith("# oxsync-oof: "):
            oof = json.loads(line[len("# oxsync-oof: "):])
    return rules, oof


# ------------------------------------------------------------------------------ ManageSieve


def _connect(settings: MailSettings, account: str) -> Client:
    import warnings

    client = Client(settings.imap_host, settings.managesieve_port)
    warnings.filterwarnings("ignore", message="Credentials are sent over an unencrypted connection")
    login = f"{account}{settings.master_separator}{settings.master_user}" if settings.master_user else account
    if not client.connect(login, settings.master_password, starttls=settings.imap_tls == "starttls",
                          authmech="PLAIN"):
        raise OSError(f"ManageSieve login refused for {account}")
    return client


def read_active(settings: MailSettings, account: str) -> str:
    """The account's active Sieve script ("" when none)."""
    client = _connect(settings, account)
    try:
        listed = client.listscripts()
        active = listed[0] if listed else None
        return (client.getscript(active) or "") if active else ""
    finally:
        client.logout()


def install(settings: MailSettings, account: str, script: str) -> None:
    """Upload the account's script and make it the active one (an empty script deactivates ours)."""
    client = _connect(settings, account)
    try:
        if not client.putscript(SCRIPT, script):
            raise OSError(f"ManageSieve refused the script for {account}: {client.errmsg!r}")
        if not client.setactive(SCRIPT):
            raise OSError(f"ManageSieve could not activate the script for {account}")
    finally:
        client.logout()


# ------------------------------------------------------------------------------ from the store

OOF_KEY = "eas_oof"
"""Where the out-of-office is kept in the user's settings (EAS Settings Oof writes it)."""
RULES_KEY = "mail_rules"


def script_for(session: Any) -> str:
    """The script a user's stored rules and out-of-office make (inside a store session)."""
    stored = session.get_settings()
    oof = stored.get(OOF_KEY) or {}
    me = session.me()
    domain = me.email.rpartition("@")[2]
    vacation = vacation_from_oof(oof, [domain] if domain else [], [me.email, *session.allowed_senders()[1:],
                                                                    *me.aliases])
    return render(stored.get(RULES_KEY) or [], oof if vacation is not None else {"state": "0"}, vacation)


def active_definitions(settings: MailSettings, account: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rules, out-of-office) the account's active script applies (read back from Dovecot)."""
    return definitions(read_active(settings, account))
