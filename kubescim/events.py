"""Kubernetes Events (events.k8s.io/v1) posted by kubescim: best effort, never fatal, never secret."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from kubescim.kube import EVENTS, ApiError, ApiUnavailable, Kube

log = logging.getLogger("kubescim.events")
CONTROLLER = "identity.kubescim.dev/operator"
GATEWAY = "identity.kubescim.dev/gateway"


async def post_event(
    kube: Kube,
    namespace: str,
    regarding: dict[str, Any],
    type_: str,
    reason: str,
    note: str,
    action: str = "Reconcile",
    controller: str = CONTROLLER,
) -> None:
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{regarding['name'][:200]}-", "namespace": namespace},
        "regarding": {**regarding, "namespace": namespace},
        "type": type_,
        "reason": reason,
        "note": note[:1024],
        "action": action,
        "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": controller,
        "reportingInstance": os.environ.get("HOSTNAME", "kubescim-operator")[:128],
    }
    try:
        await kube.create(EVENTS, body, namespace)
    except (ApiError, ApiUnavailable) as error:
        log.warning("could not post event", extra={"reason": reason, "error": str(error)[:200]})
