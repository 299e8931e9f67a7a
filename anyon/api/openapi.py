"""The OpenAPI document of the REST routes, derived from the route table.

``python -m anyon.api.openapi > schemas/openapi.json`` regenerates ``schemas/openapi.json``; a test
fails when the committed document and the running app disagree on a path or a method, so the
document cannot silently drift from the server.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import falcon.asgi

_RESPONDERS = ("get", "post", "put", "patch", "delete")
_ENVELOPE = {
    "type": "object",
    "required": ["success", "data", "error_data", "message"],
    "properties": {
        "success": {"type": "boolean"},
        "data": {},
        "error_data": {},
        "message": {"type": ["string", "null"]},
    },
}
DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"


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


def build_document(app: falcon.asgi.App[Any, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for template, methods in sorted(app_routes(app).items()):
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", template)
        ]
        operations: dict[str, Any] = {}
        for method, fn in sorted(methods.items()):
            operation: dict[str, Any] = {
                "summary": _summary(fn),
                "responses": {
                    "200": {
                        "description": "envelope (soft errors are 200 with success=false)",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}
                        },
                    },
                    "default": {
                        "description": "hard error in the envelope",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}
                        },
                    },
                },
            }
            if params:
                operation["parameters"] = params
            if method in ("post", "put", "patch"):
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            operations[method] = operation
        paths[template] = operations
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "anyon",
            "version": "1",
            "description": "REST API of the Anyon task board server. Field-level shapes: spec/types.md.",
        },
        "paths": paths,
        "components": {"schemas": {"Envelope": _ENVELOPE}},
    }


def main() -> int:
    import tempfile

    from anyon.api.app import create_app
    from anyon.config import load_config
    from anyon.deployment.factory import build_deployment

    with tempfile.TemporaryDirectory() as tmp:
        environ = {"HOME": tmp, "XDG_DATA_HOME": tmp, "ANYON_BASE_DIR": tmp, "ANYON_TEMP_DIR": f"{tmp}/tmp"}
        config = load_config(settings_file=None, environ=environ)
        app = create_app(build_deployment(config))
        json.dump(build_document(app), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
