"""Conditions follow the API conventions: lastTransitionTime moves only when the status does."""

from __future__ import annotations

from kubescim.conditions import condition, status_equal


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = condition("Synced", True, "Succeeded", "no drift", [])
    earlier = {**first, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    again = condition("Synced", True, "Succeeded", "repaired drift: 1 updated", [earlier])
    assert again["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again["message"] == "repaired drift: 1 updated"
    flipped = condition("Synced", False, "Failed", "fetch failed", [earlier])
    assert flipped["lastTransitionTime"] != "2026-01-01T00:00:00Z"
    assert flipped["status"] == "False"


def test_statuses_that_differ_only_in_transition_times_are_equal() -> None:
    a = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    b = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-02-01T00:00:00Z"}]}
    assert status_equal(a, b)
    assert not status_equal(a, {"conditions": [{"type": "Ready", "status": "False"}]})
    assert status_equal({"members": []}, {})
