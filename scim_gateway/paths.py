"""Request paths as an administrator may have typed the base URL.

Okta builds request URLs by appending `/Users` to the base URL the administrator entered, so a base
URL with a trailing slash gives `//Users` (the Okta guide's first troubleshooting symptom: "Test API
Credentials" fails with 404); Microsoft's validation requests `/Users/?filter=…`. Both mean the same
endpoint: runs of slashes collapse to one and a trailing slash is dropped, before routing.
"""

from __future__ import annotations

import re
from typing import Any

_SLASHES = re.compile(r"/{2,}")


def normalize(path: str) -> str:
    path = _SLASHES.sub("/", path)
    return path.rstrip("/") or "/"


class NormalizedPaths:
    """ASGI middleware: routes see the normalized path (and raw_path)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            clean = normalize(path)
            if clean != path:
                scope = {**scope, "path": clean, "raw_path": clean.encode()}
        await self.app(scope, receive, send)
