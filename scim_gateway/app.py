"""The SCIM 2.0 HTTP API (RFC 7644) on FastAPI. Routes are thin: parse, authenticate, call the service.

Served at /scim/v2 (the default provider) and /providers/{provider}/scim/v2 (any provider).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from kubescim.constants import ANNOTATION_LAST_MODIFIED, SCIM_GROUPS, SCIM_USERS
from kubescim.informer import Informer
from kubescim.kube import ApiUnavailable, Kube, KubeConfig
from kubescim.scim.errors import ScimError, ScimType, bad_request, unavailable
from kubescim.tokens import PreviousToken, Verdict, bearer_value
from scim_gateway import discovery
from scim_gateway.auth_report import RejectionReporter
from scim_gateway.index import Index
from scim_gateway.observability import Metrics, RequestMiddleware
from scim_gateway.paths import NormalizedPaths
from scim_gateway.providers import Provider, ProviderRegistry
from scim_gateway.service import Query as ListQuery
from scim_gateway.service import ScimService
from scim_gateway.settings import GatewaySettings
from scim_gateway.store import KubeStore

log = logging.getLogger("kubescim.gateway")
SCIM_JSON = "application/scim+json"


class ScimResponse(JSONResponse):
    media_type = SCIM_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def scim_error_response(error: ScimError) -> ScimResponse:
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="kubescim"')
    return ScimResponse(error.body(), status_code=error.status, headers=headers)


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
        service=ScimService(index, store, patch_response_member_limit=settings.patch_response_member_limit),
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
        return json.loads(b"".join(chunks) or b"null", object_pairs_hook=_no_duplicate_keys)
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


async def provider_path(provider: Annotated[str, Path(description="IdentityProvider name", max_length=63)]) -> str:
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


def _search_query(body: Any, gateway: Gateway) -> ListQuery:
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


# --- routes -------------------------------------------------------------------------------------

scim = APIRouter()


@scim.get("/Users", tags=["Users"])
async def list_users(ctx: Ctx, gateway: GatewayDep, query: ListQueryDep) -> ScimResponse:
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, users=True))


@scim.post("/Users/.search", tags=["Users"], openapi_extra=RESOURCE_BODY)
async def search_users(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    query = _search_query(body, gateway)
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, users=True))


@scim.post("/Users", status_code=201, tags=["Users"], openapi_extra=RESOURCE_BODY)
async def create_user(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    resource = await gateway.service.create_user(ctx.provider.name, body, ctx.base_url)
    return ScimResponse(resource, 201, headers=_resource_headers(resource))


@scim.get("/Users/{user_id}", tags=["Users"])
async def get_user(ctx: Ctx, gateway: GatewayDep, user_id: str, query: ListQueryDep) -> ScimResponse:
    resource = await gateway.service.get_user(ctx.provider.name, user_id, ctx.base_url)
    return _projected(resource, query, "urn:ietf:params:scim:schemas:core:2.0:User")


@scim.put("/Users/{user_id}", tags=["Users"], openapi_extra=RESOURCE_BODY)
async def replace_user(
    ctx: Ctx, gateway: GatewayDep, user_id: str, body: Body, if_match: IfMatch = None
) -> ScimResponse:
    resource = await gateway.service.replace_user(ctx.provider.name, user_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=_resource_headers(resource))


@scim.patch("/Users/{user_id}", tags=["Users"], openapi_extra=RESOURCE_BODY)
async def patch_user(ctx: Ctx, gateway: GatewayDep, user_id: str, body: Body, if_match: IfMatch = None) -> ScimResponse:
    resource = await gateway.service.patch_user(ctx.provider.name, user_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=_resource_headers(resource))


@scim.delete("/Users/{user_id}", status_code=204, tags=["Users"])
async def delete_user(ctx: Ctx, gateway: GatewayDep, user_id: str, if_match: IfMatch = None) -> Response:
    await gateway.service.delete_user(ctx.provider.name, user_id, if_match)
    return Response(status_code=204)


@scim.get("/Groups", tags=["Groups"])
async def list_groups(ctx: Ctx, gateway: GatewayDep, query: ListQueryDep) -> ScimResponse:
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, users=False))


@scim.post("/Groups/.search", tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def search_groups(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    query = _search_query(body, gateway)
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, users=False))


@scim.post("/Groups", status_code=201, tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def create_group(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    resource = await gateway.service.create_group(ctx.provider.name, body, ctx.base_url)
    return ScimResponse(resource, 201, headers=_resource_headers(resource))


@scim.get("/Groups/{group_id}", tags=["Groups"])
async def get_group(ctx: Ctx, gateway: GatewayDep, group_id: str, query: ListQueryDep) -> ScimResponse:
    resource = await gateway.service.get_group(
        ctx.provider.name, group_id, ctx.base_url, query.attributes, query.excluded_attributes
    )
    return ScimResponse(resource, headers=_resource_headers(resource))


@scim.put("/Groups/{group_id}", tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def replace_group(
    ctx: Ctx, gateway: GatewayDep, group_id: str, body: Body, if_match: IfMatch = None
) -> ScimResponse:
    resource = await gateway.service.replace_group(ctx.provider.name, group_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=_resource_headers(resource))


@scim.patch("/Groups/{group_id}", tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def patch_group(
    ctx: Ctx, gateway: GatewayDep, group_id: str, body: Body, if_match: IfMatch = None
) -> ScimResponse:
    resource = await gateway.service.patch_group(ctx.provider.name, group_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=_resource_headers(resource))


@scim.delete("/Groups/{group_id}", status_code=204, tags=["Groups"])
async def delete_group(ctx: Ctx, gateway: GatewayDep, group_id: str, if_match: IfMatch = None) -> Response:
    await gateway.service.delete_group(ctx.provider.name, group_id, if_match)
    return Response(status_code=204)


@scim.post("/.search", tags=["Search"], openapi_extra=RESOURCE_BODY)
async def search_all(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    query = _search_query(body, gateway)
    everything = dataclasses.replace(query, start_index=1, count=1_000_000)
    users = await gateway.service.list_resources(ctx.provider.name, everything, ctx.base_url, users=True)
    groups = await gateway.service.list_resources(ctx.provider.name, everything, ctx.base_url, users=False)
    resources = users["Resources"] + groups["Resources"]
    page = resources[query.start_index - 1 : query.start_index - 1 + query.count]
    return ScimResponse(
        {
            "schemas": users["schemas"],
            "totalResults": len(resources),
            "itemsPerPage": len(page),
            "startIndex": query.start_index,
            "Resources": page,
        }
    )


@scim.get("/ServiceProviderConfig", tags=["Discovery"])
async def service_provider_config(ctx: Ctx, gateway: GatewayDep) -> ScimResponse:
    return ScimResponse(discovery.service_provider_config(ctx.base_url, gateway.settings))


def _resource_types(ctx: Context, gateway: Gateway) -> list[dict[str, Any]]:
    learned = gateway.index.learned.for_provider(ctx.provider.name)
    urns = [s.id for s in discovery.extension_schemas(ctx.provider.spec, learned)]
    return discovery.resource_types(ctx.base_url, urns)


def _schemas(ctx: Context, gateway: Gateway) -> list[dict[str, Any]]:
    return discovery.schemas(ctx.base_url, ctx.provider.spec, gateway.index.learned.for_provider(ctx.provider.name))


@scim.get("/ResourceTypes", tags=["Discovery"])
async def resource_types(ctx: Ctx, gateway: GatewayDep) -> ScimResponse:
    return ScimResponse(discovery.list_response(_resource_types(ctx, gateway)))


@scim.get("/ResourceTypes/{name}", tags=["Discovery"])
async def resource_type(ctx: Ctx, gateway: GatewayDep, name: str) -> ScimResponse:
    return ScimResponse(discovery.find(_resource_types(ctx, gateway), name, "ResourceType"))


@scim.get("/Schemas", tags=["Discovery"])
async def schemas(ctx: Ctx, gateway: GatewayDep) -> ScimResponse:
    return ScimResponse(discovery.list_response(_schemas(ctx, gateway)))


@scim.get("/Schemas/{schema_id}", tags=["Discovery"])
async def schema(ctx: Ctx, gateway: GatewayDep, schema_id: str) -> ScimResponse:
    return ScimResponse(discovery.find(_schemas(ctx, gateway), schema_id, "Schema"))


def _resource_headers(resource: dict[str, Any]) -> dict[str, str]:
    meta = resource.get("meta") or {}
    headers = {}
    if meta.get("location"):
        headers["Location"] = str(meta["location"])
    if meta.get("version"):
        headers["ETag"] = str(meta["version"])
    return headers


def _projected(resource: dict[str, Any], query: ListQuery, core_urn: str) -> ScimResponse:
    from kubescim.scim.projection import parse_attribute_list, project

    projected = project(
        resource,
        parse_attribute_list(query.attributes),
        parse_attribute_list(query.excluded_attributes),
        core_urn,
    )
    return ScimResponse(projected, headers=_resource_headers(resource))


# --- app ----------------------------------------------------------------------------------------


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build_gateway(settings, metrics)
        app.state.gateway = gateway
        gateway.providers.start()
        for informer in gateway.informers:
            informer.start()
        reporter = RejectionReporter(gateway.kube, settings.namespace, gateway.providers)
        reporter.start()
        try:
            yield
        finally:
            await reporter.stop()
            for informer in gateway.informers:
                await informer.stop()
            await gateway.providers.stop()
            await gateway.kube.close()

    app = FastAPI(
        title="kubescim SCIM 2.0 gateway",
        version="0.1.0",
        description="SCIM 2.0 (RFC 7643/7644) Users and Groups, stored as Kubernetes custom resources.",
        lifespan=lifespan,
        default_response_class=ScimResponse,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.add_middleware(NormalizedPaths)
    app.include_router(scim, prefix="/scim/v2")
    app.include_router(scim, prefix="/providers/{provider}/scim/v2", dependencies=[Depends(provider_path)])

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> PlainTextResponse:
        gateway: Gateway = request.app.state.gateway
        if not gateway.ready:
            return PlainTextResponse("caches not synced", status_code=503)
        return PlainTextResponse("ok")

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        metrics.cached.labels("ScimUser").set(len(gateway.index.users.by_id))
        metrics.cached.labels("ScimGroup").set(len(gateway.index.groups.by_id))
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")

    @app.exception_handler(ScimError)
    async def on_scim_error(_request: Request, error: ScimError) -> ScimResponse:
        return scim_error_response(error)

    @app.exception_handler(ApiUnavailable)
    async def on_unavailable(_request: Request, error: ApiUnavailable) -> ScimResponse:
        metrics.api_errors.labels("unavailable").inc()
        log.warning("API server unavailable", extra={"error": str(error)[:300]})
        return scim_error_response(unavailable())

    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, error: RequestValidationError) -> ScimResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return scim_error_response(bad_request(f"invalid request: {where}: {first.get('msg', '')}"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, error: StarletteHTTPException) -> ScimResponse:
        return scim_error_response(ScimError(error.status_code, str(error.detail)))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, error: Exception) -> ScimResponse:
        if isinstance(error, asyncio.TimeoutError | TimeoutError):
            return scim_error_response(unavailable("timed out talking to the API server"))
        metrics.api_errors.labels("internal").inc()
        log.exception("unexpected error")
        return scim_error_response(ScimError(500, "internal error"))

    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app
