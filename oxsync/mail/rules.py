"""Editing a user's mail filter rules (OXtender manual §6.2 "Filtre de courrier"): one code path for
`oxsync user rules` and the console's self-service page.

The rules are kept in the user's settings (`sieve.RULES_KEY`) through a store session (no SQLAlchemy
here); installing the resulting script is `sieve.install`, blocking, on a mail pool thread.
What must hold: a rule is checked by `sieve.check_rule` before it is stored, at most `sieve.MAX_RULES`
rules, a rule of the same name is replaced in place of being doubled.
"""

from __future__ import annotations

from typing import Any

from oxsync.mail import sieve


def stored_rules(session: Any) -> list[dict[str, Any]]:
    """The user's rules, in order."""
    return list(session.get_settings().get(sieve.RULES_KEY) or [])


def _save(session: Any, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    session.put_settings({**session.get_settings(), sieve.RULES_KEY: rules})
    return rules


def add_rule(session: Any, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """Check and store `rule` (replacing one of the same name); RuleError when it cannot be expressed."""
    checked = sieve.check_rule(rule)
    rules = stored_rules(session)
    kept = [r for r in rules if r.get("name") != checked["name"]]
    if len(kept) >= sieve.MAX_RULES:
        raise sieve.RuleError(f"at most {sieve.MAX_RULES} rules")
    return _save(session, [*kept, checked])


def remove_rule(session: Any, name: str) -> list[dict[str, Any]]:
    rules = stored_rules(session)
    kept = [r for r in rules if r.get("name") != name]
    if len(kept) == len(rules):
        raise sieve.RuleError(f"no rule named {name!r}")
    return _save(session, kept)


def clear_rules(session: Any) -> list[dict[str, Any]]:
    return _save(session, [])
