"""`kubescim-operator`: run the Kopf operator in the configured namespace."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

import kopf

from identity_operator import handlers  # noqa: F401 - registers the handlers
from identity_operator.settings import OperatorSettings
from kubescim.logs import configure_logging


def operator_identity() -> str:
    """Unique per process, like Kopf's own: the pod name (POD_ID) or host, plus a random part."""
    base = os.environ.get("POD_ID") or socket.gethostname()
    return f"{base}/{secrets.token_hex(4)}"


def main() -> None:
    settings = OperatorSettings()
    configure_logging(settings.log_level)
    identity = operator_identity()
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            # Known to the handlers (the peering gate reads this operator's own record by it).
            identity=identity,  # type: ignore[arg-type]
            memo=kopf.Memo(identity=identity),
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
