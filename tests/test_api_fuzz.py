"""Property-based fuzzing of the REST API from its own OpenAPI document, against a real uvicorn server.

schemathesis reads ``/api/openapi.json`` as served, generates requests from each operation's body and
query schemas (the validators' own declarations), sends them to a server on 127.0.0.1 and checks every
answer: no status >= 500, the declared status codes and content types, and the envelope with its
``data`` shape. The server log must hold no traceback afterwards.

The run is bounded and reproducible: a few derandomized examples per operation (``ANYON_FUZZ_EXAMPLES``
raises it for a longer local run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

EXAMPLES = int(os.environ.get("ANYON_FUZZ_EXAMPLES", "25"))

# Operations not fuzzed, and why: each would start a real process (a coding agent, a dev server or a
# queued follow-up) on the test machine, or is a stream that never ends.
EXCLUDED = {
    ("POST", "/api/task-attempts"): "starts a coding agent",
    ("POST", "/api/tasks/create-and-start"): "starts a coding agent",
    ("POST", "/api/task-attempts/{attempt_id}/follow-up"): "starts a coding agent",
    ("POST", "/api/task-attempts/{attempt_id}/replace-process"): "starts a coding agent",
    ("POST", "/api/task-attempts/{attempt_id}/start-dev-server"): "starts the project's dev script",
    ("POST", "/api/task-attempts/{attempt_id}/draft/queue"): "queuing a follow-up can start an agent",
    ("POST", "/api/task-attempts/{attempt_id}/run-agent-setup"): "starts a setup script and an agent",
    ("POST", "/api/auth/claude/session"): "starts the agent login CLI",
    ("GET", "/api/events"): "an endless server-sent event stream",
}

# Operations whose schema-valid requests may rightly be refused, and why: the image uploads take any
# bytes as far as a schema can say, but only a real PNG/JPEG/GIF/WebP/BMP is kept (400 otherwise, as the
# contract says; tests/test_images.py covers it). Every other check still runs on them.
SCHEMA_CANNOT_SAY = {
    ("POST", "/api/images/upload"),
    ("POST", "/api/images/task/{task_id}/upload"),
}


class _Errors(logging.Handler):
    """Collects every ERROR record and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the directory picker's default stays inside the test
    # every project path the fuzzer invents must stay under the test's folder
    config = make_config(tmp_path, paths={"project_roots": (str(tmp_path),)})
    with live_server(config) as live:
        yield live


def _fuzzer(
    operation: Any,
    label: str,
    base_url: str,
    headers: dict[str, str],
    counts: dict[str, int],
    excluded: list[Any] | None = None,
) -> Any:
    """A derandomized Hypothesis test sending ``operation``'s generated cases to the server."""

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        counts[label] += 1
        response = case.call(base_url=base_url, headers=headers)
        assert response.status_code < 500, (label, response.status_code, response.text[:500])
        case.validate_response(response, excluded_checks=excluded)

    return run


def test_fuzz_every_operation(server: LiveServer) -> None:
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        port = server.base_url.rsplit(":", 1)[1]
        headers = {"Host": f"127.0.0.1:{port}"}
        schema = schemathesis.openapi.from_url(f"{server.base_url}/api/openapi.json")
        counts: dict[str, int] = {}
        failures: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            if key in EXCLUDED:
                continue
            label = f"{key[0]} {key[1]}"
            counts[label] = 0

            excluded = [positive_data_acceptance] if key in SCHEMA_CANNOT_SAY else None
            run = _fuzzer(operation, label, server.base_url, headers, counts, excluded)
            try:
                run()
            except Exception as exc:  # collect every operation's failure, not just the first
                failures.append(f"{label}: {exc}")
        total = sum(counts.values())
        print(f"fuzzed {len(counts)} operations with {total} cases")
        assert not failures, "\n\n".join(failures)
        assert len(counts) >= 50 and total >= len(counts)
    finally:
        logging.getLogger().removeHandler(errors)
    tracebacks = [f"{r.name}: {r.getMessage()}" for r in errors.records]
    assert not tracebacks, tracebacks
