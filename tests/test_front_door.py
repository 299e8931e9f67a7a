"""``/`` without a web UI, and the interactive API docs at ``/api/docs``: served from this origin only,
behind the same browser boundary and token as every other route."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_auth import CANARY, bearer, reachable_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, notifications={"desktop": False})) as live:
        yield live


def test_front_door_says_what_this_is_and_how_to_add_the_ui(server: LiveServer) -> None:
    response = server.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert (
        "anyon is running" in page and "server.frontend_dir" in page and "ANYON_SERVER__FRONTEND_DIR" in page
    )
    assert 'href="/api/docs"' in page and 'href="/api/openapi.json"' in page
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script" not in csp  # no script may run on it at all
    assert "<script" not in page
    assert server.get("/some/page").text == "404 Not Found"  # other paths stay a plain 404


def test_api_docs_render_from_this_origin_only(server: LiveServer) -> None:
    page = server.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/api/docs/") for u in urls), urls  # nothing from a CDN
    for url in urls:
        asset = server.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["x-content-type-options"] == "nosniff"
    bundle = server.get("/api/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript") and len(bundle.content) > 100_000
    assert "/api/openapi.json" in server.get("/api/docs/init.js").text
    assert server.get("/api/openapi.json").json()["paths"]["/api/images/upload"]["post"]
    for name in ["index.j2", "..%2F..%2F..%2Fetc%2Fpasswd", "swagger-ui.js.map", "oauth2-redirect.html"]:
        assert server.get(f"/api/docs/{name}").status_code == 404, name


def test_docs_keep_the_browser_boundary(server: LiveServer) -> None:
    foreign = server.get("/api/docs", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    rebound = server.get("/api/docs", headers={"Host": "evil.example"})
    assert rebound.status_code == 403
    assert server.get("/", headers={"Host": "evil.example"}).status_code == 403


def test_docs_need_the_token_when_reachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    with live_server(reachable_config(tmp_path)) as server:
        for path in ("/api/docs", "/api/docs/init.js", "/"):
            response = server.get(path)
            assert response.status_code in (401, 303), (path, response.status_code)
            assert CANARY not in response.text
        assert server.get("/api/docs", headers=bearer()).status_code == 200


def test_with_a_frontend_dir_the_ui_is_served_at_the_root(tmp_path: Path) -> None:
    ui = tmp_path / "dist"
    ui.mkdir()
    (ui / "index.html").write_text("<html>the board</html>")
    with live_server(make_config(tmp_path, server={"frontend_dir": str(ui)})) as server:
        assert server.get("/").text == "<html>the board</html>"
        assert server.get("/api/docs").status_code == 200


def _browser() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_a_browser_renders_the_docs_under_their_csp(server: LiveServer) -> None:
    """A real headless browser loads /api/docs: the scripts run under the page's CSP and draw every route."""
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    result = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",  # tests may run as root
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{server.base_url}/api/docs",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    dom = result.stdout
    assert "Unable to render" not in dom, dom[-2000:]
    assert "/api/images/upload" in dom and "/api/mcp-config" in dom, dom[-2000:]
    assert "Content Security Policy" not in result.stderr  # nothing on the page was refused
