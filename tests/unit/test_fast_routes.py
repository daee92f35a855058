"""FastWriteRoutes' dispatch: which requests it serves itself, which it passes on to FastAPI, and that
a failure becomes the app's error response. (That its answers equal FastAPI's, against a real API
server, is tests/integration/test_fast_routes.py.)"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from kubescim.scim.errors import ScimError
from kubescim.tokens import Verdict
from scim_gateway.fast_routes import FastWriteRoutes, fast_routes
from scim_gateway.responses import ScimResponse, scim_error_response
from scim_gateway.settings import GatewaySettings

RESOURCE = {"id": "u1", "userName": "ada", "meta": {"location": "http://t/scim/v2/Users/u1", "version": 'W/"3"'}}


class Service:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def create_user(self, provider: str, body: Any, base_url: str) -> dict[str, Any]:
        self.calls.append(("create_user", (provider, body, base_url)))
        return RESOURCE

    async def patch_user(self, provider: str, user_id: str, body: Any, base_url: str, if_match: str | None) -> Any:
        self.calls.append(("patch_user", (provider, user_id, body, base_url, if_match)))
        raise ScimError(412, "version mismatch")


def _gateway() -> SimpleNamespace:
    provider = SimpleNamespace(name="okta", spec=SimpleNamespace(scim=SimpleNamespace(enabled=True)), limiter=None)
    return SimpleNamespace(
        ready=True,
        settings=GatewaySettings(namespace="t", default_provider="okta"),
        service=Service(),
        providers=SimpleNamespace(
            providers={"okta": provider},
            authenticate=lambda p, value: (Verdict.ACCEPTED if value == "secret" else Verdict.UNKNOWN, None),
        ),
    )


async def _request(
    method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[list[str], int, dict[str, Any] | None, Any]:
    """(what the inner app saw, status, body, gateway) of one request through FastWriteRoutes."""
    gateway = _gateway()
    passed: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        passed.append(scope["path"])
        await ScimResponse({"from": "fastapi"}, 299)(scope, receive, send)

    raw = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("t", 80),
        "headers": [
            (b"host", b"t"),
            (b"content-type", b"application/scim+json"),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ],
        "app": SimpleNamespace(state=SimpleNamespace(gateway=gateway)),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await FastWriteRoutes(inner, error_response=scim_error_response_of)(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return passed, sent[0]["status"], json.loads(answer) if answer else None, gateway


def scim_error_response_of(error: Exception) -> ScimResponse:
    assert isinstance(error, ScimError), error
    return scim_error_response(error)


def test_the_table_has_the_four_write_routes_under_both_prefixes() -> None:
    table = {method: sorted(r.pattern.pattern for r in routes) for method, routes in fast_routes().items()}
    assert set(table) == {"POST", "PUT", "PATCH"}
    assert table["POST"] == ["^/providers/(?P<provider>[^/]+)/scim/v2/Users$", "^/scim/v2/Users$"]
    assert len(table["PUT"]) == 2
    assert len(table["PATCH"]) == 4  # Users/{id} and Groups/{id}, twice


async def test_a_post_of_users_is_served_without_fastapi() -> None:
    passed, status, body, gateway = await _request(
        "POST", "/providers/okta/scim/v2/Users", {"userName": "ada"}, {"Authorization": "Bearer secret"}
    )
    assert passed == []
    assert (status, body) == (201, RESOURCE)
    assert gateway.service.calls == [("create_user", ("okta", {"userName": "ada"}, "http://t/providers/okta/scim/v2"))]


async def test_dependencies_run_in_fastapis_order_authentication_first() -> None:
    passed, status, body, gateway = await _request("POST", "/scim/v2/Users", None, {"Authorization": "Bearer wrong"})
    assert (passed, status) == ([], 401)
    assert body is not None
    assert body["status"] == "401"
    assert gateway.service.calls == []


async def test_a_failure_becomes_the_apps_error_response() -> None:
    passed, status, body, gateway = await _request(
        "PATCH", "/scim/v2/Users/u1", {"Operations": []}, {"Authorization": "Bearer secret", "If-Match": 'W/"2"'}
    )
    assert (passed, status) == ([], 412)
    assert body is not None
    assert body["detail"] == "version mismatch"
    assert gateway.service.calls[0][1][1:] == ("u1", {"Operations": []}, "http://t/scim/v2", 'W/"2"')


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/scim/v2/Users"),
        ("GET", "/scim/v2/Users/u1"),
        ("DELETE", "/scim/v2/Users/u1"),
        ("POST", "/scim/v2/Groups"),
        ("POST", "/scim/v2/Users/.search"),
        ("PATCH", "/scim/v2/Users"),
        ("POST", f"/providers/{'p' * 64}/scim/v2/Users"),  # FastAPI's own validation error
    ],
)
async def test_every_other_request_goes_on_to_fastapi(method: str, path: str) -> None:
    passed, status, _, gateway = await _request(method, path, {}, {"Authorization": "Bearer secret"})
    assert (passed, status) == ([path], 299)
    assert gateway.service.calls == []
