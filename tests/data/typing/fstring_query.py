"""Type-checked by tests/unit/test_type_checking.py, which expects exactly the errors marked ``rejected``.

psycopg types its queries as ``LiteralString``: a literal, or a composition of literals, is accepted; a
query built from a value (an f-string, ``+``, ``%`` or ``str.format``) is an injection waiting to happen
and must not type-check. mypy treats ``LiteralString`` as ``str`` and accepts all of them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql


def accepted(conn: psycopg.Connection[Any], table: str, report_type: str) -> None:
    conn.execute("SELECT count(*) FROM ss_events WHERE report_type = %s", (report_type,))
    conn.execute("SELECT count(*) FROM ss_events")
    conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))


def rejected(conn: psycopg.Connection[Any], table: str, report_type: str) -> None:
    conn.execute(f"SELECT count(*) FROM {table}")  # rejected
    conn.execute("SELECT count(*) FROM ss_events WHERE report_type = '" + report_type + "'")  # rejected
    conn.execute("SELECT count(*) FROM {}".format(table))  # noqa: UP032  rejected
