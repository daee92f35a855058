"""Okta's write stream without FastAPI's per-request machinery.

Provisioning is mostly `POST /Users`, `PUT` and `PATCH /Users/{id}` and `PATCH /Groups/{id}`. For
these, FastAPI's route matching, dependency solving and inner middleware cost about 200 µs of CPU a
request (measured in-process: docs/scaling.md), about a fifth of the gateway's CPU per POST.

This ASGI middleware matches those four routes with the same path patterns and calls the same route
functions, with their dependencies (`scim_context`, `json_body`, `list_query`) computed by the same
functions, in the order FastAPI would solve them. So the behaviour, the route functions and the
OpenAPI document stay in one place. Everything else goes on to FastAPI, and so does a request that
FastAPI would refuse before any dependency runs (a provider name longer than 63 characters).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from scim_gateway.deps import PROVIDER_MAX_LENGTH, get_gateway, json_body, list_query, scim_context
from scim_gateway.observability import ASGIApp, Receive, Scope, Send
from scim_gateway.routes import PREFIXES, groups, users

FAST_ENDPOINTS: frozenset[Callable[..., Any]] = frozenset(
    {users.create_user, users.replace_user, users.patch_user, groups.patch_group}
)
QUERY_PARAMETERS = tuple(name for name in inspect.signature(list_query).parameters if name != "gateway")
DEPENDENCIES = frozenset({"ctx", "gateway", "body", "query", "if_match"})  # what FastWriteRoutes._call computes
ErrorResponse = Callable[[Exception], Response]


@dataclass(frozen=True)
class FastRoute:
    pattern: re.Pattern[str]
    route: APIRoute  # the FastAPI route: its endpoint is called, and the metrics read its path
    parameters: tuple[str, ...]  # the endpoint's, in FastAPI's solving order


def fast_routes(prefixes: Iterable[str] = PREFIXES) -> dict[str, list[FastRoute]]:
    """Method -> the fast routes under every prefix."""
    table: dict[str, list[FastRoute]] = {}
    for prefix in prefixes:
        for route in [*users.router.routes, *groups.router.routes]:
            if not isinstance(route, APIRoute) or route.endpoint not in FAST_ENDPOINTS:
                continue
            pattern, _, _ = compile_path(prefix + route.path)
            parameters = tuple(inspect.signature(route.endpoint).parameters)
            unknown = set(parameters) - DEPENDENCIES - set(pattern.groupindex)
            if unknown:
                raise TypeError(f"{route.endpoint.__name__}: no fast-route argument for {sorted(unknown)}")
            for method in route.methods or ():
                table.setdefault(method, []).append(FastRoute(pattern, route, parameters))
    return table


class FastWriteRoutes:
    """Serves the fast routes itself; passes every other request to `app` (FastAPI's router)."""

    def __init__(self, app: ASGIApp, error_response: ErrorResponse) -> None:
        self.app = app
        self.error_response = error_response  # the app's exception handlers, as one function
        self.table = fast_routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for fast in self.table.get(scope["method"], ()):
                match = fast.pattern.match(scope["path"])
                if match is None:
                    continue
                params = match.groupdict()
                if len(params.get("provider", "")) > PROVIDER_MAX_LENGTH:
                    break  # FastAPI's validation error, from FastAPI
                await self._serve(fast, params, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, fast: FastRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
        scope["path_params"] = params
        scope["route"] = fast.route  # as FastAPI's router sets it: RequestMiddleware's route label
        request = Request(scope, receive)
        try:
            response = await self._call(fast, params, request)
        except Exception as error:  # every failure becomes the app's error response
            response = self.error_response(error)
        await response(scope, receive, send)

    @staticmethod
    async def _call(fast: FastRoute, params: dict[str, str], request: Request) -> Response:
        gateway = await get_gateway(request)
        arguments: dict[str, Any] = {}
        for name in fast.parameters:
            if name == "ctx":
                arguments[name] = await scim_context(request, gateway, request.headers.get("authorization"))
            elif name == "gateway":
                arguments[name] = gateway
            elif name == "body":
                arguments[name] = await json_body(request, gateway)
            elif name == "query":
                values = request.query_params
                arguments[name] = await list_query(gateway, **{key: values.get(key) for key in QUERY_PARAMETERS})
            elif name == "if_match":
                arguments[name] = request.headers.get("if-match")
            else:
                arguments[name] = params[name]  # a path parameter (fast_routes refuses any other name)
        response: Response = await fast.route.endpoint(**arguments)
        return response
