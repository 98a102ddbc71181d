"""Console languages: strings are data (strings/<lang>.json); the language comes from the switch
(cookie), else Accept-Language, else French (the customers' documents are French)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGUAGES = ("fr", "en")
DEFAULT = "fr"


@cache
def strings(lang: str) -> dict[str, str]:
    text = resources.files("oxsync.console").joinpath("strings", f"{lang}.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def translator(lang: str):
    table, fallback = strings(lang), strings("en")

    def t(key: str, **values: object) -> str:
        text = table.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t


def choose(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    ranked = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.split("-")[0].lower()))
    for _, _, tag in sorted(ranked):
        if tag in LANGUAGES:
            return tag
    return DEFAULT
