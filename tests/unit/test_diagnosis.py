"""`kubescim doctor`'s findings, from statuses alone."""

from __future__ import annotations

from typing import Any

from kubescim.diagnosis import diagnose_provider, render


def provider(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "okta"}, "status": {"tokenRotatedAt": "2026-12-01T08:00:00Z", **status}}


def test_a_healthy_provider_has_no_finding() -> None:
    assert diagnose_provider(provider(lastSync={"result": "Succeeded", "message": "no drift"}), []) == []
    assert render("okta", []) == "provider okta: no problem found"


def test_each_symptom_is_named_with_its_fix() -> None:
    sick = provider(
        rejectedRequests={"previousToken": 12, "unknownToken": 1, "tokenRotatedAt": "2026-12-01T08:00:00Z"},
        lastSync={"result": "Failed", "message": "fetch failed, nothing changed: 401 from Okta"},
    )
    rule = {
        "kind": "TeamMapping",
        "metadata": {"name": "contractors"},
        "spec": {"providers": ["okta"]},
        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "regex does not compile"}]},
    }
    other = {**rule, "metadata": {"name": "entra-only"}, "spec": {"providers": ["entra"]}}
    findings = diagnose_provider(sick, [rule, other])
    text = render("okta", findings)
    assert [f.severity for f in findings] == ["error", "warning", "error", "warning"]
    assert "12 request(s) since the rotation at 2026-12-01T08:00:00Z used the previous token" in text
    assert "fix: paste the current token" in text
    assert "the last Okta reconciliation failed: fetch failed" in text
    assert "TeamMapping contractors is not Ready: regex does not compile" in text
    assert "entra-only" not in text
    no_token = diagnose_provider({"metadata": {"name": "okta"}, "status": {}}, [])
    assert no_token[0].fix.startswith("kubescim token rotate --provider okta")


def test_groups_assigned_but_not_pushed_are_named() -> None:
    findings = diagnose_provider(provider(unpushedGroups=[{"oktaId": "00g1", "name": "Bifrost-Admin"}]), [])
    assert len(findings) == 1
    assert "assigned to the app but not pushed: Bifrost-Admin" in findings[0].what
    assert "Push Groups" in findings[0].fix


def test_refused_access_bindings_and_undeclared_roles_are_named() -> None:
    binding = {
        "kind": "AccessBinding",
        "metadata": {"name": "admins"},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "RoleNotAllowed", "message": "no"}]},
    }
    role_rule = {
        "kind": "RoleMapping",
        "metadata": {"name": "leads"},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "role 'lead' is not declared"}]},
    }
    findings = diagnose_provider(provider(), [binding, role_rule])
    assert [(f.severity, f.what.split(" is ")[0]) for f in findings] == [
        ("error", "AccessBinding admins"),
        ("warning", "RoleMapping leads"),
    ]
    assert "docs/access.md" in findings[0].fix
    assert "spec.access.roles" in findings[1].fix


def test_a_declared_custom_attribute_near_miss_is_named() -> None:
    condition = {
        "type": "CustomAttributesArriving",
        "status": "False",
        "reason": "CaseMismatch",
        "message": "provider okta declares custom attribute employeeID; 42 user(s) carry employeeId",
    }
    (finding,) = diagnose_provider(provider(conditions=[condition]), [])
    assert "42 user(s) carry employeeId" in finding.what
    assert "External name" in finding.fix
