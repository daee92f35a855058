"""The one writer's pure parts: which of two objects of one user id is the current one."""

from __future__ import annotations

from kubescim.constants import ANNOTATION_RENAMED_FROM
from kubescim.storage import current_last


def obj(name: str, uid: str, created: str, version: int, renamed_from: str | None = None) -> dict[str, object]:
    annotations = {ANNOTATION_RENAMED_FROM: renamed_from} if renamed_from else {}
    return {
        "metadata": {
            "name": name,
            "uid": uid,
            "creationTimestamp": created,
            "resourceVersion": str(version),
            "annotations": annotations,
        }
    }


def test_the_renamed_object_is_current_even_when_the_old_one_was_written_since() -> None:
    old = obj("alice-1", "u1", "2026-12-01T09:00:00Z", 120)  # the operator wrote it after the rename
    new = obj("alicia-2", "u2", "2026-12-01T09:00:00Z", 110, renamed_from="alice-1/u1")
    assert current_last([new, old])[-1] is new
    assert current_last([old, new])[-1] is new


def test_without_the_annotation_creation_order_decides() -> None:
    older = obj("a", "u1", "2026-12-01T09:00:00Z", 200)
    newer = obj("b", "u2", "2026-12-01T09:00:05Z", 100)
    assert current_last([newer, older]) == [older, newer]
