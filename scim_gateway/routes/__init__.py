"""The SCIM routes, one module per resource (like FastAPI's project template), under one router that
the app mounts at /scim/v2 and /providers/{provider}/scim/v2."""

from __future__ import annotations

from fastapi import APIRouter

from scim_gateway.routes import discovery, groups, search, users

# The default provider's, and any provider's by name (app.py adds the provider_path dependency).
DEFAULT_PREFIX = "/scim/v2"
PROVIDER_PREFIX = "/providers/{provider}/scim/v2"
PREFIXES = (DEFAULT_PREFIX, PROVIDER_PREFIX)

scim = APIRouter()
for module in (users, groups, search, discovery):
    scim.include_router(module.router)
