"""RFC 7644 §3.4.2.2 filters and §3.5.2 PATCH paths: parse into an AST, evaluate against a resource.

Pure functions, no I/O. Every malformed input raises ScimError(400, invalidFilter / invalidPath);
size and nesting are bounded so a hostile filter costs little.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from kubescim.scim.errors import ScimError, ScimType
from kubescim.scim.schema import GROUP_URN, USER_URN, Attribute, Schema, find_attribute

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 24
MAX_NODES = 200
COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
Value = str | bool | int | float | None
_CORE_URNS = frozenset({USER_URN.lower(), GROUP_URN.lower()})


@dataclass(frozen=True)
class AttrPath:
    """[urn:]attr[.sub]; `urn` is None for core attributes."""

    attr: str
    sub: str | None = None
    urn: str | None = None

    def __str__(self) -> str:
        text = f"{self.urn}:{self.attr}" if self.urn else self.attr
        return f"{text}.{self.sub}" if self.sub else text


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Value


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    inner: Filter


@dataclass(frozen=True)
class ValuePath:
    """attr[filter]: true when some element of the multi-valued attr matches the inner filter."""

    path: AttrPath
    inner: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH target: attrPath, or valuePath with an optional sub-attribute (members[value eq "x"].display)."""

    attr: AttrPath
    value_filter: Filter | None = None
    sub: str | None = None


# --- tokenizer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "(", ")", "[", "]"
    text: str
    value: Any = None
    position: int = 0


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\r\n":
            i += 1
        elif char in "()[]":
            tokens.append(Token(char, char, position=i))
            i += 1
        elif char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _filter_error(f"unterminated string at position {i}")
            raw = text[i : j + 1]
            try:
                value = json.loads(raw)
            except ValueError:
                raise _filter_error(f"invalid string literal at position {i}") from None
            tokens.append(Token("string", raw, value, i))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n()[]"':
                j += 1
            tokens.append(Token("word", text[i:j], position=i))
            i = j
    return tokens


def _filter_error(detail: str) -> ScimError:
    return ScimError(400, f"Invalid filter: {detail}", ScimType.INVALID_FILTER)


def parse_attr_path(text: str, *, allow_sub: bool = True) -> AttrPath:
    """`userName`, `name.givenName`, `urn:...:User:employeeNumber`, `urn:...:User:manager.value`."""
    if not text or len(text) > 1024:
        raise _filter_error(f"invalid attribute path {text[:80]!r}")
    urn: str | None = None
    rest = text
    if text.lower().startswith("urn:"):
        urn, sep, rest = text.rpartition(":")
        if not sep or not urn or not rest:
            raise _filter_error(f"invalid attribute path {text[:80]!r}")
    attr, _, sub = rest.partition(".")
    if not _is_attr_name(attr) or (sub and (not allow_sub or not _is_attr_name(sub))) or (_ and not sub):
        raise _filter_error(f"invalid attribute path {text[:80]!r}")
    return AttrPath(attr, sub or None, urn)


