"""The access log and the quiet server log, through a real uvicorn on 127.0.0.1 and configure_logging."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from anyon.logging import configure_logging
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import use_fake_agent
from tests.test_streams import dev_server_process, recv, wait_for

CANARY = "canary-query-token-5f1e"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, (old, propagate) in saved.items():
        logging.getLogger(name).handlers[:] = old
        logging.getLogger(name).propagate = propagate


def started(tmp_path: Path, fmt: str, access_log: bool) -> Any:
    config = make_config(tmp_path, logging={"format": fmt, "access_log": access_log})
    configure_logging(config)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the test's client, not the server
    return live_server(config)


def access_lines(err: str) -> list[dict[str, Any]]:
    lines = []
    for line in err.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "anyon.access":
                lines.append(record)
    return lines


def refuse_websocket(server: LiveServer, path: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + path, open_timeout=10, origin="http://evil.example").close()  # type: ignore[arg-type]
    return info.value.response.status_code


def test_access_log_lines_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with started(tmp_path, "json", True) as server:
        capsys.readouterr()
        health = server.get("/api/health", headers={"X-Request-Id": "ops-trace-0001"})
        missing = server.get(f"/api/projects/0b5e9a2e-0000-4000-8000-00000000abcd?token={CANARY}")
        assert missing.status_code == 404
        foreign = server.get("/api/health", headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert refuse_websocket(server, f"/api/drafts/stream/ws?token={CANARY}") == 403
        time.sleep(0.2)
    err = capsys.readouterr().err
    assert CANARY not in err and "00000000abcd" not in err
    lines = access_lines(err)
    by_route = {(r["method"], r["route"], r["status"]): r for r in lines}
    ok = by_route[("GET", "/api/health", 200)]
    assert set(ok) >= {"method", "route", "status", "duration_ms", "request_id", "deployment", "level"}
    assert ok["request_id"] == "ops-trace-0001" == health.headers["X-Request-Id"]
    assert ok["message"].startswith("GET /api/health 200 ") and ok["message"].endswith("ms")
    assert isinstance(ok["duration_ms"], float) and ok["level"] == "INFO"
    got = by_route[("GET", "/api/projects/{project_id}", 404)]
    assert got["request_id"] == missing.headers["X-Request-Id"] and len(got["request_id"]) == 16
    assert ("GET", "(not routed)", 403) in by_route  # refused by the boundary: still one line
    assert any(r["method"] == "WS" and r["status"] == 403 for r in lines)
    assert len(lines) == 4, lines


def test_a_client_request_id_that_could_forge_a_line_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with started(tmp_path, "text", True) as server:
        sent = "x\nGET /admin 200 0.1ms"
        response = server.get("/api/health", headers={"X-Request-Id": sent.replace("\n", "%0A")})
        assert response.headers["X-Request-Id"] != sent.replace("\n", "%0A")
    err = capsys.readouterr().err
    assert "/admin" not in err
    assert "anyon.access [local] GET /api/health 200 " in err


def test_access_log_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with started(tmp_path, "json", False) as server:
        assert "X-Request-Id" not in server.get("/api/health").headers
    assert access_lines(capsys.readouterr().err) == []


def test_no_error_for_refused_websockets_or_clients_leaving_finished_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with started(tmp_path, "text", True) as server:
        use_fake_agent(server)
        pid = dev_server_process(server, tmp_path, "echo done")
        path = f"/api/execution-processes/{pid}/raw-logs/ws"
        wait_for(lambda: server.ok("GET", f"/api/execution-processes/{pid}")["status"] != "running", 15)
        for _ in range(3):
            assert refuse_websocket(server, path) == 403
        # a finished stream: the client reads the replay and leaves at once, without a close frame
        for _ in range(3):
            with (
                contextlib.suppress(OSError, ConnectionClosed),
                connect(server.ws_url + path, open_timeout=10, max_size=None) as conn,
            ):
                recv(conn)
                conn.socket.shutdown(socket.SHUT_RDWR)
        # ... and one that closes politely while the server is closing too
        for _ in range(3):
            with connect(server.ws_url + path, open_timeout=10, max_size=None) as conn:
                recv(conn)
        # an SSE client that goes away mid-stream
        with httpx.stream("GET", server.base_url + "/api/events", timeout=5) as events:
            next(events.iter_bytes())
        time.sleep(0.5)
    err = capsys.readouterr().err
    assert " ERROR " not in err and "Traceback" not in err, err
    assert "without completing handshake" not in err
    assert "\x1b[" not in err and "color_message" not in err
    assert "WS (not routed) 403" in err


def test_text_format_drops_uvicorns_color_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_config(tmp_path, logging={"format": "text"}))
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    err = capsys.readouterr().err
    assert "Started server process [42]" in err and "\x1b" not in err and "color_message" not in err
