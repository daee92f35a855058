"""Tokens: which one a client sent, decided in constant time per stored hash; reports count, never echo."""

from __future__ import annotations

from kubescim.tokens import (
    PreviousToken,
    Verdict,
    generate_token,
    hash_token,
    judge,
    previous_from_secret_data,
    previous_to_secret_data,
)
from scim_gateway.auth_report import added
from scim_gateway.providers import Rejections


def test_current_previous_unknown_and_missing_tokens_are_told_apart() -> None:
    old, new, stranger = generate_token(), generate_token(), generate_token()
    previous = (PreviousToken(hash_token(old), "2026-12-01T08:00:00Z"),)
    assert judge(new, hash_token(new), previous) == (Verdict.ACCEPTED, None)
    verdict, which = judge(old, hash_token(new), previous)
    assert verdict is Verdict.PREVIOUS
    assert which == previous[0]
    assert judge(stranger, hash_token(new), previous) == (Verdict.UNKNOWN, None)
    assert judge(None, hash_token(new), previous) == (Verdict.MISSING, None)
    assert judge(new, None, ()) == (Verdict.UNKNOWN, None)


def test_previous_hashes_round_trip_through_the_secret_and_hold_no_token() -> None:
    token = generate_token()
    encoded = previous_to_secret_data((PreviousToken(hash_token(token), "2026-12-01T08:00:00Z"),))
    assert token not in encoded
    assert previous_from_secret_data({"previousTokenHashes": encoded}) == (
        PreviousToken(hash_token(token), "2026-12-01T08:00:00Z"),
    )
    assert previous_from_secret_data({"previousTokenHashes": "not base64 json"}) == ()


def test_reports_add_up_and_start_again_at_a_rotation() -> None:
    first = added(None, Rejections(previous_token=2, last_at=1_700_000_000.0), "2026-12-01T08:00:00Z")
    assert first["previousToken"] == 2
    second = added(first, Rejections(unknown_token=1, last_at=1_700_000_100.0), "2026-12-01T08:00:00Z")
    assert (second["previousToken"], second["unknownToken"]) == (2, 1)
    assert second["lastRejectedAt"] == "2023-11-14T22:15:00Z"
    rotated = added(second, Rejections(missing_credentials=1, last_at=1_700_000_200.0), "2026-12-02T08:00:00Z")
    assert (rotated["previousToken"], rotated["missingCredentials"]) == (0, 1)
