"""Whether this operator is the active one, by Kopf's peering rule (pure: no I/O).

Kopf pauses its own watches while another live peer in the KopfPeering object has a higher priority,
or the same one. The operator's ScimUser informer is not Kopf's, so it follows the same rule, read from
the same object: the active operator and its standby never both write users.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


def _deadline(info: Mapping[str, Any]) -> dt.datetime | None:
    """When a peer's record expires: lastseen + lifetime (None if the record is unreadable)."""
    try:
        seen = dt.datetime.fromisoformat(str(info["lastseen"]))
        lifetime = dt.timedelta(seconds=int(info.get("lifetime", 60)))
    except (KeyError, TypeError, ValueError):
        return None
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=dt.UTC)
    return seen + lifetime


def blocking_peers(peers: Mapping[str, Any], identity: str, priority: int, now: dt.datetime) -> list[str]:
    """The other live peers this operator must give way to (priority at least its own)."""
    blocking = []
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        deadline = _deadline(info)
        try:
            their_priority = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if deadline is not None and deadline > now and their_priority >= priority:
            blocking.append(peer)
    return sorted(blocking)
