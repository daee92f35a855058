"""/Users: list, search, create, read, replace, patch and delete users (RFC 7644 section 3)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from scim_gateway.deps import RESOURCE_BODY, Body, Ctx, GatewayDep, IfMatch, ListQueryDep, search_query
from scim_gateway.responses import ScimResponse, projected, resource_headers
from scim_gateway.service import USERS

router = APIRouter()


@router.get("/Users", tags=["Users"])
async def list_users(ctx: Ctx, gateway: GatewayDep, query: ListQueryDep) -> ScimResponse:
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, USERS))


@router.post("/Users/.search", tags=["Users"], openapi_extra=RESOURCE_BODY)
async def search_users(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    query = search_query(body, gateway)
    return ScimResponse(await gateway.service.list_resources(ctx.provider.name, query, ctx.base_url, USERS))


@router.post("/Users", status_code=201, tags=["Users"], openapi_extra=RESOURCE_BODY)
async def create_user(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    resource = await gateway.service.create_user(ctx.provider.name, body, ctx.base_url)
    return ScimResponse(resource, 201, headers=resource_headers(resource))


@router.get("/Users/{user_id}", tags=["Users"])
async def get_user(ctx: Ctx, gateway: GatewayDep, user_id: str, query: ListQueryDep) -> ScimResponse:
    resource = await gateway.service.get_user(ctx.provider.name, user_id, ctx.base_url)
    return projected(resource, query, "urn:ietf:params:scim:schemas:core:2.0:User")


@router.put("/Users/{user_id}", tags=["Users"], openapi_extra=RESOURCE_BODY)
async def replace_user(
    ctx: Ctx, gateway: GatewayDep, user_id: str, body: Body, if_match: IfMatch = None
) -> ScimResponse:
    resource = await gateway.service.replace_user(ctx.provider.name, user_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=resource_headers(resource))


@router.patch("/Users/{user_id}", tags=["Users"], openapi_extra=RESOURCE_BODY)
async def patch_user(ctx: Ctx, gateway: GatewayDep, user_id: str, body: Body, if_match: IfMatch = None) -> ScimResponse:
    resource = await gateway.service.patch_user(ctx.provider.name, user_id, body, ctx.base_url, if_match)
    return ScimResponse(resource, headers=resource_headers(resource))


@router.delete("/Users/{user_id}", status_code=204, tags=["Users"])
async def delete_user(ctx: Ctx, gateway: GatewayDep, user_id: str, if_match: IfMatch = None) -> Response:
    await gateway.service.delete_user(ctx.provider.name, user_id, if_match)
    return Response(status_code=204)
