"""Generate docs/api-reference.md from the CRD schemas (`make crds`; a test fails when it is stale)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kubescim.api.crdgen import KINDS, crd
from kubescim.constants import API_VERSION

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-reference.md"


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "any")
    if kind == "array":
        return f"[]{_type(schema.get('items') or {})}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{_type(schema['additionalProperties'])}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return str(kind)


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("default", "default"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
    ):
        if key in schema and not (key == "default" and schema[key] in ({}, [])):
            value = schema[key] if key == "pattern" else json.dumps(schema[key])
            parts.append(f"{label} `{value}`")
    for rule in schema.get("x-kubernetes-validations") or []:
        parts.append(f"rule: {rule['message']}")
    return "; ".join(parts)


def _rows(schema: dict[str, Any], prefix: str, required: set[str]) -> list[str]:
    rows = []
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}"
        description = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
        flag = " (required)" if name in required else ""
        rows.append(f"| `{path}`{flag} | {_type(sub)} | {description} | {_constraints(sub)} |")
        target = sub.get("items") if sub.get("type") == "array" else sub
        if isinstance(target, dict) and target.get("properties"):
            rows.extend(
                _rows(target, path + ("[]" if sub.get("type") == "array" else ""), set(target.get("required", [])))
            )
    return rows


def render() -> str:
    lines = [
        "# API reference",
        "",
        f"Group `{API_VERSION}`; every kind is namespaced, has a status subresource, and is in the `kubescim`",
        "category (`kubectl get kubescim`). Generated from `kubescim/api/models.py` by `make crds`: do not edit.",
        "Examples of every kind are in [`crds/examples/`](../crds/examples).",
        "",
    ]
    for kind in KINDS:
        document = crd(kind)
        version = document["spec"]["versions"][0]
        root = version["schema"]["openAPIV3Schema"]
        names = document["spec"]["names"]
        lines += [f"## {kind.kind}", "", root["description"], ""]
        short = ", ".join(f"`{s}`" for s in names.get("shortNames", [])) or "none"
        lines += [f"Plural `{names['plural']}`, short names {short}.", ""]
        for rule in root.get("x-kubernetes-validations") or []:
            lines += [f"- Rule: {rule['message']}"]
        columns = ", ".join(c["name"] for c in version["additionalPrinterColumns"])
        lines += [f"`kubectl get` columns: {columns}.", ""]
        for part in ("spec", "status"):
            schema = root["properties"][part]
            lines += [f"### {kind.kind} {part}", "", " ".join(str(schema.get("description", "")).split()), ""]
            for rule in schema.get("x-kubernetes-validations") or []:
                lines.append(f"- Rule: {rule['message']}")
            lines += ["", "| field | type | description | constraints |", "|---|---|---|---|"]
            lines += _rows(schema, part, set(schema.get("required", [])))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/api-reference.md is stale: run `make crds`", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(DOC.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
