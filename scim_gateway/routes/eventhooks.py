"""Okta Event Hooks: /providers/{provider}/okta/event-hook.

GET answers Okta's one-time verification (`X-Okta-Verification-Challenge` echoed as
`{"verification": …}`); POST takes deliveries and asks for a delta run (coalesced), answering at once
(Okta waits 3 s). Both require the shared secret `kubescim eventhook rotate` printed, which Okta
sends in the `Authorization` header (the hook's "Authentication field"): checked against its hash in
constant time, never logged.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from kubescim.scim.errors import ScimError
from kubescim.tokens import bearer_value, verify
from scim_gateway.deps import GatewayDep
from scim_gateway.eventhooks import DeliveryRecorder
from scim_gateway.providers import Provider

router = APIRouter()
ProviderName = Annotated[str, Path(description="IdentityProvider name", max_length=63)]
Authorization = Annotated[str | None, Header()]


def _authorized(gateway: GatewayDep, name: str, authorization: str | None) -> Provider:
    provider = gateway.providers.providers.get(name)
    if provider is None:
        raise ScimError(404, f"no IdentityProvider {name}")
    if provider.event_hook_hash is None:
        raise ScimError(
            401, f"provider {name} has no event hook secret: run `kubescim eventhook rotate --provider {name}`"
        )
    secret = bearer_value(authorization)
    if secret is None or not verify(secret, provider.event_hook_hash):
        raise ScimError(401, f"not the event hook secret of provider {name}")
    return provider


@router.get("/providers/{provider}/okta/event-hook", include_in_schema=False)
async def verification(
    request: Request,
    gateway: GatewayDep,
    provider: ProviderName,
    authorization: Authorization = None,
    challenge: Annotated[str | None, Header(alias="X-Okta-Verification-Challenge", max_length=512)] = None,
) -> JSONResponse:
    _authorized(gateway, provider, authorization)
    if not challenge:
        raise ScimError(400, "the X-Okta-Verification-Challenge header is missing")
    recorder: DeliveryRecorder = request.app.state.event_hooks
    await recorder.verified(provider)
    return JSONResponse({"verification": challenge})


@router.post("/providers/{provider}/okta/event-hook", include_in_schema=False)
async def delivery(
    request: Request, gateway: GatewayDep, provider: ProviderName, authorization: Authorization = None
) -> JSONResponse:
    _authorized(gateway, provider, authorization)
    try:
        body: Any = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ScimError(400, "the delivery is not JSON") from None
    events = ((body.get("data") or {}).get("events") or []) if isinstance(body, dict) else []
    recorder: DeliveryRecorder = request.app.state.event_hooks
    recorder.delivered(provider)
    gateway.metrics.event_hook_deliveries.labels(provider).inc()
    return JSONResponse({"received": len(events) if isinstance(events, list) else 0})
