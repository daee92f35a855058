"""The simulator's OpenID Connect issuer: Okta's authorization server (`/oauth2/default`) for the org's
users, over TLS with its own CA, so a real kube-apiserver can trust it through a structured
AuthenticationConfiguration and a test can log in as an Okta user.

What Okta documents and kube-apiserver uses: discovery (`/.well-known/openid-configuration`), the
signing keys (`/v1/keys`, RS256 with a `kid`), and ID tokens with `iss`, `aud` (the OIDC app's client
id), `sub` (the Okta user id), `preferred_username` (the login), `email`, `email_verified`, and a
`groups` claim when the app's groups claim filter is set. Tokens are minted in-process
(`id_token`): a login flow in a browser is not what these tests are about.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import uvicorn
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from kubescim_dev.controlplane import free_port
from kubescim_dev.oktasim.org import Org, generate
from kubescim_dev.pki import new_authority, serving_certificate, write_private

DEFAULT_CLIENT_ID = "0oakubernetescli0001"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class OidcIssuer:
    """Serves discovery and keys on https://127.0.0.1:<port>/oauth2/default, from a background thread
    (so a synchronous caller, such as a control plane starting, never stalls it)."""

    def __init__(
        self,
        org: Org,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        port: int | None = None,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
    ) -> None:
        self.org = org
        self.client_id = client_id
        self.port = port or free_port()
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or secrets.token_hex(8)
        self.authority = new_authority("oktasim-oidc-ca")
        self.workdir = Path(tempfile.mkdtemp(prefix="oktasim-oidc-"))
        certificate, tls_key = serving_certificate(self.authority, "oktasim-oidc")
        self.cert_file = write_private(self.workdir / "tls.crt", certificate)
        self.key_file = write_private(self.workdir / "tls.key", tls_key)
        self.ca_file = write_private(self.workdir / "ca.crt", self.authority.pem)
        self.app = self._app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}/oauth2/default"

    @property
    def ca_pem(self) -> str:
        return self.authority.pem.decode()

    def _app(self) -> FastAPI:
        app = FastAPI(title="oktasim OIDC", openapi_url=None)
        issuer = "/oauth2/default"

        @app.get(f"{issuer}/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/v1/authorize",
                "token_endpoint": f"{self.issuer}/v1/token",
                "userinfo_endpoint": f"{self.issuer}/v1/userinfo",
                "jwks_uri": f"{self.issuer}/v1/keys",
                "response_types_supported": ["code", "id_token", "code id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
                "claims_supported": ["iss", "sub", "aud", "exp", "iat", "email", "preferred_username", "groups"],
            }

        @app.get(f"{issuer}/v1/keys")
        async def keys() -> dict[str, Any]:
            numbers = self.key.public_key().public_numbers()
            return {
                "keys": [
                    {
                        "kty": "RSA",
                        "alg": "RS256",
                        "kid": self.kid,
                        "use": "sig",
                        "e": _b64(numbers.e),
                        "n": _b64(numbers.n),
                    }
                ]
            }

        return app

    def id_token(self, user_id: str, *, lifetime: int = 3600, groups: bool = True, audience: str | None = None) -> str:
        """An ID token for the org's user, as Okta issues it after a login."""
        user = self.org.users[user_id]
        now = int(time.time())
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": self.issuer,
            "aud": audience or self.client_id,
            "sub": user.id,
            "iat": now,
            "exp": now + lifetime,
            "auth_time": now,
            "jti": f"ID.{secrets.token_urlsafe(24)}",
            "amr": ["pwd"],
            "idp": "00oorgidp0000000000",
            "name": user.profile.get("displayName"),
            "email": user.profile.get("email"),
            "email_verified": True,
            "preferred_username": user.profile.get("login"),
        }
        if groups:
            claims["groups"] = sorted(g.name for g in self.org.groups.values() if user.id in g.members)
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def user_by_login(self, login: str) -> str:
        found = [u.id for u in self.org.users.values() if str(u.profile.get("login", "")).lower() == login.lower()]
        if not found:
            raise SystemExit(f"no user {login!r} in the simulated org")
        return found[0]

    def save(self, path: Path, *, users: int, groups: int, seed: int) -> Path:
        """What `token` needs to sign for this issuer from another process (a development stack only:
        the signing key is in the file)."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        state: dict[str, Any] = {"issuer": self.issuer, "clientId": self.client_id, "kid": self.kid, "key": pem}
        state |= {"port": self.port, "org": {"users": users, "groups": groups, "seed": seed}}
        return write_private(path, json.dumps(state).encode())

    # --- serving ----------------------------------------------------------------------------------

    def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_certfile=str(self.cert_file),
            ssl_keyfile=str(self.key_file),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._server.serve(),), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OIDC issuer did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(OSError):
            for path in self.workdir.iterdir():
                path.unlink()
            self.workdir.rmdir()

    def authentication_config(self, *, username_prefix: str = "okta:", groups_prefix: str = "okta:") -> str:
        """The kube-apiserver AuthenticationConfiguration docs/access.md gives an Okta admin, for this issuer."""
        config = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AuthenticationConfiguration",
            "jwt": [
                {
                    "issuer": {"url": self.issuer, "audiences": [self.client_id], "certificateAuthority": self.ca_pem},
                    "claimMappings": {
                        "username": {"claim": "preferred_username", "prefix": username_prefix},
                        "groups": {"claim": "groups", "prefix": groups_prefix},
                    },
                }
            ],
        }
        return yaml.safe_dump(config, sort_keys=False)


def main() -> None:
    """`python -m kubescim_dev.oktasim.oidc token <login>`: an ID token for a user of `make up`'s org,
    for `kubectl --token` against its control plane (whose API server trusts this issuer)."""
    parser = argparse.ArgumentParser(prog="python -m kubescim_dev.oktasim.oidc", description=main.__doc__)
    parser.add_argument("command", choices=["token"])
    parser.add_argument("login", help="the user's Okta login, e.g. ada.lovelace.0@example.com")
    parser.add_argument("--state", default=".local/oidc.json", help="written by make up")
    args = parser.parse_args()
    state = json.loads(Path(args.state).read_text())
    key = serialization.load_pem_private_key(state["key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    org = generate(state["org"]["users"], state["org"]["groups"], seed=state["org"]["seed"])
    issuer = OidcIssuer(org, client_id=state["clientId"], port=state["port"], key=key, kid=state["kid"])
    try:
        print(issuer.id_token(issuer.user_by_login(args.login)))
    finally:
        issuer.stop()


if __name__ == "__main__":
    main()
