"""The Kubernetes client's answer to a 429: a read is repeated after the pause the server asks for (a
watch cache re-initialising refuses lists for a moment), a write is not (the caller decides). And
its token file: read once a minute, and again after a 401."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from kubescim.kube import ApiError, ApiUnavailable, FileToken, Kube, KubeConfig, Resource
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


def test_a_token_file_is_read_once_per_period(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    now = [0.0]
    token = FileToken(path, period=60.0, clock=lambda: now[0])
    assert token.get() == "first"
    path.write_text("second\n")
    now[0] = 59.0
    assert token.get() == "first"  # within the period: no read
    assert token.get(refresh=True) == "second"  # a 401 asks for the file again at once
    path.write_text("third\n")
    now[0] = 118.0
    assert token.get() == "second"  # the period restarts at the last read
    now[0] = 119.0
    assert token.get() == "third"


async def test_a_401_reads_a_rotated_token_file_again_once(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    accepted = {"token": "old"}
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {accepted['token']}":
            return web.json_response({"reason": "Unauthorized"}, status=401)
        return web.json_response({"metadata": {"name": "w"}})

    async with serve(handle) as url, Kube(KubeConfig(server=url, token_file=path)) as kube:
        await kube.get(WIDGETS, "w", "ns")
        path.write_text("new")  # the kubelet rotates the token; the old one is refused from now on
        accepted["token"] = "new"
        await kube.get(WIDGETS, "w", "ns")
        assert seen == ["Bearer old", "Bearer old", "Bearer new"]
        accepted["token"] = "revoked"  # a token the file does not hold: one re-read, then the error
        with pytest.raises(ApiError) as refused:
            await kube.get(WIDGETS, "w", "ns")
        assert refused.value.status == 401
        assert seen[3:] == ["Bearer new", "Bearer new"]
