"""The `kubescim` command line: token rotation, on-demand sync, and `explain`."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from kubescim.api.models import IdentityProviderSpec
from kubescim.constants import (
    ACCESS_BINDINGS,
    ANNOTATION_FULL_SYNC_REQUESTED,
    ANNOTATION_SYNC_REQUESTED,
    BUSINESS_UNIT_MAPPINGS,
    IDENTITY_PROVIDERS,
    PART_OF,
    ROLE_MAPPINGS,
    TEAM_MAPPINGS,
)
from kubescim.diagnosis import Finding, diagnose_provider, render
from kubescim.kube import JSON, SECRETS, ApiError, ApiUnavailable, Kube, KubeConfig
from kubescim.tokens import (
    EVENT_HOOK_HASH_KEY,
    PREVIOUS_HASHES_KEY,
    ROTATED_AT_ANNOTATION,
    TOKEN_HASH_KEY,
    PreviousToken,
    default_secret_name,
    generate_token,
    hash_from_secret_data,
    hash_token,
    previous_from_secret_data,
    previous_to_secret_data,
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def _provider(kube: Kube, namespace: str, provider: str) -> tuple[JSON, IdentityProviderSpec]:
    """The IdentityProvider and its spec; a clear error when there is none."""
    try:
        idp = await kube.get(IDENTITY_PROVIDERS, provider, namespace)
    except ApiError as error:
        if error.not_found:
            raise SystemExit(f"error: no IdentityProvider {provider!r} in namespace {namespace!r}") from None
        raise
    return idp, IdentityProviderSpec.model_validate(idp.get("spec") or {})


async def rotate_token(kube: Kube, namespace: str, provider: str) -> str:
    """Generate a new provisioning token, store only its hash, and return the token (shown once)."""
    _, spec = await _provider(kube, namespace, provider)
    ref = spec.scim.token_secret_ref
    name = ref.name if ref else default_secret_name(provider)
    key = ref.key if ref else TOKEN_HASH_KEY
    token = generate_token()
    rotated_at = _now()
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {**PART_OF, "identity.kubescim.dev/provider": provider},
            "annotations": {ROTATED_AT_ANNOTATION: rotated_at},
        },
        "data": {key: base64.b64encode(hash_token(token).encode()).decode()},
    }
    try:
        await kube.create(SECRETS, secret, namespace)
    except ApiError as error:
        if not error.conflict:
            raise
        # Replace the whole data map: a seeded plain `token` key must not survive a rotation. The
        # replaced token's hash joins the previous ones (hashes only; never valid again), so a
        # client still sending it is told so.
        current = await kube.get(SECRETS, name, namespace)
        data = current.get("data") or {}
        replaced = hash_from_secret_data(data, key)
        previous = previous_from_secret_data(data)
        if EVENT_HOOK_HASH_KEY in data:  # the event hook's secret is not the token: it stays
            secret["data"][EVENT_HOOK_HASH_KEY] = data[EVENT_HOOK_HASH_KEY]
        if replaced is not None:
            previous = (PreviousToken(replaced, rotated_at), *previous)
        if previous:
            secret["data"][PREVIOUS_HASHES_KEY] = previous_to_secret_data(previous)
        secret["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await kube.replace(SECRETS, name, secret, namespace)
    await kube.patch(
        IDENTITY_PROVIDERS,
        provider,
        {"status": {"tokenRotatedAt": rotated_at}},
        namespace,
        subresource="status",
    )
    return token


async def rotate_event_hook_secret(kube: Kube, namespace: str, provider: str) -> tuple[str, str]:
    """A new shared secret for the provider's Okta Event Hook (only its hash is stored, next to the
    token's); returns (secret, the hook's path on the gateway). The previous secret stops working."""
    idp, spec = await _provider(kube, namespace, provider)
    ref = spec.scim.token_secret_ref
    name = ref.name if ref else default_secret_name(provider)
    secret = generate_token()
    patch = {"data": {EVENT_HOOK_HASH_KEY: base64.b64encode(hash_token(secret).encode()).decode()}}
    try:
        await kube.patch(SECRETS, name, patch, namespace)
    except ApiError as error:
        if error.not_found:
            raise SystemExit(
                f"error: provider {provider!r} has no token Secret {name!r} yet: run `kubescim token rotate` first"
            ) from None
        raise
    endpoint = str((idp.get("status") or {}).get("scimEndpoint") or "")
    base = endpoint.removesuffix("/scim/v2") if endpoint else f"https://<gateway>/providers/{provider}"
    return secret, f"{base}/okta/event-hook"


async def request_sync(kube: Kube, namespace: str, provider: str, *, full: bool = False) -> None:
    """A run now: a delta run (only what changed since the last run) when one can run, or with
    `full` a full comparison of every user and group."""
    annotation = ANNOTATION_FULL_SYNC_REQUESTED if full else ANNOTATION_SYNC_REQUESTED
    await kube.patch(IDENTITY_PROVIDERS, provider, {"metadata": {"annotations": {annotation: _now()}}}, namespace)


async def doctor_report(kube: Kube, namespace: str, provider: str | None) -> list[tuple[str, list[Finding]]]:
    if provider is not None:
        try:
            providers = [await kube.get(IDENTITY_PROVIDERS, provider, namespace)]
        except ApiError as error:
            if error.not_found:
                raise SystemExit(f"error: no IdentityProvider {provider!r} in namespace {namespace!r}") from None
            raise
    else:
        providers, _ = await kube.list(IDENTITY_PROVIDERS, namespace)
    rules: list[JSON] = []
    for resource, kind in (
        (TEAM_MAPPINGS, "TeamMapping"),
        (BUSINESS_UNIT_MAPPINGS, "BusinessUnitMapping"),
        (ROLE_MAPPINGS, "RoleMapping"),
        (ACCESS_BINDINGS, "AccessBinding"),
    ):
        try:
            items, _ = await kube.list(resource, namespace)
        except ApiError as error:
            if error.not_found:  # CRDs older than this CLI
                continue
            raise
        rules += [{**item, "kind": kind} for item in items]
    return [(p["metadata"]["name"], diagnose_provider(p, rules)) for p in providers]


def _run(config: KubeConfig, work: Callable[[Kube], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Kube(config) as kube:
            return await work(kube)

    try:
        return asyncio.run(main())
    except ApiUnavailable as error:
        raise SystemExit(f"error: the Kubernetes API server is unreachable: {error}") from None
    except ApiError as error:
        raise SystemExit(f"error: {error}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubescim", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    commands = parser.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="provisioning tokens").add_subparsers(dest="action", required=True)
    rotate = token.add_parser("rotate", help="generate a new token; the previous one stops working at once")
    rotate.add_argument("--provider", required=True)

    hook = commands.add_parser("eventhook", help="Okta Event Hook secrets").add_subparsers(dest="action", required=True)
    hook_rotate = hook.add_parser("rotate", help="generate the hook's shared secret; the previous one stops working")
    hook_rotate.add_argument("--provider", required=True)

    sync = commands.add_parser("sync", help="request an Okta reconciliation now")
    sync.add_argument("--provider", required=True)
    sync.add_argument(
        "--full", action="store_true", help="compare every user and group (default: a delta run when one can run)"
    )

    explain = commands.add_parser("explain", help="why a user is in a team, or whom a rule matches")
    explain.add_argument("what", choices=["user", "rule"])
    explain.add_argument("name", help="a userName, or a TeamMapping/BusinessUnitMapping name")

    doctor = commands.add_parser("doctor", help="what is wrong with a provider, and how to fix it")
    doctor.add_argument("--provider", help="one provider (default: every provider in the namespace)")

    args = parser.parse_args(argv)
    config = KubeConfig.load(args.kubeconfig, args.context)
    namespace = args.namespace or config.namespace

    if args.command == "token":
        token_value = _run(config, lambda kube: rotate_token(kube, namespace, args.provider))
        print(token_value)
        print(
            f"This is the only time the token is shown. Paste it into Okta's API Token field for provider "
            f"{args.provider!r}; the previous token no longer works.",
            file=sys.stderr,
        )
        return 0
    if args.command == "eventhook":
        secret, url = _run(config, lambda kube: rotate_event_hook_secret(kube, namespace, args.provider))
        print(secret)
        print(
            f"This is the only time the secret is shown. In Okta (Workflow > Event Hooks), set the URL to {url}, "
            "Authentication field to Authorization and Authentication secret to it; subscribe to "
            "application.user_membership.add/remove, user.lifecycle.*, user.account.update_profile, "
            "group.user_membership.add/remove and group.profile.update. Each delivery triggers a delta run.",
            file=sys.stderr,
        )
        return 0
    if args.command == "sync":
        _run(config, lambda kube: request_sync(kube, namespace, args.provider, full=args.full))
        print(f"{'full ' if args.full else ''}sync requested for provider {args.provider}")
        return 0
    if args.command == "doctor":
        reports: list[tuple[str, list[Finding]]] = _run(
            config, lambda kube: doctor_report(kube, namespace, args.provider)
        )
        for name, findings in reports:
            print(render(name, findings))
        return 1 if any(findings for _, findings in reports) else 0
    if args.command == "explain":
        from kubescim.explain import explain_rule, explain_user

        work = explain_user if args.what == "user" else explain_rule
        print(_run(config, lambda kube: work(kube, namespace, args.name)))
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
