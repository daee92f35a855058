"""`kubescim doctor`: what is wrong with a provider, and the fix for each — from the statuses the
gateway and the operator keep (pure: objects in, findings out).

The Okta guide ends with symptoms an administrator checks by hand; these are the ones kubescim can
see for itself: a client still sending a replaced token, an unknown token (wrong base URL or token),
no token at all, a failing or blocked reconciliation, groups assigned to the app but not pushed, and
declared custom attributes users carry under another case or namespace (or not at all), and mapping
rules (and RoleMappings, AccessBindings) of the provider that are not Ready, read an attribute no
user carries (or carries under another case or namespace), or match no pushed group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

JSON = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    severity: Literal["error", "warning"]
    what: str
    fix: str


def _condition(obj: JSON, type_: str) -> JSON | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def diagnose_provider(provider: JSON, rules: list[JSON]) -> list[Finding]:
    name = str(provider["metadata"]["name"])
    status = provider.get("status") or {}
    findings: list[Finding] = []
    if not status.get("tokenRotatedAt"):
        findings.append(
            Finding(
                "error",
                f"provider {name} has no provisioning token recorded",
                f"kubescim token rotate --provider {name}, then paste the token into the identity provider",
            )
        )
    rejected = status.get("rejectedRequests") or {}
    if rejected.get("previousToken"):
        findings.append(
            Finding(
                "error",
                f"{rejected['previousToken']} request(s) since the rotation at {rejected.get('tokenRotatedAt')} used the "
                f"previous token (last at {rejected.get('lastRejectedAt')}): the identity provider still has the old token",
                "paste the current token into the app's API Token field (Okta: Provisioning > Integration), or rotate "
                f"again (kubescim token rotate --provider {name}) and paste the one printed",
            )
        )
    if rejected.get("unknownToken"):
        findings.append(
            Finding(
                "warning",
                f"{rejected['unknownToken']} request(s) with a token provider {name} never issued",
                f"check that the base URL names this provider (…/providers/{name}/scim/v2) and that the token is "
                "the one `kubescim token rotate` printed for it",
            )
        )
    if rejected.get("missingCredentials"):
        findings.append(
            Finding(
                "warning",
                f"{rejected['missingCredentials']} request(s) without credentials",
                "the app must send the token as the Authorization header (Okta: SCIM 2.0 Test App (Header Auth))",
            )
        )
    last = status.get("lastSync") or {}
    if last.get("result") == "Failed":
        findings.append(
            Finding(
                "error",
                f"the last Okta reconciliation failed: {last.get('message', '')}",
                "fix what the message names (credentials Secret, org URL, app id, network), then "
                f"kubescim sync --provider {name}",
            )
        )
    elif last.get("result") == "Blocked":
        findings.append(
            Finding(
                "warning",
                f"the last Okta reconciliation was blocked: {last.get('message', '')}",
                "if the change is intended, annotate the IdentityProvider "
                "identity.kubescim.dev/allow-mass-deactivation=true for one run",
            )
        )
    arriving = _condition(provider, "CustomAttributesArriving")
    if arriving is not None and arriving.get("status") == "False":
        findings.append(
            Finding(
                "warning",
                f"declared custom attributes do not arrive as declared: {arriving.get('message', '')}",
                "in Okta's Profile Editor, each attribute's External name (case included) and External namespace "
                "must be what spec.scim.customAttributes declares; fix one or the other, then push the users again",
            )
        )
    unpushed = status.get("unpushedGroups") or []
    if unpushed:
        names = ", ".join(str(g.get("name")) for g in unpushed[:5]) + (
            f" and {len(unpushed) - 5} more" if len(unpushed) > 5 else ""
        )
        findings.append(
            Finding(
                "warning",
                f"{len(unpushed)} group(s) assigned to the app but not pushed: {names} — their membership does not sync",
                "push them in Okta (the app's Push Groups tab); assigning a group only provisions its users",
            )
        )
    for rule in rules:
        providers = (rule.get("spec") or {}).get("providers") or []
        if providers and name not in providers:
            continue
        kind, rule_name = rule.get("kind", "Mapping"), rule["metadata"]["name"]
        ready = _condition(rule, "Ready")
        if ready is not None and ready.get("status") == "False":
            explain = (
                "docs/access.md, a user has no access"
                if kind == "AccessBinding"
                else f"kubescim explain rule {rule_name}"
                if kind != "RoleMapping"
                else "declare the role in the IdentityProvider's spec.access.roles"
            )
            findings.append(
                Finding(
                    "error" if kind == "AccessBinding" else "warning",
                    f"{kind} {rule_name} is not Ready: {ready.get('message', ready.get('reason', ''))}",
                    f"kubectl describe {kind.lower()} {rule_name}; {explain}",
                )
            )
        attribute = _condition(rule, "AttributeFound")
        if attribute is not None and (attribute.get("status") == "False" or attribute.get("reason") == "CaseMismatch"):
            findings.append(
                Finding(
                    "warning",
                    f"{kind} {rule_name}: {attribute.get('message', attribute.get('reason', ''))}",
                    "in Okta's Profile Editor, the attribute's External name (case included) and namespace must be "
                    "what the rule reads; kubectl get scimuser <name> -o jsonpath='{.spec.extensions}' shows what "
                    "arrives",
                )
            )
        groups = _condition(rule, "GroupsMatched")
        if groups is not None and groups.get("status") == "False":
            findings.append(
                Finding(
                    "warning",
                    f"{kind} {rule_name} matches no pushed group",
                    f"push the group in Okta (Push Groups), or fix the rule's match: kubescim explain rule {rule_name}",
                )
            )
    return findings


def render(provider: str, findings: list[Finding]) -> str:
    if not findings:
        return f"provider {provider}: no problem found"
    lines = [f"provider {provider}: {len(findings)} finding(s)"]
    for finding in findings:
        lines.append(f"  {finding.severity.upper()}: {finding.what}")
        lines.append(f"    fix: {finding.fix}")
    return "\n".join(lines)
