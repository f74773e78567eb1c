"""HMAC2 request signing, shared by the client and the simulator's verifier.

Shadowserver signs the raw request body: ``HMAC2 = hex(HMAC-SHA256(secret, body_bytes))``. The body is
serialised once and the same bytes are signed and sent; a verifier always works on the bytes it received.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any


def encode_body(fields: Mapping[str, Any], api_key: str) -> bytes:
    """Serialise a request body with the API key, the way Shadowserver's reference client does."""
    body = dict(fields)
    body["apikey"] = api_key
    return json.dumps(body, sort_keys=True).encode("utf-8")


def sign_body(secret: str, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret`` (the ``HMAC2`` header)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, signature: str) -> bool:
    """Check an ``HMAC2`` header against the exact bytes received, in constant time."""
    return hmac.compare_digest(sign_body(secret, body), signature.strip().lower())
