"""What the routes depend on (FastAPI dependencies): the shared Gateway built in the lifespan, the
authenticated provider of a request, its JSON body, and list and search queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request

from kubescim.constants import ANNOTATION_LAST_MODIFIED, SCIM_GROUPS, SCIM_USERS
from kubescim.informer import Informer
from kubescim.kube import Kube, KubeConfig
from kubescim.scim.errors import ScimError, ScimType, bad_request, unavailable
from kubescim.tokens import PreviousToken, Verdict, bearer_value
from scim_gateway.index import Index
from scim_gateway.observability import Metrics
from scim_gateway.providers import Provider, ProviderRegistry
from scim_gateway.responses import SCIM_JSON
from scim_gateway.service import Query as ListQuery
from scim_gateway.service import ScimService
from scim_gateway.settings import GatewaySettings
from scim_gateway.store import KubeStore


@dataclass
class Gateway:
    """Everything the routes share: built once in the lifespan, stored on app.state."""

    settings: GatewaySettings
    kube: Kube
    index: Index
    store: KubeStore
    service: ScimService
    providers: ProviderRegistry
    informers: list[Informer]
    metrics: Metrics

    @property
    def ready(self) -> bool:
        return self.providers.synced and all(i.synced.is_set() for i in self.informers)


def _revision(informer: Informer) -> int:
    try:
        return int(informer.resource_version or 0)
    except ValueError:
        return 0


def build_gateway(settings: GatewaySettings, metrics: Metrics) -> Gateway:
    config = KubeConfig.load(settings.kubeconfig)
    kube = Kube(config, timeout=settings.api_timeout_seconds)
    index = Index(ANNOTATION_LAST_MODIFIED)
    store = KubeStore(kube, settings.namespace, index)
    informers = [
        Informer(
            kube,
            SCIM_USERS,
            settings.namespace,
            on_page=index.users.apply_page,
            on_relisted=index.users.drop_unseen,
            on_event=index.users.on_event,
        ),
        Informer(
            kube,
            SCIM_GROUPS,
            settings.namespace,
            on_page=index.groups.apply_page,
            on_relisted=index.groups.drop_unseen,
            on_event=index.groups.on_event,
        ),
    ]
    return Gateway(
        settings=settings,
        kube=kube,
        index=index,
        store=store,
        service=ScimService(
            index,
            store,
            patch_response_member_limit=settings.patch_response_member_limit,
            users_revision=lambda: _revision(informers[0]),
        ),
        providers=ProviderRegistry(kube, settings.namespace),
        informers=informers,
        metrics=metrics,
    )


# --- dependencies -------------------------------------------------------------------------------


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def unauthorized_detail(provider: str, verdict: Verdict, previous: PreviousToken | None) -> str:
    """Why a request is refused, revealing nothing a caller does not already hold: only the holder of
    a replaced token learns that it was replaced, and when."""
    if verdict is Verdict.MISSING:
        return "missing credentials: send the provisioning token as the Authorization header (Bearer <token>)"
    if verdict is Verdict.PREVIOUS and previous is not None:
        return (
            f"not the current token of provider {provider} (rotated at {previous.replaced_at}): "
            "enter the new provisioning token in the identity provider"
        )
    return f"unknown token for provider {provider}"


@dataclass(frozen=True)
class Context:
    """The authenticated provider of a SCIM request and its base URL."""

    provider: Provider
    base_url: str


async def scim_context(
    request: Request,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Context:
    if not gateway.ready:
        raise unavailable("the gateway is starting: caches not synced yet", retry_after=2)
    name = request.path_params.get("provider")
    providers = gateway.providers.providers
    if name is None:
        name = gateway.settings.default_provider or (next(iter(providers)) if len(providers) == 1 else None)
        if name is None:
            raise ScimError(404, "no default provider: use /providers/{name}/scim/v2")
    provider = providers.get(name)
    # An unknown provider answers like an unknown token, so provider names cannot be probed.
    if provider is None:
        raise ScimError(401, unauthorized_detail(name, Verdict.UNKNOWN, None))
    verdict, previous = gateway.providers.authenticate(provider, bearer_value(authorization))
    if verdict is not Verdict.ACCEPTED:
        raise ScimError(401, unauthorized_detail(name, verdict, previous))
    if not provider.spec.scim.enabled:
        raise ScimError(403, f"SCIM is disabled for provider {name}")
    if provider.limiter is not None:
        wait = provider.limiter.allow()
        if wait > 0:
            raise ScimError(429, "rate limit exceeded", ScimType.TOO_MANY, {"Retry-After": str(max(1, round(wait)))})
    base = gateway.settings.public_base_url or str(request.base_url).rstrip("/")
    prefix = f"/providers/{name}/scim/v2" if "provider" in request.path_params else "/scim/v2"
    return Context(provider, base.rstrip("/") + prefix)


async def json_body(request: Request, gateway: Annotated[Gateway, Depends(get_gateway)]) -> Any:
    """The request body as JSON: size-limited, duplicate keys refused, SCIM or plain JSON content types."""
    limit = gateway.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ScimError(413, f"request body larger than {limit} bytes", ScimType.TOO_MANY)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ScimError(413, f"request body larger than {limit} bytes", ScimType.TOO_MANY)
        chunks.append(chunk)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and "json" not in content_type:
        raise ScimError(415, f"unsupported content type {content_type!r}: send application/scim+json")
    try:
        return json.loads(
            b"".join(chunks) or b"null", object_pairs_hook=_no_duplicate_keys, parse_constant=_not_a_json_number
        )
    except RecursionError:
        raise bad_request("JSON nested too deeply", ScimType.INVALID_SYNTAX) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_request(f"malformed JSON: {str(error)[:200]}", ScimType.INVALID_SYNTAX) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:80]!r}")
        result[key] = value
    return result


def _not_a_json_number(constant: str) -> Any:
    """NaN and Infinity are Python's extensions, not JSON (RFC 8259 §6): refused, not stored."""
    raise ValueError(f"{constant} is not a JSON number")


