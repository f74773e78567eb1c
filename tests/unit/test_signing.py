"""HMAC2 signing, pinned to the published test vectors (shadowserver-api.md §1.3)."""

from __future__ import annotations

import json

import pytest

from ingestor.api.signing import encode_body, sign_body, verify_signature

SECRET = "MySecret"

VECTORS = [
    ('{"apikey": "123456798"}', "ddd569fcb5ca011e58a045945d9450700f46797560fa6eb384f485c1cb8124d4"),
    ('{"apikey":"123456798"}', "997b6d9abc1f85dde3f66d84da9cf2e76c02d7032fe51ce496456a6e921d6761"),
    (
        '{"date": "2024-01-01:2024-01-07", "reports": ["example-org"], "limit": 3, "apikey": "123456798"}',
        "dbe61f197bfe25a77b7a07430d1feb9220f853c18b73be6f3ac97e0ded84de0b",
    ),
    (
        '{ "apikey": "123456798" ,"date": "2024-01-05:2024-01-07" }',
        "02ce5de7b3f30b77cb398fd48cce0f396a0cd4cf30e852962aa23c60a2a820b6",
    ),
]


@pytest.mark.parametrize(("body", "expected"), VECTORS)
def test_sign_body_matches_published_vectors(body: str, expected: str) -> None:
    assert sign_body(SECRET, body.encode()) == expected


@pytest.mark.parametrize(("body", "expected"), VECTORS)
def test_verify_signature_accepts_the_exact_bytes_only(body: str, expected: str) -> None:
    assert verify_signature(SECRET, body.encode(), expected)
    assert verify_signature(SECRET, body.encode(), expected.upper() + "\n")
    reserialised = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True).encode()
    if reserialised != body.encode():
        assert not verify_signature(SECRET, reserialised, expected)
    assert not verify_signature("OtherSecret", body.encode(), expected)


def test_encode_body_is_what_v1_sent_for_a_listing() -> None:
    assert encode_body({"date": "2026-11-25"}, "k") == b'{"apikey": "k", "date": "2026-11-25"}'
