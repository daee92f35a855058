"""Provisioning tokens: generated once, shown once, stored only as a SHA-256 hash in a Secret.

A token is 32 random bytes (URL-safe base64, 43 characters), so a single SHA-256 is a sound
verifier (no dictionary to guard against: nothing slow is needed). Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Final

TOKEN_HASH_KEY: Final = "tokenHash"
PLAIN_TOKEN_KEY: Final = "token"  # only in a Secret the installer provides to seed a token
# Hashes of the last few replaced tokens, newest first, with when each was replaced: never valid
# again, kept only so a 401 can say "that was the previous token" instead of "unknown token".
PREVIOUS_HASHES_KEY: Final = "previousTokenHashes"
# The SHA-256 of the shared secret Okta's Event Hook sends (`kubescim eventhook rotate`): hashed like
# the token, in the same Secret, so the gateway needs no other Secret.
EVENT_HOOK_HASH_KEY: Final = "eventHookSecretHash"
KEEP_PREVIOUS: Final = 5
ROTATED_AT_ANNOTATION: Final = "identity.kubescim.dev/rotated-at"
HASH_PREFIX: Final = "sha256:"


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def default_secret_name(provider: str) -> str:
    return f"{provider}-scim-token"


def verify(presented: str, stored_hash: str) -> bool:
    """Constant-time check of a presented token against a stored hash."""
    return hmac.compare_digest(hash_token(presented).encode(), stored_hash.encode())


def hash_from_secret_data(data: dict[str, str], key: str) -> str | None:
    """The hash a Secret holds: its `key` (a hash), or a seeded plain `token`, hashed in memory."""
    raw = data.get(key)
    if raw is not None:
        value = base64.b64decode(raw).decode().strip()
        if value.startswith(HASH_PREFIX):
            return value
        return hash_token(value)  # a key holding a plain token (seeded): never kept in clear
    plain = data.get(PLAIN_TOKEN_KEY)
    if plain is not None:
        return hash_token(base64.b64decode(plain).decode().strip())
    return None


def event_hook_hash_from_secret_data(data: dict[str, str]) -> str | None:
    raw = data.get(EVENT_HOOK_HASH_KEY)
    if raw is None:
        return None
    value = base64.b64decode(raw).decode().strip()
    return value if value.startswith(HASH_PREFIX) else None


def bearer_value(header: str | None) -> str | None:
    """The token in an Authorization header: `Bearer <t>` or the bare `<t>` (Okta's Header Auth sends
    whatever the admin typed)."""
    if not header:
        return None
    value = header.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    if " " in value:
        return None
    return value


@dataclass(frozen=True)
class PreviousToken:
    hash: str
    replaced_at: str  # when a newer token replaced it


def previous_from_secret_data(data: dict[str, str]) -> tuple[PreviousToken, ...]:
    raw = data.get(PREVIOUS_HASHES_KEY)
    if not raw:
        return ()
    try:
        entries = json.loads(base64.b64decode(raw))
    except ValueError:
        return ()
    return tuple(
        PreviousToken(str(e["hash"]), str(e.get("replacedAt", "")))
        for e in entries
        if isinstance(e, dict) and str(e.get("hash", "")).startswith(HASH_PREFIX)
    )[:KEEP_PREVIOUS]


def previous_to_secret_data(previous: tuple[PreviousToken, ...]) -> str:
    entries = [{"hash": p.hash, "replacedAt": p.replaced_at} for p in previous[:KEEP_PREVIOUS]]
    return base64.b64encode(json.dumps(entries, separators=(",", ":")).encode()).decode()


class Verdict(Enum):
    ACCEPTED = "accepted"
    MISSING = "missing"  # no credentials at all
    PREVIOUS = "previous"  # a token of this provider that a rotation replaced
    UNKNOWN = "unknown"


def judge(
    presented: str | None, current: str | None, previous: tuple[PreviousToken, ...] = ()
) -> tuple[Verdict, PreviousToken | None]:
    """Which token this is. Every stored hash is compared (constant time each), so the answer's
    timing does not tell a current token from a previous one."""
    if presented is None:
        return Verdict.MISSING, None
    accepted = current is not None and verify(presented, current)
    matched = next((p for p in previous if verify(presented, p.hash)), None)
    if accepted:
        return Verdict.ACCEPTED, None
    if matched is not None:
        return Verdict.PREVIOUS, matched
    return Verdict.UNKNOWN, None