PROVIDER_MAX_LENGTH = 63  # an IdentityProvider's name is a label value


async def provider_path(
    provider: Annotated[str, Path(description="IdentityProvider name", max_length=PROVIDER_MAX_LENGTH)],
) -> str:
    """Declares the provider path parameter (in the OpenAPI document) of /providers/{provider}/scim/v2."""
    return provider


Ctx = Annotated[Context, Depends(scim_context)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
Body = Annotated[Any, Depends(json_body)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
RESOURCE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            SCIM_JSON: {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def list_query(
    gateway: GatewayDep,
    filter: str | None = None,
    startIndex: Annotated[str | None, Query()] = None,
    count: str | None = None,
    sortBy: Annotated[str | None, Query()] = None,
    sortOrder: Annotated[str | None, Query()] = None,
    attributes: str | None = None,
    excludedAttributes: Annotated[str | None, Query()] = None,
) -> ListQuery:
    return ListQuery.parse(
        filter=filter,
        start_index=startIndex,
        count=count,
        sort_by=sortBy,
        sort_order=sortOrder,
        attributes=attributes,
        excluded_attributes=excludedAttributes,
        max_count=gateway.settings.max_page_size,
        default_count=gateway.settings.default_page_size,
    )


ListQueryDep = Annotated[ListQuery, Depends(list_query)]


def search_query(body: Any, gateway: Gateway) -> ListQuery:
    if not isinstance(body, dict):
        raise bad_request("the search body must be a JSON object", ScimType.INVALID_SYNTAX)

    def text(key: str) -> str | None:
        value = body.get(key)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if value is not None and not isinstance(value, str):
            raise bad_request(f"{key} must be a string")
        return value

    return ListQuery.parse(
        filter=text("filter"),
        start_index=body.get("startIndex"),
        count=body.get("count"),
        sort_by=text("sortBy"),
        sort_order=text("sortOrder"),
        attributes=text("attributes"),
        excluded_attributes=text("excludedAttributes"),
        max_count=gateway.settings.max_page_size,
        default_count=gateway.settings.default_page_size,
    )
