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

# orjson's answer holds its whole output buffer: at least 4 KiB, and about ten times the text for
# larger ones. Below this size the text is copied out (about 0.1 µs), so what a caller keeps (the
# gateway's cached specs, the operator's written statuses) holds its own size: the buffer cost the
# gateway's index 3.8 KB per user (docs/scaling.md, "Memory"). Above it the text is a response or a
# request body, sent and dropped; its buffer's untouched pages are never resident, and a copy of a
# large member list would cost more than it saves.
EXACT_SIZE_BELOW = 64 * 1024


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    try:
        text = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=(",", ":")).encode()
    return bytes(memoryview(text)) if len(text) < EXACT_SIZE_BELOW else text


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises ValueError (orjson.JSONDecodeError) on malformed input."""
    return orjson.loads(data)
