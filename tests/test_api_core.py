"""The REST core against a real uvicorn on 127.0.0.1, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

ENVELOPE_KEYS = {"success", "data", "error_data", "message"}


@pytest.fixture
def server(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # onboarding and the pickers look at home: never the real one
    config = make_config(tmp_path, database={"url": database_url})
    with live_server(config) as live:
        yield live


def soft_error(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False and body["data"] is None
    return str(body["message"])


def hard_error(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == ENVELOPE_KEYS and body["success"] is False
    assert "Traceback" not in response.text
    return str(body["message"])


def new_project(server: LiveServer, tmp_path: Path, name: str = "demo") -> dict:  # type: ignore[type-arg]
    return server.ok(
        "POST",
        "/api/projects",
        json={"name": name, "git_repo_path": str(tmp_path / name), "use_existing_repo": False},
    )


def test_health_and_envelope(server: LiveServer) -> None:
    response = server.get("/api/health")
    assert response.json() == {"success": True, "data": "OK", "error_data": None, "message": None}


def test_info_has_a_complete_fresh_config(server: LiveServer) -> None:
    info = server.ok("GET", "/api/info")
    assert set(info) >= {
        "config",
        "analytics_user_id",
        "executors",
        "environment",
        "github_secret_state",
        "claude_secret_state",
        "is_cloud",
        "capabilities",
    }
    config = info["config"]
    assert config["config_version"] == "v7"
    assert config["executor_profile"] == {"executor": "CLAUDE_CODE"}
    assert config["git_branch_prefix"] == "vk"
    assert config["github"]["pat"] is None and config["github"]["oauth_token"] is None
    assert info["is_cloud"] is False
    assert "CLAUDE_CODE" in info["executors"]
    assert set(info["environment"]) == {"os_type", "os_version", "os_architecture", "bitness"}


def test_put_config_persists_and_hides_tokens(server: LiveServer, tmp_path: Path) -> None:
    config = server.ok("GET", "/api/info")["config"]
    config.update(disclaimer_acknowledged=True, theme="DARK")
    config["github"]["pat"] = "ghp_canary_secret_value"
    saved = server.ok("PUT", "/api/config", json=config)
    assert saved["theme"] == "DARK" and saved["github"]["pat"] is None
    info = server.ok("GET", "/api/info")
    assert info["config"]["theme"] == "DARK"
    assert info["github_secret_state"]["has_pat"] is True
    stored = (tmp_path / "anyon" / "data" / "config.json").read_text()
    assert "ghp_canary_secret_value" not in stored


def test_put_config_rejects_bad_prefix_and_bad_types(server: LiveServer) -> None:
    config = server.ok("GET", "/api/info")["config"]
    bad = dict(config, git_branch_prefix="a/b")
    assert "Invalid git branch prefix" in soft_error(server.put("/api/config", json=bad))
    assert "theme" in soft_error(server.put("/api/config", json=dict(config, theme="PURPLE")))
    assert server.ok("GET", "/api/info")["config"]["git_branch_prefix"] == "vk"


def test_dev_login_and_github_check(server: LiveServer) -> None:
    assert server.ok("GET", "/api/auth/github/check") == "INVALID"
    assert server.ok("POST", "/api/auth/dev-login") == "SUCCESS"
    assert server.ok("GET", "/api/auth/github/check") == "VALID"
    config = server.ok("GET", "/api/info")["config"]
    assert config["github"]["username"] == "Dev User" and config["github_login_acknowledged"] is True


def test_internet_routes_answer_a_soft_error(server: LiveServer) -> None:
    assert "GitHub" in soft_error(server.post("/api/auth/github/device/start"))


def test_project_create_initialises_a_main_branch(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    assert set(project) == {
        "id",
        "name",
        "git_repo_path",
        "setup_script",
        "dev_script",
        "cleanup_script",
        "copy_files",
        "created_at",
        "updated_at",
    }
    repo = pygit2.Repository(project["git_repo_path"])
    assert repo.head.shorthand == "main"
    assert server.ok("GET", f"/api/projects/{project['id']}") == project
    assert [p["id"] for p in server.ok("GET", "/api/projects")] == [project["id"]]


def test_project_empty_path_goes_to_workspace(server: LiveServer, tmp_path: Path) -> None:
    project = server.ok(
        "POST", "/api/projects", json={"name": "  spaced  ", "git_repo_path": "", "use_existing_repo": False}
    )
    assert project["name"] == "spaced"
    assert project["git_repo_path"] == str(tmp_path / "anyon" / "workspace" / "spaced")


def test_project_creation_rules(server: LiveServer, tmp_path: Path) -> None:
    for name in ["", "   ", "a/b", "bad:name", "q?", "x\x01"]:
        soft_error(
            server.post("/api/projects", json={"name": name, "git_repo_path": "", "use_existing_repo": False})
        )
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    too_long = tmp_path / ("x" * 300)
    cases = [(a_file, True), (a_file, False), (tmp_path / "missing", True), (tmp_path, True)]
    for path, existing in [*cases, (too_long, True), (too_long, False)]:
        soft_error(
            server.post(
                "/api/projects", json={"name": "p", "git_repo_path": str(path), "use_existing_repo": existing}
            )
        )
    new_project(server, tmp_path, "dup")
    message = soft_error(
        server.post(
            "/api/projects",
            json={"name": "x", "git_repo_path": str(tmp_path / "dup"), "use_existing_repo": True},
        )
    )
    assert message == "A project with this git repository path already exists"
    assert len(server.ok("GET", "/api/projects")) == 1


def test_existing_repo_without_commits_gets_main(server: LiveServer, tmp_path: Path) -> None:
    pygit2.init_repository(str(tmp_path / "empty"), initial_head="trunk")
    project = server.ok(
        "POST",
        "/api/projects",
        json={"name": "e", "git_repo_path": str(tmp_path / "empty"), "use_existing_repo": True},
    )
    assert pygit2.Repository(project["git_repo_path"]).head.shorthand == "main"


def test_project_update_and_delete(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    updated = server.ok(
        "PUT",
        f"/api/projects/{project['id']}",
        json={
            "name": None,
            "setup_script": "echo hi",
            "dev_script": None,
            "cleanup_script": None,
            "copy_files": ".env",
        },
    )
    assert (
        updated["name"] == "demo" and updated["setup_script"] == "echo hi" and updated["copy_files"] == ".env"
    )
    assert server.ok("DELETE", f"/api/projects/{project['id']}") is None
    hard_error(server.get(f"/api/projects/{project['id']}"), 404)


def test_task_lifecycle(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    task = server.ok(
        "POST",
        "/api/tasks",
        json={
            "project_id": project["id"],
            "title": "Fix it",
            "description": "",
            "parent_task_attempt": None,
            "image_ids": None,
        },
    )
    assert task["status"] == "todo" and task["description"] is None
    assert set(task) == {
        "id",
        "project_id",
        "title",
        "description",
        "status",
        "parent_task_attempt",
        "created_at",
        "updated_at",
    }
    listed = server.ok("GET", f"/api/tasks?project_id={project['id']}")
    assert listed[0]["id"] == task["id"]
    assert listed[0]["has_in_progress_attempt"] is False and listed[0]["executor"] == ""
    updated = server.ok("PUT", f"/api/tasks/{task['id']}", json={"status": "inprogress", "title": None})
    assert updated["status"] == "inprogress" and updated["title"] == "Fix it"
    soft_error(server.put(f"/api/tasks/{task['id']}", json={"status": "plan"}))
    response = server.delete(f"/api/tasks/{task['id']}")
    assert response.status_code == 202 and response.json()["success"] is True
    hard_error(server.get(f"/api/tasks/{task['id']}"), 404)
    assert server.ok("GET", f"/api/images/task/{task['id']}") == []


def test_attempt_and_process_reads(server: LiveServer) -> None:
    assert server.ok("GET", "/api/task-attempts") == []
    hard_error(server.get(f"/api/task-attempts/{uuid.uuid4()}"), 404)
    assert server.ok("GET", f"/api/execution-processes?task_attempt_id={uuid.uuid4()}") == []
    hard_error(server.get(f"/api/execution-processes/{uuid.uuid4()}"), 404)


def test_tags_crud(server: LiveServer) -> None:
    tag = server.ok("POST", "/api/tags", json={"tag_name": "bug", "content": "Fix the bug"})
    assert server.ok("GET", "/api/tags?search=BU")[0]["id"] == tag["id"]
    assert server.ok("GET", "/api/tags?search=zzz") == []
    assert server.ok("PUT", f"/api/tags/{tag['id']}", json={"content": "New"})["content"] == "New"
    soft_error(server.post("/api/tags", json={"tag_name": "has space", "content": "x"}))
    soft_error(server.post("/api/tags", json={"tag_name": "ok", "content": "  "}))
    assert server.ok("DELETE", f"/api/tags/{tag['id']}") is None
    assert server.ok("GET", "/api/tags") == []


def test_filesystem_directory(server: LiveServer, tmp_path: Path) -> None:
    root = tmp_path / "browse"
    for name in ("b_dir", "A_dir", ".hidden"):
        (root / name).mkdir(parents=True)
    (root / "a_file").write_text("x")
    pygit2.init_repository(str(root / "b_dir"))
    listing = server.ok("GET", "/api/filesystem/directory", params={"path": str(root)})
    assert [e["name"] for e in listing["entries"]] == ["A_dir", "b_dir", "a_file"]
    assert listing["current_path"] == str(root)
    assert next(e for e in listing["entries"] if e["name"] == "b_dir")["is_git_repo"] is True
    missing = server.get("/api/filesystem/directory", params={"path": str(root / "nope")})
    assert soft_error(missing) == "Directory does not exist"
    not_dir = server.get("/api/filesystem/directory", params={"path": str(root / "a_file")})
    assert soft_error(not_dir) == "Path is not a directory"
    too_long = str(root / ("x" * 300))
    for route in ("/api/filesystem/directory", "/api/filesystem/git-repos"):
        assert soft_error(server.get(route, params={"path": too_long})) == "Invalid path: File name too long"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/projects", b"{not json"),
        ("POST", "/api/projects", b"[]"),
        ("POST", "/api/projects", b'{"name": 5, "git_repo_path": "", "use_existing_repo": false}'),
        ("POST", "/api/projects", b'{"name": "x", "git_repo_path": ""}'),
        (
            "POST",
            "/api/projects",
            b'{"name": "x", "git_repo_path": "", "use_existing_repo": false, "extra": 1}',
        ),
        ("POST", "/api/tasks", b'{"project_id": "not-a-uuid", "title": "t"}'),
        ("POST", "/api/tasks", b""),
        ("PUT", "/api/config", b"nope"),
    ],
)
def test_bad_bodies_get_4xx_and_write_nothing(
    server: LiveServer, method: str, path: str, body: bytes
) -> None:
    response = server.client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == ENVELOPE_KEYS and response.json()["success"] is False
    assert server.ok("GET", "/api/projects") == []


def test_ids_and_unknown_rows(server: LiveServer) -> None:
    hard_error(server.get("/api/projects/not-a-uuid"), 400)
    hard_error(server.get(f"/api/projects/{uuid.uuid4()}"), 404)
    hard_error(server.put(f"/api/tasks/{uuid.uuid4()}", json={"title": "x"}), 404)
    hard_error(server.delete(f"/api/tags/{uuid.uuid4()}"), 404)
    soft_error(server.post("/api/tasks", json={"project_id": str(uuid.uuid4()), "title": "x"}))


def test_oversized_body_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path, server={"max_body_bytes": 1024})
    with live_server(config) as server:
        big = json.dumps({"tag_name": "x", "content": "y" * 5000})
        hard_error(server.post("/api/tags", content=big, headers={"content-type": "application/json"}), 413)
        assert server.ok("GET", "/api/tags") == []


def test_ui_headers_and_cors(server: LiveServer) -> None:
    own = server.base_url
    ui_headers = {"sentry-trace": "abc-def-1", "baggage": "k=v", "Origin": own}
    response = server.get("/api/health", headers=ui_headers)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers  # same-origin: no CORS needed, none given
    foreign = server.get("/api/health", headers={"Origin": "http://x"})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
    preflight = server.client.options(
        "/api/projects", headers={"Origin": "http://x", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    assert not any(h.startswith("access-control-") for h in preflight.headers)


def test_cors_allow_list(tmp_path: Path) -> None:
    config = make_config(tmp_path, server={"cors_allowed_origins": ("http://ok.example",)})
    with live_server(config) as server:
        allowed = server.get("/api/health", headers={"Origin": "http://ok.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://ok.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        denied = server.get("/api/health", headers={"Origin": "http://evil.example"})
        assert denied.status_code == 403 and "access-control-allow-origin" not in denied.headers


def test_frontend_spa_fallback(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>ui</html>")
    (dist / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("no")
    with live_server(make_config(tmp_path, server={"frontend_dir": str(dist)})) as server:
        assert server.get("/").text == "<html>ui</html>"
        assert server.get("/projects/123/tasks").text == "<html>ui</html>"
        assert server.get("/assets/app.js").text == "console.log(1)"
        assert server.get("/../secret.txt").text == "<html>ui</html>"
        hard_error(server.get("/api/nope"), 404)


def test_no_frontend_gives_plain_404(server: LiveServer) -> None:
    response = server.get("/some/page")
    assert response.status_code == 404 and response.text == "404 Not Found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/github/repositories?page=1"),
    ],
)
def test_peripheral_routes_answer_soft_errors(server: LiveServer, method: str, path: str) -> None:
    assert soft_error(server.client.request(method, path))


def test_container_info(server: LiveServer) -> None:
    hard_error(server.get("/api/containers/info", params={"ref": "/nowhere"}), 404)
    hard_error(server.get("/api/containers/info"), 400)


def test_concurrent_creates_of_one_path_keep_one_project_and_its_repository(
    server: LiveServer, tmp_path: Path
) -> None:
    import concurrent.futures

    body = {"name": "race", "git_repo_path": str(tmp_path / "race"), "use_existing_repo": False}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: server.post("/api/projects", json=body).json(), range(4)))
    assert sum(r["success"] for r in responses) == 1
    assert all(
        r["message"] == "A project with this git repository path already exists"
        for r in responses
        if not r["success"]
    )
    assert pygit2.Repository(str(tmp_path / "race")).head.shorthand == "main"
    assert len(server.ok("GET", "/api/projects")) == 1


def test_project_update_refuses_a_path_that_is_not_a_repository(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    body = {"git_repo_path": str(tmp_path / "nowhere"), "setup_script": None, "dev_script": None}
    assert "not a git repository" in soft_error(server.put(f"/api/projects/{project['id']}", json=body))
    other = new_project(server, tmp_path, "other")
    taken = server.put(f"/api/projects/{project['id']}", json={"git_repo_path": other["git_repo_path"]})
    assert soft_error(taken) == "A project with this git repository path already exists"
    assert server.ok("GET", f"/api/projects/{project['id']}")["git_repo_path"] == project["git_repo_path"]