def _is_attr_name(name: str) -> bool:
    # ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; "$ref" is allowed as a sub-attribute.
    if name == "$ref":
        return True
    return (
        bool(name)
        and name[0].isascii()
        and name[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    )


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.nodes = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _filter_error("unexpected end of filter")
        self.i += 1
        return token

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise _filter_error(f"expected {kind!r} at position {token.position}, found {token.text[:40]!r}")
        return token

    def count(self, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _filter_error(f"more than {MAX_NODES} expressions")
        if depth > MAX_DEPTH:
            raise _filter_error(f"nested deeper than {MAX_DEPTH} levels")

    def is_keyword(self, token: Token | None, word: str) -> bool:
        return token is not None and token.kind == "word" and token.text.lower() == word

    def parse_or(self, depth: int, in_value_path: bool) -> Filter:
        left = self.parse_and(depth, in_value_path)
        while self.is_keyword(self.peek(), "or"):
            self.take()
            self.count(depth)
            left = Or(left, self.parse_and(depth, in_value_path))
        return left

    def parse_and(self, depth: int, in_value_path: bool) -> Filter:
        left = self.parse_unary(depth, in_value_path)
        while self.is_keyword(self.peek(), "and"):
            self.take()
            self.count(depth)
            left = And(left, self.parse_unary(depth, in_value_path))
        return left

    def parse_unary(self, depth: int, in_value_path: bool) -> Filter:
        self.count(depth)
        token = self.peek()
        if token is None:
            raise _filter_error("unexpected end of filter")
        if self.is_keyword(token, "not") and (nxt := self.peek(1)) is not None and nxt.kind == "(":
            self.take()
            self.take()
            inner = self.parse_or(depth + 1, in_value_path)
            self.expect(")")
            return Not(inner)
        if token.kind == "(":
            self.take()
            inner = self.parse_or(depth + 1, in_value_path)
            self.expect(")")
            return inner
        if token.kind != "word":
            raise _filter_error(f"expected an attribute at position {token.position}, found {token.text[:40]!r}")
        self.take()
        path = parse_attr_path(token.text)
        nxt = self.peek()
        if nxt is not None and nxt.kind == "[":
            if in_value_path:
                raise _filter_error("value filters cannot be nested")
            if path.sub:
                raise _filter_error(f"a value filter applies to an attribute, not {path}")
            self.take()
            inner = self.parse_or(depth + 1, in_value_path=True)
            self.expect("]")
            return ValuePath(path, inner)
        operator = self.take()
        op = operator.text.lower()
        if operator.kind != "word" or (op != "pr" and op not in COMPARE_OPS):
            raise _filter_error(f"unknown operator {operator.text[:40]!r} at position {operator.position}")
        if op == "pr":
            return Present(path)
        value = self.parse_value()
        if op in ("co", "sw", "ew") and not isinstance(value, str):
            raise _filter_error(f"operator {op} needs a string value")
        if op in ORDER_OPS and (value is None or isinstance(value, bool)):
            raise _filter_error(f"operator {op} needs a string, number or date value")
        return Compare(path, op, value)

    def parse_value(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return str(token.value)
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "null":
                return None
            try:
                number = json.loads(token.text)
            except ValueError:
                number = None
            if isinstance(number, int | float) and not isinstance(number, bool):
                return number
        raise _filter_error(f"invalid comparison value {token.text[:40]!r} at position {token.position}")


def parse_filter(text: str) -> Filter:
    if len(text) > MAX_FILTER_LENGTH:
        raise _filter_error(f"longer than {MAX_FILTER_LENGTH} characters")
    if "\x00" in text:
        raise _filter_error("contains a NUL character")
    parser = _Parser(_tokenize(text))
    if not parser.tokens:
        raise _filter_error("empty filter")
    result = parser.parse_or(0, in_value_path=False)
    if parser.peek() is not None:
        extra = parser.peek()
        assert extra is not None
        raise _filter_error(f"unexpected {extra.text[:40]!r} at position {extra.position}")
    return result


def parse_patch_path(text: str) -> PatchPath:
    """PATH = attrPath / valuePath [subAttr] (RFC 7644 §3.5.2)."""
    try:
        if len(text) > MAX_FILTER_LENGTH or "\x00" in text:
            raise _filter_error("path too long or contains NUL")
        bracket = text.find("[")
        if bracket < 0:
            return PatchPath(parse_attr_path(text.strip()))
        close = text.rfind("]")
        if close < bracket:
            raise _filter_error("unbalanced '['")
        attr = parse_attr_path(text[:bracket].strip(), allow_sub=False)
        inner_text = text[bracket + 1 : close]
        parser = _Parser(_tokenize(inner_text))
        if not parser.tokens:
            raise _filter_error("empty value filter")
        inner = parser.parse_or(1, in_value_path=True)
        if parser.peek() is not None:
            raise _filter_error("unexpected text in value filter")
        tail = text[close + 1 :].strip()
        sub = None
        if tail:
            if not tail.startswith(".") or not _is_attr_name(tail[1:]):
                raise _filter_error(f"invalid sub-attribute {tail[:40]!r}")
            sub = tail[1:]
        return PatchPath(attr, inner, sub)
    except ScimError as error:
        raise ScimError(400, error.detail.replace("Invalid filter", "Invalid path"), ScimType.INVALID_PATH) from None


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceSchema:
    """The core schema of a resource type and its known extension schemas, for typed comparison."""

    core: Schema
    extensions: tuple[Schema, ...] = ()

    def attribute(self, path: AttrPath) -> Attribute | None:
        if path.urn is None or path.urn.lower() == self.core.id.lower():
            return find_attribute(self.core, path.attr)
        for extension in self.extensions:
            if extension.id.lower() == path.urn.lower():
                return extension.attribute(path.attr)
        return None


def get_key(obj: dict[str, Any], name: str) -> Any:
    """Case-insensitive key lookup (SCIM attribute names are case-insensitive)."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return value
    return None


def resolve(resource: dict[str, Any], path: AttrPath, schema: ResourceSchema) -> Any:
    """The value at path (without the sub-attribute), or None."""
    container: Any = resource
    if path.urn is not None and path.urn.lower() != schema.core.id.lower():
        container = get_key(resource, path.urn)
        if not isinstance(container, dict):
            return None
    return get_key(container, path.attr)


def evaluate(node: Filter, resource: dict[str, Any], schema: ResourceSchema) -> bool:
    match node:
        case And(left, right):
            return evaluate(left, resource, schema) and evaluate(right, resource, schema)
        case Or(left, right):
            return evaluate(left, resource, schema) or evaluate(right, resource, schema)
        case Not(inner):
            return not evaluate(inner, resource, schema)
        case ValuePath(path, inner):
            values = resolve(resource, path, schema)
            elements = values if isinstance(values, list) else [values] if isinstance(values, dict) else []
            attribute = schema.attribute(path)
            element_schema = _element_schema(attribute, schema)
            return any(isinstance(e, dict) and evaluate(inner, e, element_schema) for e in elements)
        case Present(path):
            return any(_present(v) for v in attribute_values(resource, path, schema))
        case Compare(path, op, value):
            attribute = _leaf_attribute(path, schema)
            return any(_compare(v, op, value, attribute) for v in attribute_values(resource, path, schema))
    raise AssertionError(f"unknown filter node {node!r}")  # pragma: no cover


def _element_schema(attribute: Attribute | None, schema: ResourceSchema) -> ResourceSchema:
    sub_schema = Schema("", "", "", attribute.sub_attributes if attribute else ())
    return ResourceSchema(sub_schema)


def _leaf_attribute(path: AttrPath, schema: ResourceSchema) -> Attribute | None:
    attribute = schema.attribute(path)
    if attribute is None:
        return None
    if path.sub:
        return attribute.sub(path.sub)
    if attribute.type == "complex":
        return attribute.sub("value")
    return attribute


def attribute_values(resource: dict[str, Any], path: AttrPath, schema: ResourceSchema) -> list[Any]:
    value = resolve(resource, path, schema)
    items = value if isinstance(value, list) else [value]
    sub = path.sub
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            out.append(get_key(item, sub or "value"))
        elif sub is None:
            out.append(item)
    return out


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _parse_datetime(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _compare(actual: Any, op: str, expected: Value, attribute: Attribute | None) -> bool:
    if expected is None:
        if op == "eq":
            return not _present(actual)
        if op == "ne":
            return _present(actual)
        raise _filter_error(f"operator {op} cannot compare with null")
    if actual is None or isinstance(actual, dict | list):
        return op == "ne"
    attr_type = attribute.type if attribute else None
    if isinstance(actual, bool) or attr_type == "boolean":
        if op in ORDER_OPS or op in ("co", "sw", "ew"):
            raise _filter_error(f"operator {op} is not defined for boolean attributes")
        expected_bool = _as_bool(expected)
        actual_bool = _as_bool(actual)
        if expected_bool is None or actual_bool is None:
            return op == "ne"
        return (actual_bool == expected_bool) == (op == "eq")
    if attr_type == "dateTime" and isinstance(actual, str) and isinstance(expected, str):
        left, right = _parse_datetime(actual), _parse_datetime(expected)
        if left is not None and right is not None:
            return _ordered(left, op, right)
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        if op in ("co", "sw", "ew"):
            raise _filter_error(f"operator {op} is not defined for numbers")
        return _ordered(actual, op, expected)
    left_text, right_text = str(actual), str(expected)
    if not (attribute.case_exact if attribute else False):
        left_text, right_text = left_text.casefold(), right_text.casefold()
    if op == "co":
        return right_text in left_text
    if op == "sw":
        return left_text.startswith(right_text)
    if op == "ew":
        return left_text.endswith(right_text)
    return _ordered(left_text, op, right_text)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _ordered(left: Any, op: str, right: Any) -> bool:
    try:
        match op:
            case "eq":
                return bool(left == right)
            case "ne":
                return bool(left != right)
            case "gt":
                return bool(left > right)
            case "ge":
                return bool(left >= right)
            case "lt":
                return bool(left < right)
            case "le":
                return bool(left <= right)
    except TypeError:
        return False
    raise _filter_error(f"operator {op} is not defined for this attribute")


def equality_lookup(node: Filter, attr: str) -> Value | None:
    """If the filter is `attr eq "v"` (core attribute, any case), return v: the index can answer it."""
    core_urn = isinstance(node, Compare) and (node.path.urn is None or node.path.urn.lower() in _CORE_URNS)
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and node.path.sub is None
        and isinstance(node.value, str)
        and node.path.attr.lower() == attr.lower()
        and core_urn
    ):
        return node.value
    return None


def attributes_named(node: Filter) -> set[str]:
    """The (lower-cased) top-level attribute names a filter reads: what a caller must render."""
    match node:
        case Compare(path) | Present(path) | ValuePath(path):
            return {path.attr.lower()}
        case And(left, right) | Or(left, right):
            return attributes_named(left) | attributes_named(right)
        case Not(inner):
            return attributes_named(inner)
    return set()
