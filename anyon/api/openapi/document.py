"""The OpenAPI document of the REST routes, derived from the route table and the validators.

Each responder's ``api_operation`` mark names the very field declarations it validates its body and
query string with; the request schemas are generated from those, and the response envelope's ``data``
from ``anyon.api.schemas`` (spec/types.md), so a property-based fuzzer driven by this document sends
inputs that reach the handlers.

The document is built from an app it is given; building the app is the job of ``__main__`` (the
regeneration command), so the resources that serve the document can import this module.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import falcon.asgi

from anyon.api.schemas import SCHEMAS, data_schema
from anyon.api.validation import F

_RESPONDERS = ("get", "post", "put", "patch", "delete")
# a subset of git's branch-name rules, so generated names are valid; the server checks the full rules
_BRANCH_PATTERN = r"^[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*$"
_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["success", "data", "error_data", "message"],
    "properties": {
        "success": {"type": "boolean"},
        "data": {},
        "error_data": {},
        "message": {"type": ["string", "null"]},
    },
}
# Routes whose responders live outside this package's annotated resources: the same description here.
_TOKEN_BODY = {"token": F("str", required=True, nullable=False)}
_EXTRA: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/auth/token", "post"): {"body": _TOKEN_BODY, "data": "AuthTokenResult"},
    ("/api/auth/token", "delete"): {"data": "null"},
    ("/login", "get"): {"data": "raw-html"},
    ("/metrics", "get"): {"data": "raw-text"},
    ("/api/events", "get"): {"data": "raw-sse"},
}
_RAW_TYPES = {
    "raw-html": "text/html",
    "raw-text": "text/plain",
    "raw-sse": "text/event-stream",
    "raw-wav": "audio/wav",
    "raw-image": "image/*",
}
#: Request bodies that are not JSON: a multipart form whose one file field is named after the suffix.
_MULTIPART = "multipart:"
NO_NUL = "^[^\\x00]*$"  # every JSON body and query string is refused when a string holds NUL
_SCALAR_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "pattern": NO_NUL},
    "branch": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _BRANCH_PATTERN},
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "uuid": {"type": "string", "format": "uuid"},
    "list[uuid]": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    "list[str]": {"type": "array", "items": {"type": "string", "pattern": NO_NUL}},
    "object": {"type": "object"},
    "any": {},
}
DOCUMENT_PATH = Path(__file__).resolve().parents[3] / "schemas" / "openapi.json"


def app_routes(app: falcon.asgi.App[Any, Any]) -> dict[str, dict[str, Any]]:
    """``{uri_template: {method: responder}}`` for every route of the app (WebSocket routes excluded)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(nodes: list[Any]) -> None:
        for node in nodes:
            if node.method_map:
                methods = {
                    m.lower(): fn
                    for m, fn in node.method_map.items()
                    if m.lower() in _RESPONDERS
                    and not getattr(fn, "__name__", "").startswith("method_not_allowed")
                    and getattr(fn, "__self__", None) is node.resource
                }
                if methods:
                    found[node.uri_template] = methods
            walk(node.children)

    walk(app._router._roots)
    return found


def _summary(fn: Any) -> str:
    doc = inspect.getdoc(fn) or inspect.getdoc(getattr(fn, "__self__", None)) or ""
    return doc.split("\n", 1)[0]


def field_schema(spec: F) -> dict[str, Any]:
    """The JSON Schema of one request field, from the same :class:`F` the validator checks."""
    schema: dict[str, Any]
    if spec.type == "object" and spec.fields is not None:
        schema = fields_schema(spec.fields)
    else:
        schema = dict(_SCALAR_SCHEMAS[spec.type])
    if spec.enum is not None:
        schema = {"type": "string", "enum": list(spec.enum)}
    if spec.nullable and schema:
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        schema["type"] = [schema["type"], "null"]
    if spec.doc:
        schema["description"] = spec.doc
    return schema


