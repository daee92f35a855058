"""A thin async client for the four Okta Management API reads the reconciler needs.

Not the official SDK: it folds repeated `Link` headers into one and stops after page one when `next`
is not last, and it is ~100 MB of dependencies. Here every response's Link headers are read one by
one and every `rel="next"` is followed; the largest page size of each endpoint is asked for;
X-Rate-Limit-* headers are read on every response and the client keeps to a share of the remaining
budget (the org's limits are shared with all its integrations); 429 waits for X-Rate-Limit-Reset;
5xx and network errors are retried with jittered backoff. Any failure that survives the retries
raises OktaFetchError: the caller must then treat its snapshot as partial.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

log = logging.getLogger("kubescim.okta")
LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?([^";]+)"?')
MAX_LIMIT = {
    "app_users": 500,
    "app_groups": 200,
    "push": 1000,
    "group_users": 1000,
    "users": 200,
    "groups": 10000,
    "logs": 1000,
}
# The System Log events that show what lastUpdated filters cannot: assignments to and from the app
# (an assignment changes the app user, not the user, so the user's lastUpdated does not move).
APP_ASSIGNMENT_EVENTS = ("application.user_membership.add", "application.user_membership.remove")


class OktaFetchError(Exception):
    """A read failed after retries: whatever was fetched is incomplete. `status`: Okta's HTTP status
    when it answered with a 4xx."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OktaCredentials:
    org_url: str
    api_token: str | None = None
    client_id: str | None = None
    private_key_pem: str | None = None
    key_id: str | None = None
    scopes: tuple[str, ...] = ("okta.users.read", "okta.groups.read", "okta.apps.read")

    def __repr__(self) -> str:  # never print secrets
        return f"OktaCredentials(org_url={self.org_url!r}, auth={'SSWS' if self.api_token else 'OAuth'})"


@dataclass
class Budget:
    """What Okta said about one rate-limit bucket."""

    limit: int = 0
    remaining: int = 0
    reset: float = 0.0


@dataclass
class ClientStats:
    calls: int = 0
    rate_limit_waits: int = 0
    retries: int = 0
    throttled: int = 0
    pages: dict[str, int] = field(default_factory=dict)
    server_time: dt.datetime | None = None  # Okta's clock (the Date header of its first answer)
    local_time: dt.datetime | None = None  # ours at that moment


def next_link(headers: httpx.Headers) -> str | None:
    """The rel="next" URL among all Link headers, whichever order they come in."""
    for header in headers.get_list("link"):
        for url, rel in LINK.findall(header):
            if rel.strip().lower() == "next":
                return str(url)
    return None


