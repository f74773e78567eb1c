"""Row identity, byte-compatible with shadowserver-ingestor v1.0.0.

    event_hash = hex(SHA-256(UTF-8(json.dumps(row, sort_keys=True, default=str))))

``row`` is the dict ``csv.DictReader`` yields: header names as keys, cell strings as values, ``None`` for
cells missing at the end of a short row. ``report_type`` and ``report_date`` are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, cast

_encode_sorted = json.JSONEncoder(sort_keys=True, default=str).encode


def serialize_row(row: Mapping[str, Any]) -> str:
    """The exact text v1.0.0 hashed: sorted keys, default separators, ASCII-only escapes."""
    return _encode_sorted(row)


def hash_text(serialized: str) -> str:
    """SHA-256 hex of a serialised row (the serialisation is ASCII, so UTF-8 and ASCII agree)."""
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()


def event_hash(row: Mapping[str, Any]) -> str:
    """The v1.0.0 ``event_hash`` of a row dict."""
    return hash_text(serialize_row(row))


def legacy_latin1_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as v1.0.0 saw it when it decoded UTF-8 bytes as ISO-8859-1 (``café`` -> ``cafÃ©``)."""

    def garble(value: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape").decode("latin-1")
        if isinstance(value, list):
            items = cast("list[object]", value)
            return [garble(item) for item in items]
        return value

    return {garble(key): garble(value) for key, value in row.items()}
