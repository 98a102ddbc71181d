"""Lists of ids in a WHERE clause, one statement text whatever their length.

`column IN (...)` binds one parameter per id: on PostgreSQL each length is a new statement text, which
psycopg neither caches the conversion of (over 50 parameters it re-parses the query on every execute)
nor prepares, and the server plans again. `column = ANY(:ids)` binds one array: one text for every
length, converted once and prepared like any repeated statement. SQLite keeps IN (no arrays there)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from oxsync.store.tx import Tx


def ids_in(tx: Tx, column: Any, ids: Iterable[Any]) -> ColumnElement[bool]:
    """`column` among `ids`, in the form `tx`'s database binds as one statement text."""
    values = list(ids)
    if tx.conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def ids_bound(column: Any, name: str, postgresql: bool) -> ColumnElement[bool]:
    """`column` among the list bound at execution as `name`, for a statement built once per dialect."""
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