def fields_schema(fields: Mapping[str, F]) -> dict[str, Any]:
    """A body (or nested object) as the validator sees it: declared keys only, the required ones listed."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: field_schema(spec) for name, spec in fields.items()},
        "required": [name for name, spec in fields.items() if spec.required],
    }


def _query_parameters(query: Mapping[str, F]) -> list[dict[str, Any]]:
    params = []
    for name, spec in query.items():
        schema = field_schema(F(spec.type, enum=spec.enum, nullable=False))
        params.append({"name": name, "in": "query", "required": spec.required, "schema": schema})
    return params


def _envelope(data: dict[str, Any], error_data: dict[str, Any] | None = None) -> dict[str, Any]:
    envelope = copy.deepcopy(_ENVELOPE)
    envelope["properties"]["data"] = {"anyOf": [data, {"type": "null"}]}
    if error_data is not None:
        envelope["properties"]["error_data"] = {"anyOf": [error_data, {"type": "null"}]}
    return envelope


_HARD_ERROR: dict[str, Any] = {
    "description": "hard error in the envelope (message `<Kind>: <detail>`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}},
}


def _responses(meta: dict[str, Any]) -> dict[str, Any]:
    data = meta.get("data")
    if data in _RAW_TYPES:
        media = _RAW_TYPES[data]
        return {
            "200": {
                "description": f"not enveloped: {media}",
                "content": {media: {"schema": {"type": "string"}}},
            },
            "default": _HARD_ERROR,
        }
    if isinstance(data, str) and data.startswith("raw:"):
        return {
            "200": {
                "description": "not enveloped",
                "content": {"application/json": {"schema": data_schema(data[4:])}},
            },
            "default": _HARD_ERROR,
        }
    data_shape = data_schema(data) if data else {}
    error_data = data_schema("GitOperationError") if meta.get("error_data") else None
    ok = {
        "description": "the envelope: `data` on success; soft errors are HTTP 200 with success=false",
        "content": {"application/json": {"schema": _envelope(data_shape, error_data)}},
    }
    return {
        str(meta.get("status", 200)): ok,
        "default": _HARD_ERROR,
    }


def _operation(template: str, method: str, fn: Any, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    meta: dict[str, Any] = dict(
        getattr(fn, "__api_operation__", None) or _EXTRA.get((template, method)) or {}
    )
    if template.endswith("/rebase"):
        meta["error_data"] = True
    operation: dict[str, Any] = {"summary": _summary(fn), "responses": _responses(meta)}
    hard = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
    operation["responses"]["403"] = {
        "description": "the browser boundary: a Host that is not loopback, the listen address or a public "
        "host, or a foreign Origin (anyon/api/boundary.py)",
        **hard,
    }
    if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
        operation["responses"]["415"] = {"description": "a body that is not application/json", **hard}
    params = path_params + _query_parameters(meta.get("query") or {})
    if params:
        operation["parameters"] = params
    body = meta.get("body")
    if isinstance(body, str) and body.startswith(_MULTIPART):
        field = body[len(_MULTIPART) :]
        form = {"type": "object", "properties": {field: {"type": "string", "format": "binary"}}}
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": {**form, "required": [field]}}},
        }
    elif body is not None:
        schema = data_schema(body) if isinstance(body, str) else fields_schema(body)
        operation["requestBody"] = {
            "required": bool(meta.get("body_required", True)),
            "content": {"application/json": {"schema": schema}},
        }
    return operation


def build_document(app: falcon.asgi.App[Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document: bodies and queries from the validators, ``data`` from ``schemas``."""
    paths: dict[str, Any] = {}
    for template, methods in sorted(app_routes(app).items()):
        path_params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"}
                if name.endswith("_id") and name != "session_id"
                else {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            }
            for name in re.findall(r"{(\w+)}", template)
        ]
        paths[template] = {
            method: _operation(template, method, fn, path_params) for method, fn in sorted(methods.items())
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "anyon",
            "version": "1",
            "description": "REST API of the Anyon task board server. Field-level shapes: spec/types.md.",
        },
        "paths": paths,
        "components": {"schemas": {"Envelope": _ENVELOPE, **SCHEMAS}},
    }
