"""IdentityProviders as the gateway sees them: which exist, their token hashes, schemas and limits.

IdentityProviders are watched; each provider's token Secret is watched by name (so RBAC can grant
the gateway exactly those Secrets). A rotated token stops working on every replica as soon as the
watch event arrives (milliseconds).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field

from pydantic import ValidationError

from kubescim.api.models import IdentityProviderSpec
from kubescim.constants import IDENTITY_PROVIDERS
from kubescim.informer import Informer
from kubescim.kube import JSON, SECRETS, Kube
from kubescim.tokens import (
    ROTATED_AT_ANNOTATION,
    TOKEN_HASH_KEY,
    PreviousToken,
    Verdict,
    default_secret_name,
    event_hook_hash_from_secret_data,
    hash_from_secret_data,
    judge,
    previous_from_secret_data,
)

log = logging.getLogger(__name__)


@dataclass
class RateLimiter:
    """Token bucket: `rate` requests per second, bursts up to 2 seconds' worth."""

    rate: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.rate * 2

    def allow(self) -> float:
        """0 if allowed now, else the seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.rate * 2, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Rejections:
    """Requests refused for their credentials, not yet reported to the IdentityProvider's status."""

    previous_token: int = 0
    unknown_token: int = 0
    missing_credentials: int = 0
    last_at: float = 0.0  # epoch seconds
    replaced_at: str | None = None  # of the previous token seen last

    @property
    def total(self) -> int:
        return self.previous_token + self.unknown_token + self.missing_credentials


@dataclass
class Provider:
    name: str
    spec: IdentityProviderSpec
    secret_name: str
    secret_key: str
    token_hash: str | None = None
    limiter: RateLimiter | None = None
    previous: tuple[PreviousToken, ...] = ()
    rotated_at: str | None = None  # of the current token (the Secret's annotation)
    rejections: Rejections = field(default_factory=Rejections)
    uid: str = ""  # the IdentityProvider's, so its Events show in `kubectl describe`
    event_hook_hash: str | None = None  # of the Okta Event Hook's shared secret (None: no hook)


class ProviderRegistry:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.providers: dict[str, Provider] = {}
        self._secret_informers: dict[str, Informer] = {}
        self._informer = Informer(
            kube, IDENTITY_PROVIDERS, namespace, on_replace=self._replace, on_event=self._on_event
        )

    @property
    def synced(self) -> bool:
        return self._informer.synced.is_set() and all(i.synced.is_set() for i in self._secret_informers.values())

    def start(self) -> None:
        self._informer.start()

    async def stop(self) -> None:
        await self._informer.stop()
        for informer in self._secret_informers.values():
            await informer.stop()

    def _replace(self, items: list[JSON], _version: str) -> None:
        names = {i["metadata"]["name"] for i in items}
        for name in list(self.providers):
            if name not in names:
                self._drop(name)
        for item in items:
            self._upsert(item)

    def _on_event(self, kind: str, obj: JSON) -> None:
        if kind == "DELETED":
            self._drop(obj["metadata"]["name"])
        else:
            self._upsert(obj)

    def _drop(self, name: str) -> None:
        provider = self.providers.pop(name, None)
        if provider is not None:
            informer = self._secret_informers.pop(provider.secret_name, None)
            if informer is not None and not any(p.secret_name == provider.secret_name for p in self.providers.values()):
                asyncio.get_running_loop().create_task(informer.stop())

    def _upsert(self, obj: JSON) -> None:
        name = obj["metadata"]["name"]
        try:
            spec = IdentityProviderSpec.model_validate(obj.get("spec") or {})
        except ValidationError as error:
            log.error("invalid IdentityProvider spec", extra={"provider": name, "error": str(error)[:300]})
            return
        ref = spec.scim.token_secret_ref
        secret_name = ref.name if ref else default_secret_name(name)
        secret_key = ref.key if ref else TOKEN_HASH_KEY
        previous = self.providers.get(name)
        rate = spec.scim.rate_limit_per_second
        limiter = (
            previous.limiter
            if previous and previous.limiter and rate and previous.limiter.rate == rate
            else (RateLimiter(float(rate)) if rate else None)
        )
        provider = Provider(
            name, spec, secret_name, secret_key, limiter=limiter, uid=str(obj["metadata"].get("uid", ""))
        )
        if previous is not None and previous.secret_name == secret_name and previous.secret_key == secret_key:
            provider.token_hash = previous.token_hash
            provider.previous, provider.rotated_at = previous.previous, previous.rotated_at
            provider.rejections = previous.rejections
            provider.event_hook_hash = previous.event_hook_hash
        self.providers[name] = provider
        if secret_name not in self._secret_informers:
            informer = Informer(
                self.kube,
                SECRETS,
                self.namespace,
                field_selector=f"metadata.name={secret_name}",
                on_replace=functools.partial(self._secret_replace, secret_name),
                on_event=functools.partial(self._secret_event, secret_name),
            )
            self._secret_informers[secret_name] = informer
            informer.start()

    def _secret_replace(self, secret_name: str, items: list[JSON], _version: str) -> None:
        if not items:
            self._set_hash(secret_name, None)
        for item in items:
            self._secret_event(secret_name, "ADDED", item)

    def _secret_event(self, secret_name: str, kind: str, obj: JSON) -> None:
        if kind == "DELETED":
            self._set_hash(secret_name, None)
            return
        data = obj.get("data") or {}
        rotated_at = ((obj.get("metadata") or {}).get("annotations") or {}).get(ROTATED_AT_ANNOTATION)
        for provider in self.providers.values():
            if provider.secret_name == secret_name:
                try:
                    token_hash = hash_from_secret_data(data, provider.secret_key)
                except (ValueError, UnicodeDecodeError):
                    log.error("unreadable token Secret", extra={"provider": provider.name, "secret": secret_name})
                    token_hash = None
                if token_hash != provider.token_hash:
                    provider.rejections = Rejections()  # counts start again at each rotation
                provider.token_hash = token_hash
                provider.previous = previous_from_secret_data(data)
                provider.rotated_at = rotated_at
                try:
                    provider.event_hook_hash = event_hook_hash_from_secret_data(data)
                except (ValueError, UnicodeDecodeError):
                    provider.event_hook_hash = None

    def _set_hash(self, secret_name: str, value: str | None) -> None:
        for provider in self.providers.values():
            if provider.secret_name == secret_name:
                provider.token_hash = value
                if value is None:
                    provider.event_hook_hash = None

    def authenticate(self, provider: Provider, token: str | None) -> tuple[Verdict, PreviousToken | None]:
        """Judge the token; count a refusal for the provider's status (never the token itself)."""
        verdict, previous = judge(token, provider.token_hash, provider.previous)
        if verdict is not Verdict.ACCEPTED:
            counts = provider.rejections
            counts.last_at = time.time()
            if verdict is Verdict.PREVIOUS:
                counts.previous_token += 1
                counts.replaced_at = previous.replaced_at if previous else None
            elif verdict is Verdict.UNKNOWN:
                counts.unknown_token += 1
            else:
                counts.missing_credentials += 1
        return verdict, previous
