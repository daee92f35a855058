"""What the gateway's and the operator's settings share: KUBESCIM_* environment variables, the
namespace they serve (the pod's own by default) and how to reach the API server."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace() -> str:
    return IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.exists() else "default"


class KubescimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBESCIM_", extra="ignore")

    namespace: str = Field(default_factory=default_namespace, description="Namespace of the SCIM resources.")
    kubeconfig: str | None = Field(default=None, description="Kubeconfig path; in-cluster config when unset.")
    log_level: str = "INFO"
