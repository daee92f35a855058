"""`kubescim-operator`: run the Kopf operator in the configured namespace."""

from __future__ import annotations

import asyncio
import logging

import kopf

from identity_operator import handlers  # noqa: F401 - registers the handlers
from identity_operator.settings import OperatorSettings
from kubescim.logs import configure_logging


def main() -> None:
    settings = OperatorSettings()
    configure_logging(settings.log_level)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            namespaces=[settings.namespace],
            standalone=settings.standalone,
            # A peering name makes peering mandatory in Kopf: given with standalone, Kopf would wait
            # forever for a peering resource it is told not to use.
            peering_name=None if settings.standalone else settings.peering,
            priority=settings.priority,
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()
