"""Secrets and download ids are kept out of text; ids by lookup, for the current listing window."""

from __future__ import annotations

import json

from ingestor.api.client import parse_report_items
from ingestor.redaction import REDACTED, Redactor, redact

ID_A = "xNDSuwXrKnrLrDopU926rR75CAESMWesVCKsuyI8b8ncTv7GCX"
ID_B = "Zq8xK2mNp4Lr7Tv9Wb3Yc6Hd1Jf5Gs0AeZq8xK2mNp4Lr7Tv9W"


def test_ids_are_redacted_wherever_they_stand() -> None:
    redactor = Redactor()
    redactor.add_ids([ID_A, ID_B])
    text = f'download of {ID_A} failed; {{"id": "{ID_B}"}} (id={ID_A}) https://dl.example.org/{ID_B}?x=1'
    redacted = redactor.redact(text)
    assert ID_A not in redacted and ID_B not in redacted
    assert redacted == (
        f'download of {REDACTED} failed; {{"id": "{REDACTED}"}} (id={REDACTED}) https://dl.example.org/{REDACTED}'
    )
    assert redactor.redact("nothing to hide, not even xNDSuwXrKnrLrDop") == "nothing to hide, not even xNDSuwXrKnrLrDop"


def test_ids_with_other_characters_are_found_too() -> None:
    redactor = Redactor()
    odd = "a1b2-c3d4_e5f6.g7h8"
    redactor.add_ids([odd, "abc"])  # too short to be worth hiding: ignored, as for secrets
    assert redactor.redact(f"id {odd}: gone") == f"id {REDACTED}: gone"
    assert redactor.redact("abc") == "abc"


def test_only_the_current_and_the_last_listing_window_are_kept() -> None:
    redactor = Redactor()
    redactor.add_ids([ID_A])
    redactor.begin_window()  # the next cycle lists: ID_A may still be in flight
    redactor.add_ids([ID_B])
    assert redactor.redact(f"{ID_A} {ID_B}") == f"{REDACTED} {REDACTED}"
    redactor.begin_window()
    assert redactor.redact(f"{ID_A} {ID_B}") == f"{ID_A} {REDACTED}"
    redactor.begin_window()
    assert redactor.redact(f"{ID_A} {ID_B}") == f"{ID_A} {ID_B}"


def test_secrets_are_redacted_as_substrings() -> None:
    redactor = Redactor()
    redactor.add("s3cr3t!pass")
    redactor.add_ids([ID_A])
    assert redactor.redact(f"password=s3cr3t!pass&id={ID_A}") == f"password={REDACTED}&id={REDACTED}"


def test_a_listing_registers_its_ids_in_one_step() -> None:
    listing = [{"id": f"{n:050d}", "type": "scan_ssl", "timestamp": "2026-11-20"} for n in range(50_000)]
    items, invalid = parse_report_items(json.loads(json.dumps(listing)))
    assert len(items) == 50_000 and invalid == 0
    assert redact(f"file {items[12_345].id} failed") == f"file {REDACTED} failed"
