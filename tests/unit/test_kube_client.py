"""The Kubernetes client's answer to a 429: a read is repeated after the pause the server asks for (a
watch cache re-initialising refuses lists for a moment), a write is not (the caller decides)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from kubescim.kube import ApiError, ApiUnavailable, Kube, KubeConfig, Resource
from tests.unit.http_stub import serve

WIDGETS = Resource("example.com", "v1", "widgets")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A tiny HTTP server that refuses the first two requests of each method with 429."""
    seen: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        seen[request.method] = seen.get(request.method, 0) + 1
        if seen[request.method] <= 2:
            return web.json_response({"reason": "TooManyRequests"}, status=429, headers={"Retry-After": "0"})
        if request.path.endswith("/missing"):
            return web.json_response({"reason": "NotFound", "message": "widgets missing not found"}, status=404)
        return web.json_response({"metadata": {"name": "w"}, "method": request.method})

    async with serve(handle) as url:
        yield url, seen


async def test_a_read_refused_with_429_is_repeated(server: tuple[str, dict[str, int]]) -> None:
    url, seen = server
    async with Kube(KubeConfig(server=url)) as kube:
        assert (await kube.get(WIDGETS, "w", "ns"))["method"] == "GET"
    assert seen["GET"] == 3


async def test_a_write_refused_with_429_is_not_repeated(server: tuple[str, dict[str, int]]) -> None:
    url, seen = server
    async with Kube(KubeConfig(server=url)) as kube:
        with pytest.raises(ApiUnavailable):
            await kube.create(WIDGETS, {"metadata": {"name": "w"}}, "ns")
    assert seen["POST"] == 1


async def test_errors_after_the_retries_keep_their_status(server: tuple[str, dict[str, int]]) -> None:
    url, _ = server
    async with Kube(KubeConfig(server=url)) as kube:
        with pytest.raises(ApiError) as error:
            await kube.get(WIDGETS, "missing", "ns")
    assert error.value.not_found
