"""Status conditions as the Kubernetes API conventions want them, for every kind kubescim writes:
a condition keeps its lastTransitionTime while its status holds, and a status that differs only in
those times is not worth a write. Pure."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubescim.api.models import Condition, ConditionStatus


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def conditions_equal(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in items]

    return strip(old) == strip(new)


def condition(
    type_: str, ok: bool, reason: str, message: str, previous: list[dict[str, Any]], generation: int | None = None
) -> dict[str, Any]:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    status = ConditionStatus.TRUE if ok else ConditionStatus.FALSE
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status.value else None
    built = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32000],
        last_transition_time=dt.datetime.fromisoformat(since.replace("Z", "+00:00")) if since else now(),
        observed_generation=generation,
    )
    return built.dump()


def status_equal(old: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = set(old) | set(new)
    for key in keys:
        if key == "conditions":
            if not conditions_equal(old.get(key) or [], new.get(key) or []):
                return False
        elif (old.get(key) if old.get(key) not in ([], None) else None) != (
            new.get(key) if new.get(key) not in ([], None) else None
        ):
            return False
    return True
