"""systemd readiness: a real datagram socket stands in for systemd, a real ``anyon serve`` talks to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from anyon.observability.sd_notify import SystemdNotifier


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    return sock


def test_notifier_sends_fields_and_is_a_no_op_without_the_socket(tmp_path: Path) -> None:
    assert SystemdNotifier({}).ready() is False
    assert SystemdNotifier({"NOTIFY_SOCKET": "relative"}).enabled is False
    with notify_socket(tmp_path / "notify") as sock:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert notifier.status("migrating")
        assert sock.recv(4096) == b"STATUS=migrating"
        assert notifier.ready("serving")
        assert sock.recv(4096).decode().split("\n")[:2] == ["READY=1", "STATUS=serving"]
        assert notifier.stopping()
        assert sock.recv(4096).decode().startswith("STOPPING=1\n")
    assert SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready() is False  # logged, not raised


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"anyon-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).status("x")
        assert sock.recv(64) == b"STATUS=x"


def _serve_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANYON_", "CREDENTIALS"))}
    env.update(
        HOME=str(tmp_path),
        ANYON_BASE_DIR=str(tmp_path / "base"),
        ANYON_TEMP_DIR=str(tmp_path / "tmp"),
        ANYON_WORKSPACE_DIR=str(tmp_path / "ws"),
        NOTIFY_SOCKET=str(tmp_path / "notify"),
    )
    return env


def test_serve_reports_status_ready_after_the_listener_and_stopping_on_sigterm(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    with notify_socket(tmp_path / "notify") as sock:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anyon", "serve", "--settings", str(settings), "--host", "127.0.0.1"],
            env=_serve_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            messages: list[str] = []
            while not any(m.startswith("READY=1") for m in messages):
                messages.append(sock.recv(4096).decode())
            statuses = [m for m in messages if m.startswith("STATUS=")]
            assert "STATUS=migrating the database" in statuses
            assert messages.index("STATUS=binding the listener") < len(messages) - 1
            port = int((tmp_path / "tmp" / "anyon.port").read_text())
            # READY=1 means the listener answers now, not later
            assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096).decode().startswith("STOPPING=1")
            # uvicorn re-raises the SIGTERM after its graceful shutdown; systemd counts that as a clean stop
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
            assert proc.stderr is not None
            assert b"Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()


def test_cloud_start_up_check_failure_is_one_clear_error_and_exit_1(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[docker]\nhost = "unix://{tmp_path}/no-docker.sock"\nuser = "0:0"\n'
        f'[cloud.paths]\nbase_dir = "{tmp_path}/cloud"\n'
    )
    with notify_socket(tmp_path / "notify") as sock:
        result = subprocess.run(
            [sys.executable, "-m", "anyon", "serve", "--settings", str(settings), "--mode", "cloud"],
            env=_serve_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        sock.settimeout(0.5)
        messages = []
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    assert result.returncode == 1
    assert "this machine cannot serve the cloud settings" in result.stderr
    assert f"{tmp_path}/no-docker.sock does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(m.startswith("READY=1") for m in messages)
    assert any(m.startswith("STATUS=start-up checks failed") for m in messages)
