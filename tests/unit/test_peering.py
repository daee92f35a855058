"""Kopf's peering rule, as the operator's own gate applies it to the KopfPeering object."""

from __future__ import annotations

import datetime as dt

from identity_operator.peering import blocking_peers

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 30) -> dict[str, object]:
    return {
        "priority": priority,
        "lastseen": (NOW - dt.timedelta(seconds=seconds_ago)).isoformat(),
        "lifetime": lifetime,
    }


def test_a_live_higher_priority_peer_pauses_a_standby() -> None:
    peers = {"active/1": peer(100, 5), "standby/2": peer(50, 1)}
    assert blocking_peers(peers, "standby/2", 50, NOW) == ["active/1"]
    assert blocking_peers(peers, "active/1", 100, NOW) == []


def test_a_dead_peer_blocks_no_one() -> None:
    peers = {"active/1": peer(100, 31), "standby/2": peer(50, 1)}
    assert blocking_peers(peers, "standby/2", 50, NOW) == []


def test_the_same_priority_pauses_both_as_kopf_does() -> None:
    peers = {"a/1": peer(100, 1), "b/2": peer(100, 1)}
    assert blocking_peers(peers, "a/1", 100, NOW) == ["b/2"]
    assert blocking_peers(peers, "b/2", 100, NOW) == ["a/1"]


def test_unreadable_records_and_kopf_s_null_tombstones_are_ignored() -> None:
    peers = {"x": None, "y": {"priority": "high", "lastseen": NOW.isoformat()}, "z": {"priority": 200}}
    assert blocking_peers(peers, "me", 100, NOW) == []


def test_kopf_s_timestamp_forms_parse() -> None:
    for lastseen in ("2026-12-01T11:59:50Z", "2026-12-01T11:59:50.123456+00:00", "2026-12-01T11:59:50"):
        assert blocking_peers({"p": {"priority": 200, "lastseen": lastseen, "lifetime": 60}}, "me", 1, NOW) == ["p"]
