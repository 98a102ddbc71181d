"""SQLite durability is a named setting: `normal` (default, WAL) or `full` reach the connection, and an
unknown value is refused with the setting's name."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from oxsync.config import ConfigError, Settings, StoreSettings, check_settings
from oxsync.store.engine import make_engine


@pytest.mark.parametrize(("value", "expected"), [("normal", 1), ("full", 2), ("EXTRA", 3)])
def test_synchronous_setting_reaches_every_connection(tmp_path, value: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(StoreSettings(url=f"sqlite:///{tmp_path}/x.db", sqlite_synchronous=value))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == expected
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        engine.dispose()


def test_unknown_synchronous_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        check_settings(Settings(store=StoreSettings(sqlite_synchronous="off")))