class OktaClient:
    def __init__(
        self,
        credentials: OktaCredentials,
        *,
        budget_share: float = 0.5,
        concurrency: int = 4,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.credentials = credentials
        self.budget_share = budget_share
        self.max_retries = max_retries
        self.stats = ClientStats()
        self.budgets: dict[str, Budget] = {}
        self._semaphore = asyncio.Semaphore(concurrency)
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=credentials.org_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Accept": "application/json", "User-Agent": "kubescim-reconciler/0.1"},
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OktaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- auth -----------------------------------------------------------------------------------

    async def _authorization(self) -> str:
        if self.credentials.api_token:
            return f"SSWS {self.credentials.api_token}"
        async with self._token_lock:
            if self._token is None or self._token[1] - time.time() < 300:  # renew 5 minutes early
                self._token = await self._fetch_token()
            return f"Bearer {self._token[0]}"

    async def _fetch_token(self) -> tuple[str, float]:
        client_id, key = self.credentials.client_id, self.credentials.private_key_pem
        if not client_id or not key:
            raise OktaFetchError("OAuth needs a client id and a private key")
        token_url = f"{self.credentials.org_url.rstrip('/')}/oauth2/v1/token"
        now = int(time.time())
        algorithm = "ES256" if _is_ec(key) else "RS256"
        headers = {"kid": self.credentials.key_id} if self.credentials.key_id else None
        assertion = jwt.encode(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": token_url,
                "iat": now,
                "exp": now + 300,
                "jti": uuid.uuid4().hex,
            },
            key,
            algorithm=algorithm,
            headers=headers,
        )
        self.stats.calls += 1
        try:
            response = await self._http.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": " ".join(self.credentials.scopes),
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": assertion,
                },
            )
        except httpx.HTTPError as error:
            raise OktaFetchError(f"token request failed: {type(error).__name__}") from None
        if response.status_code != 200:
            raise OktaFetchError(f"token request refused: HTTP {response.status_code} {response.text[:200]}")
        body = response.json()
        return str(body["access_token"]), time.time() + float(body.get("expires_in", 3600))

    # --- requests -------------------------------------------------------------------------------

    @staticmethod
    def _bucket(url: str) -> str:
        path = httpx.URL(url).path
        parts = path.split("/")
        return parts[3] if len(parts) > 3 else "other"

    async def _respect_budget(self, bucket: str) -> None:
        """Keep at most `budget_share` of the remaining budget for ourselves: wait for the reset when
        what is left would dip into the share reserved for the org's other integrations."""
        budget = self.budgets.get(bucket)
        if budget is None or budget.limit <= 0:
            return
        reserve = budget.limit * (1 - self.budget_share)
        if budget.remaining > reserve:
            return
        wait = budget.reset - time.time()
        if wait > 0:
            self.stats.rate_limit_waits += 1
            log.info("waiting for the Okta rate-limit window", extra={"bucket": bucket, "seconds": round(wait, 1)})
            await asyncio.sleep(wait + random.uniform(0, 0.25))
        budget.remaining = budget.limit  # a new window

    def _record_budget(self, bucket: str, headers: httpx.Headers) -> None:
        try:
            limit = int(headers.get("x-rate-limit-limit", "0"))
            remaining = int(headers.get("x-rate-limit-remaining", "0"))
            reset = float(headers.get("x-rate-limit-reset", "0"))
        except ValueError:
            return
        if limit or reset:
            self.budgets[bucket] = Budget(limit, remaining, reset)

    async def get(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        bucket = self._bucket(url if url.startswith("http") else self.credentials.org_url + url)
        attempt = 0
        while True:
            await self._respect_budget(bucket)
            async with self._semaphore:
                self.stats.calls += 1
                try:
                    response = await self._http.get(
                        url, params=params, headers={"Authorization": await self._authorization()}
                    )
                except httpx.TimeoutException:
                    response = None
                    problem = "timeout"
                except httpx.TransportError as error:
                    response = None
                    problem = type(error).__name__
            if response is not None:
                self._record_budget(bucket, response.headers)
                if response.status_code == 429:
                    self.stats.throttled += 1
                    budget = self.budgets.get(bucket, Budget())
                    wait = max(budget.reset - time.time(), 1.0)
                    self.stats.rate_limit_waits += 1
                    log.warning("Okta rate limit hit", extra={"bucket": bucket, "seconds": round(wait, 1)})
                    await asyncio.sleep(wait + random.uniform(0, 0.5))
                    attempt += 1
                    if attempt > self.max_retries * 4:
                        raise OktaFetchError(f"GET {httpx.URL(url).path}: still rate limited")
                    continue
                if response.status_code < 500:
                    self._note_clock(response)
                    if response.status_code >= 400:
                        raise OktaFetchError(
                            f"GET {httpx.URL(url).path}: HTTP {response.status_code} {response.text[:200]}",
                            response.status_code,
                        )
                    return response
                problem = f"HTTP {response.status_code}"
            attempt += 1
            self.stats.retries += 1
            if attempt > self.max_retries:
                raise OktaFetchError(f"GET {httpx.URL(url).path}: {problem} after {self.max_retries} retries")
            await asyncio.sleep(min(2**attempt * 0.2, 10) * random.uniform(0.5, 1.5))

    def _note_clock(self, response: httpx.Response) -> None:
        if self.stats.server_time is not None or "date" not in response.headers:
            return
        with contextlib.suppress(TypeError, ValueError):
            self.stats.server_time = email.utils.parsedate_to_datetime(response.headers["date"])
            self.stats.local_time = dt.datetime.now(dt.UTC)

    async def pages(self, path: str, kind: str, params: dict[str, Any] | None = None) -> AsyncIterator[list[Any]]:
        """Each page of a listing, following rel="next" until there is none."""
        url: str | None = path
        query: dict[str, Any] | None = {"limit": MAX_LIMIT[kind], **(params or {})}
        while url is not None:
            response = await self.get(url, query)
            try:
                items = response.json()
            except ValueError:
                raise OktaFetchError(f"GET {httpx.URL(url).path}: truncated or invalid JSON body") from None
            if not isinstance(items, list):
                raise OktaFetchError(f"GET {httpx.URL(url).path}: expected a JSON array")
            self.stats.pages[kind] = self.stats.pages.get(kind, 0) + 1
            yield items
            url, query = next_link(response.headers), None  # the next URL carries its own query

    async def list_all(self, path: str, kind: str, params: dict[str, Any] | None = None) -> list[Any]:
        items: list[Any] = []
        async for page in self.pages(path, kind, params):
            items.extend(page)
        return items

    # --- the reads the reconciler uses ----------------------------------------------------------

    async def app_users(self, app_id: str) -> list[dict[str, Any]]:
        return await self.list_all(f"/api/v1/apps/{app_id}/users", "app_users", {"expand": "user"})

    async def app_groups(self, app_id: str) -> list[dict[str, Any]]:
        """Groups assigned to the app (their members get it); pushing them is separate."""
        return await self.list_all(f"/api/v1/apps/{app_id}/groups", "app_groups")

    async def push_mappings(self, app_id: str) -> list[dict[str, Any]]:
        return await self.list_all(f"/api/v1/apps/{app_id}/group-push/mappings", "push")

    async def app_user(self, app_id: str, user_id: str) -> dict[str, Any] | None:
        """One app user (with its Okta user), or None when the user is not assigned to the app."""
        try:
            response = await self.get(f"/api/v1/apps/{app_id}/users/{user_id}", {"expand": "user"})
        except OktaFetchError as error:
            if error.status == 404:
                return None
            raise
        try:
            return dict(response.json())
        except ValueError:
            raise OktaFetchError(f"app user {user_id}: invalid JSON body") from None

    async def assignment_events(self, app_id: str, since: str, until: str) -> list[dict[str, Any]]:
        """The app's assignment events published in [since, until) (a bounded System Log query:
        it ends; a polling one would not)."""
        types = " or ".join(f'eventType eq "{t}"' for t in APP_ASSIGNMENT_EVENTS)
        params = {"since": since, "until": until, "filter": f'({types}) and target.id eq "{app_id}"'}
        return await self.list_all("/api/v1/logs", "logs", {**params, "sortOrder": "ASCENDING"})

    async def users_changed_since(self, since: str) -> list[dict[str, Any]]:
        """Okta users whose profile or status changed after `since` (DEPROVISIONED ones included)."""
        return await self.list_all("/api/v1/users", "users", {"search": f'lastUpdated gt "{since}"'})

    async def groups_changed_since(self, since: str) -> list[dict[str, Any]]:
        """Groups renamed or whose membership changed after `since`."""
        search = f'lastUpdated gt "{since}" or lastMembershipUpdated gt "{since}"'
        return await self.list_all("/api/v1/groups", "groups", {"search": search})

    async def group(self, group_id: str) -> dict[str, Any]:
        response = await self.get(f"/api/v1/groups/{group_id}")
        try:
            return dict(response.json())
        except ValueError:
            raise OktaFetchError(f"group {group_id}: invalid JSON body") from None

    async def group_member_ids(self, group_id: str) -> list[str]:
        members = await self.list_all(f"/api/v1/groups/{group_id}/users", "group_users")
        return [str(m["id"]) for m in members]


def _is_ec(pem: str) -> bool:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        return isinstance(serialization.load_pem_private_key(pem.encode(), password=None), ec.EllipticCurvePrivateKey)
    except ValueError:
        return False
