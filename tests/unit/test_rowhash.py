"""event_hash must stay byte-compatible with v1.0.0 (seed-contract.md §7)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

from ingestor.parse.rowhash import event_hash, legacy_latin1_row, serialize_row

WORKED_EXAMPLE = {
    "asn": "13335",
    "geo": "US",
    "hostname": "A.Example.com",
    "ip": "1.1.1.1",
    "port": "443",
    "severity": "medium",
    "tag": "ssl-poodle;ssl-freak",
    "timestamp": "2026-02-12 01:00:00",
}


def v1_hash(row: dict[str, Any]) -> str:
    """v1.0.0's recipe, verbatim."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def test_worked_example_gives_the_documented_digest() -> None:
    assert event_hash(WORKED_EXAMPLE) == "dcafe7fd9f6e69a25987ed29137f8948480c1979f9478909f0899ee7836e3e33"


def test_key_order_does_not_matter() -> None:
    shuffled = dict(reversed(list(WORKED_EXAMPLE.items())))
    assert event_hash(shuffled) == event_hash(WORKED_EXAMPLE)


def test_utf8_row_and_its_mojibake_twin_match_the_documented_vectors() -> None:
    row = {"city": "café", "ip": "192.0.2.1", "timestamp": "2024-01-04 08:04:37Z"}
    assert serialize_row(row).startswith('{"city": "caf\\u00e9"')
    assert event_hash(row) == "48a64cbb4e09a0ab6f31f62c4e67f10d7ae0500627953675132580bc346ca277"
    garbled = legacy_latin1_row(row)
    assert garbled["city"] == "cafÃ©"
    assert event_hash(garbled) == "4b528fb058c39fb3929dec01f778a7213a6d47f434eef563fcbfece6a5ff2c20"


def test_short_rows_hash_missing_cells_as_null_like_dictreader() -> None:
    text = '"ip","port","tag"\n"192.0.2.1",443\n'
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["tag"] is None
    assert event_hash(row) == v1_hash(row)
    assert '"tag": null' in serialize_row(row)
