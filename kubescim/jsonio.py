"""JSON on the hot paths: every Kubernetes request, answer and watch event, the gateway's index and
its SCIM responses. orjson parses an API server's answer about 3 times faster than the standard
library and encodes a custom resource or a 3,000-member group about 7-15 times faster (measured:
docs/scaling.md, "JSON").

The text is the standard library's compact form (`separators=(",", ":")`, `ensure_ascii=False`):
same key order, same escapes. Floats are the same numbers, but one below 1e-4 is written in plain
digits (0.000025, not 2.5e-05): a SCIM user carrying such a number in an extension gets a new ETag
once, after an upgrade. What orjson refuses to encode (an integer beyond 64 bits, a string with a
lone surrogate, a key that is not a string) falls back to the standard library, escaped to ASCII,
so nothing that encodes today stops encoding. NaN and Infinity never get here: the gateway refuses
them in request bodies, and no API server sends them.

Request bodies are not parsed here: the gateway refuses duplicate keys, which orjson cannot see
(scim_gateway.deps.json_body)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=(",", ":")).encode()


def dumps_to_keep(value: Any) -> bytes:
    """Compact JSON for bytes held in memory (a cached spec, a write awaiting its watch event): an
    exact-size copy. orjson's own answer keeps its 4 KiB buffer for any smaller document, which made
    the gateway's index 3.8 KB per user larger (measured: docs/scaling.md, "JSON")."""
    return bytes(memoryview(dumps(value)))


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises ValueError (orjson.JSONDecodeError) on malformed input."""
    return orjson.loads(data)
