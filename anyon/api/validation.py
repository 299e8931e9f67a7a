"""Request-body and query-string validation, and the one description of each request shape.

Bodies and query strings are checked against a small declarative description (:class:`F`) before any
service runs, so bad input gets a 4xx naming the field and nothing is written. The same descriptions
feed the OpenAPI document (``anyon.api.openapi``), so what the document promises and what the server
accepts cannot drift apart. Unknown fields are refused: a typo in a field name should not silently do
nothing.

Every JSON body also passes three checks that no route may skip: it is valid UTF-8, it nests at most
:data:`MAX_JSON_DEPTH` levels (the parser is recursive; a deeper document would exhaust the stack), and
no string in it, key or value, contains a NUL character (paths, scripts and settings cannot hold one,
and PostgreSQL text cannot store one).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from anyon.api.envelope import ApiError
from anyon.services.git.refnames import branch_name_problem

MAX_JSON_DEPTH = 64

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "branch": (str,),
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
    """One field of a request body or query string.

    ``type`` is its JSON type (``branch`` is a string that must be a valid git branch name);
    ``required``/``nullable`` say whether it must be present / may be null; ``fields`` is the shape of
    an ``object`` field (checked like a body); ``enum`` lists the only values a string may take.
    """

    type: str
    required: bool = False
    nullable: bool = True
    fields: Mapping[str, F] | None = field(default=None, hash=False, compare=False)
    enum: tuple[str, ...] | None = None
    doc: str = ""


def parse_uuid(value: str, what: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise ApiError(400, f"BadRequest: {what} is not a valid UUID: {value!r}") from None


def _shape_problem(value: Any) -> str | None:
    """Why a parsed body is refused (too deep, or a string holding NUL), else None; iterative."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return f"NUL characters are not allowed ({at or 'the body'})"
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(item, dict):
                for key, sub in item.items():
                    if "\x00" in key:
                        return f"NUL characters are not allowed ({at or 'the body'}, a key)"
                    stack.append((sub, f"{at}.{key}" if at else key, depth + 1))
            else:
                stack.extend((sub, f"{at}[{i}]", depth + 1) for i, sub in enumerate(item))
    return None


def decode_json_text(raw: bytes) -> tuple[str, Any]:
    """``(text, value)`` of a JSON body after the UTF-8, depth and NUL checks (400 when one fails).

    The C parser stops with RecursionError long before the stack is at risk; anything it accepts is
    then walked (iteratively) for the depth limit and NULs.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"BadRequest: the body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise ApiError(400, "BadRequest: a JSON body is required")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ApiError(400, f"BadRequest: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"BadRequest: malformed JSON body: {exc}") from None
    problem = _shape_problem(value)
    if problem is not None:
        raise ApiError(400, f"BadRequest: {problem}")
    return text, value


def decode_json(raw: bytes) -> Any:
    return decode_json_text(raw)[1]


def _check_value(name: str, spec: F, value: Any) -> Any:
    expected = _JSON_TYPES[spec.type]
    if not isinstance(value, expected) or (spec.type == "int" and isinstance(value, bool)):
        raise ApiError(
            422, f"UnprocessableEntity: field `{name}` must be {spec.type}, got {type(value).__name__}"
        )
    if spec.type == "uuid":
        parse_uuid(str(value), f"field `{name}`")
    elif spec.type == "branch":
        problem = branch_name_problem(value)
        if problem is not None:
            raise ApiError(422, f"UnprocessableEntity: field `{name}` is not a valid branch name: {problem}")
    elif spec.type == "object" and spec.fields is not None:
        return check_body(value, spec.fields, what=f"`{name}`")
    elif isinstance(value, list):
        item = spec.type[5:-1]
        for element in value:
            if not isinstance(element, str):
                raise ApiError(422, f"UnprocessableEntity: field `{name}` must be a list of {item}")
            if item == "uuid":
                parse_uuid(element, f"an element of `{name}`")
    if spec.enum is not None and value not in spec.enum:
        raise ApiError(
            422, f"UnprocessableEntity: field `{name}` must be one of {', '.join(spec.enum)}, got {value!r}"
        )
    return value


def check_body(
    body: Any, fields: Mapping[str, F], *, what: str = "body", partial: bool = False
) -> dict[str, Any]:
    """Validate ``body`` against ``fields``; returns it with every declared key present (missing → None).

    With ``partial``, keys the body does not send stay absent from the result, so an update can tell
    "leave unchanged" (absent) from "clear" (null).
    """
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
            if not partial:
                out[name] = None
            continue
        value = body[name]
        if value is None:
            if not spec.nullable:
                raise ApiError(422, f"UnprocessableEntity: field `{name}` may not be null")
            out[name] = None
            continue
        out[name] = _check_value(name, spec, value)
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


class _Params(Protocol):
    def get_param(self, name: str) -> str | None: ...


def _query_value(name: str, spec: F, raw: str) -> Any:
    if "\x00" in raw:
        raise ApiError(400, f"BadRequest: query parameter `{name}` contains a NUL character")
    if spec.type == "uuid":
        return parse_uuid(raw, f"query parameter `{name}`")
    if spec.type == "bool":
        return query_bool(raw, name)
    if spec.type == "int":
        digits = raw.strip().removeprefix("-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 64:
            raise ApiError(400, f"BadRequest: query parameter `{name}` must be an integer")
        return int(raw.strip())
    if spec.type == "branch":
        problem = branch_name_problem(raw)
        if problem is not None:
            raise ApiError(400, f"BadRequest: query parameter `{name}` is not a valid branch name: {problem}")
    if spec.enum is not None and raw not in spec.enum:
        raise ApiError(
            400, f"BadRequest: query parameter `{name}` must be one of {', '.join(spec.enum)}, got {raw!r}"
        )
    return raw


def query_params(req: _Params, spec: Mapping[str, F]) -> dict[str, Any]:
    """The declared query parameters of ``req``, checked: uuids parsed, booleans read, NULs refused.

    A missing or empty optional parameter is None (a boolean one is False).
    """
    out: dict[str, Any] = {}
    for name, f in spec.items():
        raw = req.get_param(name)
        if raw is None or (raw == "" and not f.required):
            if f.required:
                raise ApiError(400, f"BadRequest: missing query parameter `{name}`")
            out[name] = False if f.type == "bool" else None
            continue
        out[name] = _query_value(name, f, raw)
    return out


def api_operation(
    *,
    body: Mapping[str, F] | str | None = None,
    query: Mapping[str, F] | None = None,
    data: str | None = None,
    body_required: bool = True,
    status: int = 200,
) -> Callable[[Any], Any]:
    """Describe a responder for the OpenAPI document: its body and query shapes and its ``data`` schema.

    ``body``/``query`` are the very mappings the responder validates with (a body validated by a service
    names its schema instead, e.g. ``"Config"``); ``data`` names a schema of ``anyon.api.schemas``
    (``"Task"``, ``"Task[]"``, ``"null"``; ``"raw:X"`` for a response that is not enveloped). Nothing
    changes at run time.
    """

    def mark(fn: Any) -> Any:
        fn.__api_operation__ = {
            "body": body,
            "query": query,
            "data": data,
            "body_required": body_required,
            "status": status,
        }
        return fn

    return mark
