"""Discovery: /ServiceProviderConfig, /ResourceTypes and /Schemas (RFC 7644 section 4), per provider."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from scim_gateway import discovery
from scim_gateway.deps import (
    Context,
    Ctx,
    Gateway,
    GatewayDep,
)
from scim_gateway.responses import ScimResponse

router = APIRouter()


@router.get("/ServiceProviderConfig", tags=["Discovery"])
async def service_provider_config(ctx: Ctx, gateway: GatewayDep) -> ScimResponse:
    return ScimResponse(discovery.service_provider_config(ctx.base_url, gateway.settings))


def _resource_types(ctx: Context, gateway: Gateway) -> list[dict[str, Any]]:
    learned = gateway.index.learned.for_provider(ctx.provider.name)
    urns = [s.id for s in discovery.extension_schemas(ctx.provider.spec, learned)]
    return discovery.resource_types(ctx.base_url, urns)


def _schemas(ctx: Context, gateway: Gateway) -> list[dict[str, Any]]:
    return discovery.schemas(ctx.base_url, ctx.provider.spec, gateway.index.learned.for_provider(ctx.provider.name))


@router.get("/ResourceTypes", tags=["Discovery"])
async def resource_types(ctx: Ctx, gateway: GatewayDep) -> ScimResponse:
    return ScimResponse(discovery.list_response(_resource_types(ctx, gateway)))


@router.get("/ResourceTypes/{name}", tags=["Discovery"])
async def resource_type(ctx: Ctx, gateway: GatewayDep, name: str) -> ScimResponse:
    return ScimResponse(discovery.find(_resource_types(ctx, gateway), name, "ResourceType"))


@router.get("/Schemas", tags=["Discovery"])
async def schemas(ctx: Ctx, gateway: GatewayDep) -> ScimResponse:
    return ScimResponse(discovery.list_response(_schemas(ctx, gateway)))


@router.get("/Schemas/{schema_id}", tags=["Discovery"])
async def schema(ctx: Ctx, gateway: GatewayDep, schema_id: str) -> ScimResponse:
    return ScimResponse(discovery.find(_schemas(ctx, gateway), schema_id, "Schema"))
