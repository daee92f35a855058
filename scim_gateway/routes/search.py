"""/.search at the root: users and groups in one query (RFC 7644 section 3.4.3)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from scim_gateway.deps import RESOURCE_BODY, Body, Ctx, GatewayDep, search_query
from scim_gateway.responses import ScimResponse
from scim_gateway.service import GROUPS, USERS

router = APIRouter()


@router.post("/.search", tags=["Search"], openapi_extra=RESOURCE_BODY)
async def search_all(ctx: Ctx, gateway: GatewayDep, body: Body) -> ScimResponse:
    query = search_query(body, gateway)
    everything = dataclasses.replace(query, start_index=1, count=1_000_000)
    users = await gateway.service.list_resources(ctx.provider.name, everything, ctx.base_url, USERS)
    groups = await gateway.service.list_resources(ctx.provider.name, everything, ctx.base_url, GROUPS)
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
