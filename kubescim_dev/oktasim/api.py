"""The Okta Management API endpoints kubescim's reconciler calls, served over an in-memory Org.

Faithful where kubescim depends on it (OKTA.md §2): cursor paging with `self` and `next` in two
separate Link headers (order configurable), per-endpoint page-size maxima, X-Rate-Limit-* headers on
every response and 429 E0000047 when a bucket is empty, SSWS tokens and OAuth 2.0 client credentials
with a private_key_jwt client assertion (verified), scopes enforced. Faults (5xx, timeouts, 429
storms, truncated bodies) can be injected per path, e.g. "fail page 3 of /apps/{id}/users".
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from kubescim_dev.oktasim.org import ACTIVE_USER_STATUSES, Group, Org, User, timestamp

PAGE_MAX = {
    "app_users": 500,
    "app_groups": 200,
    "group_users": 1000,
    "users": 200,
    "groups": 10000,
    "push": 1000,
    "logs": 1000,
}
PAGE_DEFAULT = {
    "app_users": 50,
    "app_groups": 20,
    "group_users": 1000,
    "users": 200,
    "groups": 10000,
    "push": 100,
    "logs": 100,
}
SCOPES = {
    "apps": "okta.apps.read",
    "users": "okta.users.read",
    "groups": "okta.groups.read",
    "logs": "okta.logs.read",
}
# How long the System Log keeps events (Okta: 90 days); a `since` before that finds nothing older.
LOG_RETENTION_DAYS = 90


def okta_error(status: int, code: str, summary: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": secrets.token_hex(8),
            "errorCauses": [],
        },
        status_code=status,
        headers=headers,
    )


@dataclass
class Fault:
    """Fail matching requests: kind is "500", "timeout", "truncate", "429" or "403" (a token without
    the scope, e.g. okta.logs.read)."""

    path: str  # a regular expression searched in the request path
    kind: str
    skip: int = 0  # let this many matching requests through first (e.g. 2 to fail page 3)
    count: int = 1  # then fail this many (-1: all)

    def take(self) -> bool:
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.count == 0:
            return False
        if self.count > 0:
            self.count -= 1
        return True


@dataclass
class Bucket:
    limit: int
    window: float
    remaining: int = 0
    reset_at: float = 0.0

    def take(self, now: float) -> bool:
        if now >= self.reset_at:
            self.remaining = self.limit
            self.reset_at = now + self.window
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass
class SimulatorConfig:
    api_token: str = field(default_factory=lambda: "00" + secrets.token_urlsafe(30))
    oauth_client_id: str = "0oaKubescimServiceApp"
    oauth_public_key_pem: str | None = None
    link_next_first: bool = False  # Okta sends self then next; either order must work
    rate_limit: int = 600  # requests per bucket per window (Okta: /api/v1/users, /api/v1/apps per minute)
    # Buckets Okta documents with another limit: the System Log takes a fifth of the others.
    bucket_limits: dict[str, int] = field(default_factory=lambda: {"logs": 120})
    rate_window_seconds: float = 60.0
    timeout_seconds: float = 65.0  # a "timeout" fault sleeps this long
    page_max: int | None = None  # cap every endpoint's page size (tests: reach page 3 with few users)


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    faults: int = 0
    min_remaining: dict[str, int] = field(default_factory=dict)  # lowest budget left, per bucket

    def total(self) -> int:
        return sum(self.calls.values())


class Simulator:
    def __init__(self, org: Org, config: SimulatorConfig | None = None) -> None:
        self.org = org
        self.config = config or SimulatorConfig()
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.buckets: dict[str, Bucket] = {}
        self.access_tokens: dict[str, tuple[float, set[str]]] = {}
        self.seen_assertions: set[str] = set()
        self.app = self._build()

    # --- helpers --------------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        if name not in self.buckets:
            limit = self.config.bucket_limits.get(name, self.config.rate_limit)
            self.buckets[name] = Bucket(limit, self.config.rate_window_seconds)
        return self.buckets[name]

    def rate_headers(self, bucket: Bucket) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(bucket.limit),
            "X-Rate-Limit-Remaining": str(max(bucket.remaining, 0)),
            "X-Rate-Limit-Reset": str(int(bucket.reset_at) + 1),
        }

    def authorize(self, request: Request, scope: str) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        if header.startswith("SSWS ") and secrets.compare_digest(header[5:], self.config.api_token):
            return None
        if header.startswith("Bearer "):
            grant = self.access_tokens.get(header[7:])
            if grant is not None and grant[0] > time.time():
                if scope not in grant[1]:
                    return okta_error(403, "E0000006", "You do not have permission to perform the requested action")
                return None
        return okta_error(401, "E0000011", "Invalid token provided")

    def page(
        self,
        request: Request,
        items: Sequence[Any],
        kind: str,
        *,
        polling: bool = False,
        render: Callable[[Any], Any] | None = None,
    ) -> Response:
        """One page of `items`; `render` turns just that page's items into their JSON (a 100,000-user
        org rendered whole for each of its 200 pages made a full listing quadratic)."""
        limit_text = request.query_params.get("limit")
        limit = min(int(limit_text), PAGE_MAX[kind]) if limit_text and limit_text.isdigit() else PAGE_DEFAULT[kind]
        if self.config.page_max is not None:
            limit = min(limit, self.config.page_max)
        limit = max(limit, 1)
        after = request.query_params.get("after")
        start = int(base64.urlsafe_b64decode(after.encode()).decode()) if after else 0
        chunk = list(items[start : start + limit])
        if render is not None:
            chunk = [render(item) for item in chunk]
        base = str(request.url).split("?")[0]
        params = {k: v for k, v in request.query_params.items() if k != "after"}
        query = "&".join(f"{k}={v}" for k, v in params.items())
        links = [f'<{base}{"?" + query if query else ""}>; rel="self"']
        if start + limit < len(items) or polling:
            # A polling System Log query (no `until`) always has a next link: events keep coming.
            cursor = base64.urlsafe_b64encode(str(min(start + limit, len(items))).encode()).decode()
            separator = "&" if query else ""
            links.append(f'<{base}?{query}{separator}after={cursor}>; rel="next"')
        if self.config.link_next_first:
            links.reverse()
        response = JSONResponse(chunk)
        for link in links:
            response.headers.append("Link", link)
        return response

    # --- app ------------------------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(title="Okta simulator", docs_url=None, redoc_url=None, openapi_url=None)
        sim = self

        @app.middleware("http")
        async def guard(request: Request, call_next: Any) -> Response:
            path = request.url.path
            if not path.startswith("/api/v1/"):
                return await call_next(request)  # type: ignore[no-any-return]
            bucket_name = path.split("/")[3] if len(path.split("/")) > 3 else "other"
            bucket = sim.bucket(bucket_name)
            endpoint = re.sub(r"/(00u|00g|0oa)[A-Za-z0-9]+", "/{id}", path)
            sim.stats.calls[endpoint] += 1
            for fault in sim.faults:
                if re.search(fault.path, path) and fault.take():
                    sim.stats.faults += 1
                    if fault.kind == "timeout":
                        await asyncio.sleep(sim.config.timeout_seconds)
                    if fault.kind == "429":
                        bucket.remaining = 0
                        return okta_error(
                            429,
                            "E0000047",
                            "API call exceeded rate limit due to too many requests.",
                            sim.rate_headers(bucket),
                        )
                    if fault.kind == "403":
                        return okta_error(403, "E0000006", "You do not have permission to perform the requested action")
                    if fault.kind == "truncate":
                        response = await call_next(request)
                        body = b"".join([chunk async for chunk in response.body_iterator])
                        cut = body[: max(1, len(body) // 2)]
                        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
                        return Response(cut, status_code=200, headers=headers, media_type="application/json")
                    return okta_error(500, "E0000009", "Internal Server Error")
            taken = bucket.take(time.time())
            low = sim.stats.min_remaining.get(bucket_name)
            sim.stats.min_remaining[bucket_name] = bucket.remaining if low is None else min(low, bucket.remaining)
            if not taken:
                sim.stats.throttled += 1
                return okta_error(
                    429, "E0000047", "API call exceeded rate limit due to too many requests.", sim.rate_headers(bucket)
                )
            denied = sim.authorize(request, SCOPES.get(bucket_name, "okta.apps.read"))
            response = denied or await call_next(request)
            for key, value in sim.rate_headers(bucket).items():
                response.headers[key] = value
            return response

        @app.post("/oauth2/v1/token")
        async def token(request: Request) -> Response:
            form = await request.form()
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return JSONResponse({"error": "invalid_client", "error_description": "private_key_jwt only"}, 401)
            assertion = str(form.get("client_assertion", ""))
            if not sim.config.oauth_public_key_pem:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            audience = f"{str(request.base_url).rstrip('/')}/oauth2/v1/token"
            try:
                claims = jwt.decode(
                    assertion,
                    sim.config.oauth_public_key_pem,
                    algorithms=["RS256", "ES256"],
                    audience=audience,
                    options={"require": ["exp", "iss", "sub", "aud"]},
                )
            except jwt.PyJWTError as error:
                return JSONResponse({"error": "invalid_client", "error_description": str(error)}, status_code=401)
            if claims["iss"] != sim.config.oauth_client_id or claims["sub"] != sim.config.oauth_client_id:
                return JSONResponse({"error": "invalid_client", "error_description": "iss/sub"}, status_code=401)
            if claims["exp"] - time.time() > 3600:
                return JSONResponse({"error": "invalid_client", "error_description": "exp > 1h"}, status_code=401)
            jti = str(claims.get("jti", ""))
            if jti and jti in sim.seen_assertions:
                return JSONResponse({"error": "invalid_client", "error_description": "jti replayed"}, status_code=401)
            sim.seen_assertions.add(jti)
            scopes = set(str(form.get("scope", "")).split())
            access = secrets.token_urlsafe(32)
            sim.access_tokens[access] = (time.time() + 3600, scopes)
            return JSONResponse(
                {"token_type": "Bearer", "expires_in": 3600, "access_token": access, "scope": " ".join(sorted(scopes))}
            )

        @app.get("/api/v1/apps/{app_id}/users")
        async def app_users(request: Request, app_id: str) -> Response:
            if app_id != sim.org.app_id:
                return okta_error(404, "E0000007", f"Not found: Resource not found: {app_id} (AppInstance)")
            expand = request.query_params.get("expand") == "user"
            assignments = list(sim.org.assignments.values())
            return sim.page(request, assignments, "app_users", render=lambda a: sim.org.app_user(a, expand))

        @app.get("/api/v1/apps/{app_id}/users/{user_id}")
        async def app_user(request: Request, app_id: str, user_id: str) -> Response:
            assignment = sim.org.assignments.get(user_id) if app_id == sim.org.app_id else None
            if assignment is None:
                return okta_error(404, "E0000007", f"Not found: Resource not found: {user_id} (AppUser)")
            return JSONResponse(sim.org.app_user(assignment, request.query_params.get("expand") == "user"))

        @app.get("/api/v1/logs")
        async def logs(request: Request) -> Response:
            """The System Log: `since` (inclusive) and `until` (exclusive) bound `published`; without
            `until` it is a polling query whose next link never ends. `filter` understands the
            clauses kubescim sends: `eventType eq "…"` (or-ed) and `target.id eq "…"` (and-ed)."""
            params = request.query_params
            now = dt.datetime.now(dt.UTC)
            oldest = timestamp(now - dt.timedelta(days=LOG_RETENTION_DAYS))
            since = max(params.get("since") or timestamp(now - dt.timedelta(days=7)), oldest)
            until = params.get("until")
            wanted_types = set(re.findall(r'eventType eq "([^"]+)"', params.get("filter") or ""))
            wanted_targets = set(re.findall(r'target\.id eq "([^"]+)"', params.get("filter") or ""))
            events = [
                e
                for e in sim.org.log
                if e.published >= since
                and (until is None or e.published < until)
                and (not wanted_types or e.event_type in wanted_types)
                and (not wanted_targets or wanted_targets <= {t[1] for t in e.targets})
            ]
            if params.get("sortOrder") == "DESCENDING":
                events.reverse()
            return sim.page(request, [e.to_api() for e in events], "logs", polling=until is None)

        @app.get("/api/v1/apps/{app_id}/groups")
        async def app_groups(request: Request, app_id: str) -> Response:
            if app_id != sim.org.app_id:
                return okta_error(404, "E0000007", "Not found")
            assigned = [sim.org.app_group(g, i) for i, g in enumerate(sorted(sim.org.group_assignments))]
            return sim.page(request, assigned, "app_groups")

        @app.get("/api/v1/apps/{app_id}/group-push/mappings")
        async def push_mappings(request: Request, app_id: str) -> Response:
            if app_id != sim.org.app_id:
                return okta_error(404, "E0000007", "Not found")
            return sim.page(request, [m.to_api() for m in sim.org.push_mappings.values()], "push")

        @app.get("/api/v1/groups/{group_id}")
        async def group(group_id: str) -> Response:
            found = sim.org.groups.get(group_id)
            if found is None:
                return okta_error(404, "E0000007", f"Not found: Resource not found: {group_id} (UserGroup)")
            return JSONResponse(found.to_api())

        @app.get("/api/v1/groups/{group_id}/users")
        async def group_users(request: Request, group_id: str) -> Response:
            found = sim.org.groups.get(group_id)
            if found is None:
                return okta_error(404, "E0000007", "Not found")
            members = [sim.org.users[u] for u in sorted(found.members) if u in sim.org.users]
            return sim.page(request, members, "group_users", render=User.to_api)

        @app.get("/api/v1/groups")
        async def groups(request: Request) -> Response:
            clauses = _since(request.query_params.get("search") or "")
            if clauses:  # clauses are or-ed, as kubescim sends them
                items = [g.to_api() for g in sim.org.groups.values()]
                return sim.page(request, [g for g in items if any(g[key] > since for key, since in clauses)], "groups")
            return sim.page(request, list(sim.org.groups.values()), "groups", render=Group.to_api)

        @app.get("/api/v1/users")
        async def users(request: Request) -> Response:
            clauses = _since(request.query_params.get("search") or "")
            if clauses:
                items = [u.to_api() for u in sim.org.users.values()]
                found = [u for u in items if any(u.get(key, "") > since for key, since in clauses)]
                return sim.page(request, found, "users")
            listed = [u for u in sim.org.users.values() if u.status != "DEPROVISIONED"]
            return sim.page(request, listed, "users", render=User.to_api)

        @app.get("/__sim/stats")
        async def stats() -> Response:
            return JSONResponse(
                {
                    "calls": dict(sim.stats.calls),
                    "total": sim.stats.total(),
                    "throttled": sim.stats.throttled,
                    "faults": sim.stats.faults,
                    "provisioned": len([u for u in sim.org.users.values() if u.status in ACTIVE_USER_STATUSES]),
                }
            )

        @app.post("/__sim/faults")
        async def add_fault(request: Request) -> Response:
            body = json.loads(await request.body())
            sim.faults.append(Fault(**body))
            return JSONResponse({"faults": len(sim.faults)})

        @app.delete("/__sim/faults")
        async def clear_faults() -> Response:
            sim.faults.clear()
            return JSONResponse({"faults": 0})

        return app

    def reset_stats(self) -> None:
        self.stats = Stats()


def _since(search: str) -> list[tuple[str, str]]:
    """The `<timestamp attribute> gt "<ts>"` clauses of a search expression."""
    return re.findall(r'(lastUpdated|lastMembershipUpdated)\s+gt\s+"([^"]+)"', search)
