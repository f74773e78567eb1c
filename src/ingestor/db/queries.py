"""Named SQL statements, kept in ``sql/queries.sql`` where they can be read and reviewed as SQL."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_BLOCK = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a queries file into ``{name: statement}`` (comment lines dropped)."""
    parts = _BLOCK.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = "\n".join(line for line in body.splitlines() if not line.startswith("--")).strip()
        queries[name] = trusted_sql(statement.rstrip(";"))
    return queries


def trusted_sql(text: str) -> LiteralString:
    """SQL read from this package's own files, as trusted as a literal in the code.

    The one place where a ``str`` becomes a ``LiteralString``: every other query handed to psycopg must be a
    literal or composed with :mod:`psycopg.sql`, and the type checker (basedpyright, in ``./run test``)
    rejects anything else, e.g. an f-string with a value in it.
    """
    return text  # pyright: ignore[reportReturnType]  (mypy treats LiteralString as str and needs no cast)


QUERIES = parse_queries(resources.files("ingestor.db").joinpath("sql", "queries.sql").read_text(encoding="utf-8"))
"""All named statements of ``sql/queries.sql``: ``QUERIES["copy_events"]``."""
