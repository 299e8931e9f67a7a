"""/metrics through a real server: every series carries ``deployment``, figures follow what happens."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from anyon.observability.metrics import Metrics
from anyon.services.db.models import ExecutionProcess, Project, Task, TaskAttempt
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server


def scrape(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{key} not in {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_metrics_cover_http_streams_processes_and_executions(tmp_path: Path) -> None:
    # an open SSE stream holds shutdown for the graceful timeout: keep it short
    with live_server(make_config(tmp_path, server={"shutdown_timeout_seconds": 1.0})) as server:
        project = server.ok(
            "POST",
            "/api/projects",
            json={"name": "p", "git_repo_path": str(tmp_path / "repo"), "use_existing_repo": False},
        )
        server.get(f"/api/projects/{project['id']}")
        _seed_processes(server, project["id"])
        url = f"{server.ws_url}/api/tasks/stream/ws?project_id={project['id']}"
        with connect(url, open_timeout=10) as conn:
            conn.recv(timeout=10)
            samples = scrape(server)
            assert value(samples, "anyon_stream_clients", deployment="local", kind="websocket") == 1
        deadline = time.monotonic() + 10
        while value(scrape(server), "anyon_stream_clients", deployment="local", kind="websocket") != 0:
            assert time.monotonic() < deadline, "the WebSocket count never went back to 0"
            time.sleep(0.05)
        with server.client.stream("GET", "/api/events") as events:
            assert events.status_code == 200
            samples = scrape(server)
            assert value(samples, "anyon_stream_clients", deployment="local", kind="sse") == 1
        samples = scrape(server)

    every = {dict(labels).get("deployment") for (_, labels) in samples}
    assert every == {"local"}
    http = value(
        samples,
        "anyon_http_request_duration_seconds_count",
        deployment="local",
        method="GET",
        route="/api/projects/{project_id}",
        status="200",
    )
    assert http == 1
    assert (
        value(
            samples,
            "anyon_execution_processes",
            deployment="local",
            status="completed",
            run_reason="codingagent",
        )
        == 2
    )
    assert (
        value(
            samples,
            "anyon_execution_processes",
            deployment="local",
            status="failed",
            run_reason="setupscript",
        )
        == 1
    )
    assert value(samples, "anyon_executions_queued", deployment="local") == 0
    assert value(samples, "anyon_executions_running", deployment="local") == 0
    assert value(samples, "anyon_attempt_start_seconds_count", deployment="local") == 0
    assert not any(name == "anyon_containers_running" for name, _ in samples)  # local mode: no Docker


def _seed_processes(server: LiveServer, project_id: str) -> None:
    database = server.services.database
    with database.connection():
        task = Task.create(project=Project.get_by_id(project_id), title="t")
        attempt = TaskAttempt.create(task=task, executor="CLAUDE_CODE", branch="b", target_branch="main")
        for status, reason in (
            ("completed", "codingagent"),
            ("completed", "codingagent"),
            ("failed", "setupscript"),
        ):
            ExecutionProcess.create(task_attempt=attempt, status=status, run_reason=reason)


def test_attempt_start_hook_feeds_the_histogram() -> None:
    metrics = Metrics("cloud")
    metrics.observe_attempt_start(0.3)
    metrics.observe_attempt_start(4.0)
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, s.labels.get("le")): s.value for s in families["anyon_attempt_start_seconds"].samples}
    assert samples[("anyon_attempt_start_seconds_count", None)] == 2
    assert samples[("anyon_attempt_start_seconds_bucket", "0.5")] == 1
    assert samples[("anyon_attempt_start_seconds_bucket", "5.0")] == 2
    assert 'deployment="cloud"' in text


def test_a_real_attempt_feeds_the_attempt_start_histogram(tmp_path: Path) -> None:
    from tests.test_executions_local import start, use_fake_agent
    from tests.test_streams import new_project

    with live_server(make_config(tmp_path)) as server:
        use_fake_agent(server)
        project = new_project(server, tmp_path)
        start(server, project, "fix the typo")
        deadline = time.monotonic() + 30
        while value(scrape(server), "anyon_attempt_start_seconds_count", deployment="local") < 1:
            assert time.monotonic() < deadline, "the engine never reported the attempt's start"
            time.sleep(0.1)
        samples = scrape(server)
        assert value(samples, "anyon_attempt_start_seconds_sum", deployment="local") > 0
