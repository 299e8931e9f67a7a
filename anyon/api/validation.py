"""Request-body and query-string validation.

Bodies are checked against a small declarative description before any service runs, so bad
input gets a 4xx naming the field and nothing is written. Unknown fields are refused: a typo in
a field name should not silently do nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from anyon.api.envelope import ApiError

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "bool": (bool,),
    "int": (int,),
    "uuid": (str,),
    "list[uuid]": (list,),
    "list[str]": (list,),
    "object": (dict,),
    "any": (object,),
}


@dataclass(frozen=True)
class F:
    """One field of a request body: its JSON type, and whether it must be present / may be null."""

    type: str
    required: bool = False
    nullable: bool = True


def parse_uuid(value: str, what: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise ApiError(400, f"BadRequest: {what} is not a valid UUID: {value!r}") from None


def decode_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "BadRequest: a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"BadRequest: malformed JSON body: {exc}") from None


def check_body(body: Any, fields: dict[str, F], *, what: str = "body") -> dict[str, Any]:
    """Validate ``body`` against ``fields``; returns it with every declared key present (missing → None)."""
    if not isinstance(body, dict):
        raise ApiError(422, f"UnprocessableEntity: {what} must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(422, f"UnprocessableEntity: unknown field(s) in {what}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                raise ApiError(422, f"UnprocessableEntity: missing field `{name}` in {what}")
            out[name] = None
            continue
        value = body[name]
        if value is None:
            if not spec.nullable:
                raise ApiError(422, f"UnprocessableEntity: field `{name}` may not be null")
            out[name] = None
            continue
        expected = _JSON_TYPES[spec.type]
        if not isinstance(value, expected) or (spec.type == "int" and isinstance(value, bool)):
            raise ApiError(
                422, f"UnprocessableEntity: field `{name}` must be {spec.type}, got {type(value).__name__}"
            )
        if spec.type == "uuid":
            parse_uuid(str(value), f"field `{name}`")
        elif isinstance(value, list):
            item = spec.type[5:-1]
            for element in value:
                if not isinstance(element, str):
                    raise ApiError(422, f"UnprocessableEntity: field `{name}` must be a list of {item}")
                if item == "uuid":
                    parse_uuid(element, f"an element of `{name}`")
        out[name] = value
    return out


def query_bool(value: str | None, name: str, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ApiError(400, f"BadRequest: query parameter `{name}` must be true or false, got {value!r}")
