"""/Groups: list, search, create, read, replace, patch and delete groups (RFC 7644 section 3)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from scim_gateway.deps import RESOURCE_BODY, Body, Ctx, GatewayDep, IfMatch, ListQueryDep, search_query
from scim_gateway.responses import ScimResponse, resource_headers
from scim_gateway.service import GROUPS

router = APIRouter()


@router.get("/Groups", tags=["Groups"])
async def list_groups(ctx: Ctx, gateway: GatewayDep, query: ListQueryDep) -> ScimResponse:
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, GROUPS))


@router.post("/Groups/.search", tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def search_groups(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    query = search_query(body, gateway)
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, GROUPS))


@router.post("/Groups", status_code=201, tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def create_group(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    resource = await gateway.service.create_group(ctx.provider.name, body, ctx.base_url)
    return ScimResponse(resource, 201, headers=resource_headers(resource))


@router.get("/Groups/{group_id}", tags=["Groups"])
async def get_group(ctx: Ctx, gateway: GatewayDep, group_id: str, query: ListQueryDep) -> ScimResponse:
    resource = await gateway.service.get_group(
        ctx.provider.name, group_id, ctx.base_url, query.attributes, query.excluded_attributes
    )
    return ScimResponse(resource, headers=resource_headers(resource))


@router.put("/Groups/{group_id}", tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def replace_group(
    ctx: Ctx, gateway: GatewayDep, group_id: str, body: Body, if_match: IfMatch = None
) -> ScimResponse:
    resource = await gateway.service.replace_group(ctx.provider.name, group_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=resource_headers(resource))


@router.patch("/Groups/{group_id}", tags=["Groups"], openapi_extra=RESOURCE_BODY)
async def patch_group(
    ctx: Ctx, gateway: GatewayDep, group_id: str, body: Body, query: ListQueryDep, if_match: IfMatch = None
) -> Response:
    service, provider = gateway.service, ctx.provider.name
    if gateway.settings.group_patch_no_content:
        # 204 carries only the headers: the members are not rendered at all.
        resource = await service.patch_group(provider, group_id, body, ctx.base_url, if_match, excluded="members")
        return Response(status_code=204, headers=resource_headers(resource))
    resource = await service.patch_group(
        provider, group_id, body, ctx.base_url, if_match, query.attributes, query.excluded_attributes
    )
    return ScimResponse(resource, headers=resource_headers(resource))


@router.delete("/Groups/{group_id}", status_code=204, tags=["Groups"])
async def delete_group(ctx: Ctx, gateway: GatewayDep, group_id: str, if_match: IfMatch = None) -> Response:
    await gateway.service.delete_group(ctx.provider.name, group_id, if_match)
    return Response(status_code=204)
