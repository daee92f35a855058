"""crds/ is generated from the pydantic models: it must never drift from them."""

from __future__ import annotations

from kubescim.api import crdgen


def test_checked_in_crds_match_the_models() -> None:
    stale = [
        path.name for path, text in crdgen.expected_files().items() if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run `make crds`: {stale} differ from kubescim/api/models.py"


def test_every_field_has_a_description() -> None:
    missing: list[str] = []

    def walk(schema: dict[str, object], where: str) -> None:
        # Named fields need a description; list items are explained by their field's.
        if where.count(".") > 1 and not where.endswith("[]") and not schema.get("description"):
            missing.append(where)
        for name, sub in (schema.get("properties") or {}).items():  # type: ignore[attr-defined]
            walk(sub, f"{where}.{name}")
        items = schema.get("items")
        if isinstance(items, dict):
            walk(items, f"{where}[]")

    for kind in crdgen.KINDS:
        root = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        walk(root["properties"]["spec"], f"{kind.kind}.spec")
        walk(root["properties"]["status"], f"{kind.kind}.status")
    assert not missing, missing


def test_api_reference_is_current() -> None:
    from kubescim.api import docgen

    assert docgen.DOC.read_text() == docgen.render(), "run `make crds` to regenerate docs/api-reference.md"
