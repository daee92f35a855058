"""The SCIM 2.0 HTTP API (RFC 7644) on FastAPI: the composition root. Routes (one module per resource in
`routes/`) are thin: parse, authenticate (deps), call the service.

Served at /scim/v2 (the default provider) and /providers/{provider}/scim/v2 (any provider).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from kubescim.kube import ApiUnavailable
from kubescim.scim.errors import ScimError, bad_request, unavailable
from scim_gateway.auth_report import RejectionReporter
from scim_gateway.deps import Gateway, build_gateway, provider_path
from scim_gateway.eventhooks import DeliveryRecorder
from scim_gateway.fast_routes import FastWriteRoutes
from scim_gateway.observability import Metrics, RequestMiddleware
from scim_gateway.paths import NormalizedPaths
from scim_gateway.responses import ScimResponse, scim_error_response
from scim_gateway.routes import DEFAULT_PREFIX, PROVIDER_PREFIX, eventhooks, scim
from scim_gateway.settings import GatewaySettings

log = logging.getLogger("kubescim.gateway")


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
        app.state.event_hooks = DeliveryRecorder(gateway.kube, settings.namespace)
        try:
            yield
        finally:
            await app.state.event_hooks.stop()
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
    app.include_router(scim, prefix=DEFAULT_PREFIX)
    app.include_router(scim, prefix=PROVIDER_PREFIX, dependencies=[Depends(provider_path)])
    app.include_router(eventhooks.router)

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

    def error_response(error: Exception) -> ScimResponse:
        """Every failure as a SCIM Error response: FastAPI's exception handlers and the fast routes'."""
        if isinstance(error, ScimError):
            return scim_error_response(error)
        if isinstance(error, ApiUnavailable):
            metrics.api_errors.labels("unavailable").inc()
            log.warning("API server unavailable", extra={"error": str(error)[:300]})
            return scim_error_response(unavailable())
        if isinstance(error, RequestValidationError):
            first = error.errors()[0] if error.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()))
            return scim_error_response(bad_request(f"invalid request: {where}: {first.get('msg', '')}"))
        if isinstance(error, StarletteHTTPException):
            return scim_error_response(ScimError(error.status_code, str(error.detail)))
        if isinstance(error, asyncio.TimeoutError | TimeoutError):
            return scim_error_response(unavailable("timed out talking to the API server"))
        metrics.api_errors.labels("internal").inc()
        log.exception("unexpected error")
        return scim_error_response(ScimError(500, "internal error"))

    async def handle(_request: Request, error: Exception) -> ScimResponse:
        return error_response(error)

    for kind in (ScimError, ApiUnavailable, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, handle)

    if settings.fast_write_routes and not settings.opentelemetry:  # traces need FastAPI's own route handling
        app.add_middleware(FastWriteRoutes, error_response=error_response)
    app.add_middleware(NormalizedPaths)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app
