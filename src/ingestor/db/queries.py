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
        # SQL from our own package file: as trusted as a literal (mypy treats LiteralString as str).
        queries[name] = statement.rstrip(";")
    return queries


QUERIES = parse_queries(resources.files(__package__).joinpath("sql", "queries.sql").read_text(encoding="utf-8"))
"""All named statements: ``QUERIES["insert_events"]``."""
