"""The committed OpenAPI document and the running app describe the same routes and methods."""

from __future__ import annotations

import json
from pathlib import Path

from anyon.api.app import create_app
from anyon.api.openapi.document import DOCUMENT_PATH, app_routes
from anyon.deployment.factory import build_deployment
from tests.conftest import make_config
from tests.live_server import live_server


def test_document_matches_the_app(tmp_path: Path) -> None:
    app = create_app(build_deployment(make_config(tmp_path)))
    in_app = {(path, method) for path, methods in app_routes(app).items() for method in methods}
    document = json.loads(DOCUMENT_PATH.read_text())
    in_doc = {(path, method) for path, ops in document["paths"].items() for method in ops}
    missing_from_doc = sorted(in_app - in_doc)
    missing_from_app = sorted(in_doc - in_app)
    assert not missing_from_doc, (
        f"routes missing from schemas/openapi.json (run python -m anyon.api.openapi): {missing_from_doc}"
    )
    assert not missing_from_app, f"documented routes the app does not serve: {missing_from_app}"
    assert ("/api/projects", "post") in in_app and ("/api/health", "get") in in_app


def test_served_at_api_openapi_json(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as server:
        document = server.get("/api/openapi.json").json()
        assert document["openapi"].startswith("3.") and "/api/tasks" in document["paths"]
