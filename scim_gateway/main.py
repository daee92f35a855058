"""`kubescim-gateway`: run the SCIM gateway under uvicorn."""

from __future__ import annotations

import uvicorn

from kubescim.logs import configure_logging
from scim_gateway.app import create_app
from scim_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
