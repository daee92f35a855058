"""The Okta Management API client against a scripted transport: paging, rate limits, retries, errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from identity_operator.okta.client import OktaClient, OktaCredentials, OktaFetchError, next_link

ORG = "https://example.okta.com"


def client(handler: Callable[[httpx.Request], httpx.Response], **options: object) -> OktaClient:
    credentials = OktaCredentials(ORG, api_token="00secret-token")
    return OktaClient(credentials, transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


def test_next_link_is_found_among_several_link_headers_in_any_order() -> None:
    headers = httpx.Headers(
        [
            ("link", f'<{ORG}/api/v1/users?after=2&limit=200>; rel="next"'),
            ("link", f'<{ORG}/api/v1/users?limit=200>; rel="self"'),
        ]
    )
    assert next_link(headers) == f"{ORG}/api/v1/users?after=2&limit=200"
    assert next_link(httpx.Headers([("link", f'<{ORG}/x>; rel="self"')])) is None


async def test_pages_follow_next_until_there_is_none_and_send_the_token() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        assert request.headers["authorization"] == "SSWS 00secret-token"
        after = request.url.params.get("after")
        if after is None:
            return httpx.Response(200, json=[{"id": 1}], headers={"link": f'<{ORG}/api/v1/users?after=1>; rel="next"'})
        return httpx.Response(200, json=[{"id": 2}], headers={"link": f'<{ORG}/api/v1/users?after=1>; rel="self"'})

    async with client(handle) as okta:
        assert await okta.list_all("/api/v1/users", "users") == [{"id": 1}, {"id": 2}]
        assert okta.stats.pages == {"users": 2}
    assert "limit=200" in seen[0]
    assert seen[1] == f"{ORG}/api/v1/users?after=1"  # the next URL carries its own query
    assert "00secret-token" not in repr(okta.credentials)


async def test_a_429_waits_for_the_reset_and_retries() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            reset = str(int(time.time()))  # already due: the client waits its minimum
            return httpx.Response(
                429, headers={"x-rate-limit-limit": "600", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}
            )
        return httpx.Response(200, json=[])

    async with client(handle) as okta:
        started = time.monotonic()
        assert await okta.list_all("/api/v1/groups", "groups") == []
        assert time.monotonic() - started >= 1.0
        assert (okta.stats.throttled, okta.stats.rate_limit_waits, okta.stats.calls) == (1, 1, 2)


async def test_server_errors_are_retried_then_reported_and_client_errors_are_not() -> None:
    def always_503(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    async with client(always_503, max_retries=1) as okta:
        with pytest.raises(OktaFetchError, match="HTTP 503 after 1 retries"):
            await okta.list_all("/api/v1/users", "users")
        assert okta.stats.retries == 2

    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"errorCode": "E0000006", "errorSummary": "not allowed"})

    async with client(forbidden) as okta:
        with pytest.raises(OktaFetchError, match="HTTP 403"):
            await okta.list_all("/api/v1/users", "users")
        assert okta.stats.calls == 1


async def test_a_truncated_page_is_an_error_not_an_empty_list() -> None:
    def truncated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'[{"id": 1}, {"id"', headers={"content-type": "application/json"})

    async with client(truncated) as okta:
        with pytest.raises(OktaFetchError, match="truncated or invalid JSON"):
            await okta.list_all("/api/v1/users", "users")


async def test_the_budget_share_waits_before_dipping_into_the_orgs_reserve() -> None:
    resets = iter([time.time() + 1.2, time.time() + 60])

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "40", "x-rate-limit-reset": str(next(resets))}
        return httpx.Response(200, json=[], headers=headers)

    async with client(handle, budget_share=0.5) as okta:
        await okta.get("/api/v1/users")  # leaves 40 of 100: below the 50 kept for others
        started = time.monotonic()
        await okta.get("/api/v1/users")
        assert time.monotonic() - started >= 1.0
        assert okta.stats.rate_limit_waits == 1
