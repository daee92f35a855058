"""kubeconfig `exec` credential plugins (client.authentication.k8s.io/v1 and v1beta1): what EKS
(`aws eks get-token`), GKE (`gke-gcloud-auth-plugin`), AKS and OIDC logins (kubelogin) put in every
real kubeconfig. The plugin is run, its ExecCredential read, and the credential cached until its
`expirationTimestamp`; a 401 from the API server also makes the client run it again (as kubectl does).

The CLI runs on a laptop; the gateway and the operator use in-cluster service-account tokens and
never reach this code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXPIRY_SKEW = dt.timedelta(seconds=10)  # refresh a little early: a request takes time to arrive


class ExecCredentialError(Exception):
    """The plugin could not be run, failed, or printed something that is not an ExecCredential."""


@dataclass(frozen=True)
class Credential:
    token: str | None = None
    client_certificate_data: str | None = None
    client_key_data: str | None = None
    expires: dt.datetime | None = None

    def fresh(self, now: dt.datetime) -> bool:
        return self.expires is None or now < self.expires - EXPIRY_SKEW


@dataclass
class ExecPlugin:
    """One kubeconfig user's `exec` block."""

    command: str
    api_version: str = SUPPORTED_API_VERSIONS[0]
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    provide_cluster_info: bool = False
    cluster: dict[str, Any] = field(default_factory=dict)  # what KUBERNETES_EXEC_INFO carries if asked
    timeout: float = 60.0
    _cached: Credential | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_kubeconfig(cls, block: dict[str, Any], cluster: dict[str, Any], base: str) -> ExecPlugin:
        api_version = str(block.get("apiVersion", ""))
        if api_version not in SUPPORTED_API_VERSIONS:
            raise ValueError(
                f"exec plugin apiVersion {api_version!r} is not one of {', '.join(SUPPORTED_API_VERSIONS)}"
            )
        command = str(block.get("command") or "")
        if not command:
            raise ValueError("exec plugin has no command")
        if os.sep in command and not os.path.isabs(command):
            command = os.path.join(base, command)  # relative to the kubeconfig, as kubectl resolves it
        info = {"server": cluster.get("server")}
        if cluster.get("certificate-authority-data"):
            info["certificate-authority-data"] = cluster["certificate-authority-data"]
        if cluster.get("insecure-skip-tls-verify"):
            info["insecure-skip-tls-verify"] = True
        if cluster.get("proxy-url"):
            info["proxy-url"] = cluster["proxy-url"]
        return cls(
            command=command,
            api_version=api_version,
            args=tuple(str(a) for a in block.get("args") or ()),
            env=tuple((str(e["name"]), str(e.get("value", ""))) for e in block.get("env") or ()),
            provide_cluster_info=bool(block.get("provideClusterInfo")),
            cluster=info,
        )

    def credential(self, *, refresh: bool = False) -> Credential:
        with self._lock:
            now = dt.datetime.now(dt.UTC)
            if not refresh and self._cached is not None and self._cached.fresh(now):
                return self._cached
            self._cached = self._run()
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _run(self) -> Credential:
        spec: dict[str, Any] = {"interactive": False}
        if self.provide_cluster_info:
            spec["cluster"] = self.cluster
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**os.environ, **dict(self.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            done = subprocess.run(
                [self.command, *self.args],
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ExecCredentialError(f"exec plugin {self.command!r} could not run: {error}") from None
        if done.returncode != 0:
            # The plugin's stderr is its own message to the user (never a credential).
            raise ExecCredentialError(
                f"exec plugin {self.command!r} exited {done.returncode}: {done.stderr.strip()[:500]}"
            )
        return parse_exec_credential(done.stdout, self.api_version)


def parse_exec_credential(text: str, api_version: str) -> Credential:
    try:
        body = json.loads(text)
    except ValueError:
        raise ExecCredentialError("exec plugin printed no JSON ExecCredential") from None
    if not isinstance(body, dict) or body.get("kind") != "ExecCredential":
        raise ExecCredentialError("exec plugin output is not an ExecCredential")
    if body.get("apiVersion") != api_version:
        raise ExecCredentialError(f"exec plugin answered {body.get('apiVersion')!r}, not {api_version!r}")
    status = body.get("status") or {}
    expires = status.get("expirationTimestamp")
    credential = Credential(
        token=status.get("token") or None,
        client_certificate_data=status.get("clientCertificateData") or None,
        client_key_data=status.get("clientKeyData") or None,
        expires=dt.datetime.fromisoformat(str(expires).replace("Z", "+00:00")) if expires else None,
    )
    if credential.token is None and not (credential.client_certificate_data and credential.client_key_data):
        raise ExecCredentialError("exec plugin returned neither a token nor a client certificate and key")
    return credential
