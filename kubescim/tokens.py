"""Provisioning tokens: generated once, shown once, stored only as a SHA-256 hash in a Secret.

A token is 32 random bytes (URL-safe base64, 43 characters), so a single SHA-256 is a sound
verifier (no dictionary to guard against: nothing slow is needed). Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

TOKEN_HASH_KEY: Final = "tokenHash"
PLAIN_TOKEN_KEY: Final = "token"  # only in a Secret the installer provides to seed a token
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
