"""Sounds and the "attempt finished" notification, through the real server and real programs."""

from __future__ import annotations

import ast
import io
import os
import stat
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from anyon.services.notifications.sounds import SOUND_FILES
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_task_status


def test_every_sound_the_ui_can_pick_is_audio(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path, notifications={"desktop": False})) as server:
        config_sounds = server.ok("GET", "/api/info")["config"]["notifications"]["sound_file"]
        assert config_sounds in SOUND_FILES
        digests = set()
        for name in SOUND_FILES:
            response = server.get(f"/api/sounds/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == "audio/wav"
            assert response.headers["x-content-type-options"] == "nosniff"
            with wave.open(io.BytesIO(response.content)) as audio:
                assert audio.getnchannels() == 1 and audio.getsampwidth() == 2
                assert 0.3 < audio.getnframes() / audio.getframerate() < 3.0
                frames = audio.readframes(audio.getnframes())
            assert max(frames) > 0  # not silence
            digests.add(hash(response.content))
        assert len(digests) == len(SOUND_FILES)  # each name its own sound
        for bad in ["NOPE", "cow-mooing.wav", "..%2F..%2Fetc%2Fpasswd"]:
            response = server.get(f"/api/sounds/{bad}")
            assert response.status_code == 404 and response.json()["success"] is False


def _recorder(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A stand-in notification program that records its arguments (one line per call)."""
    out = tmp_path / f"{name}.log"
    program = tmp_path / name
    program.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(out)!r}, 'a').write(repr(sys.argv[1:]) + '\\n')\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program, out


@pytest.fixture
def notified(tmp_path: Path) -> Iterator[tuple[LiveServer, Path, Path]]:
    push, push_log = _recorder(tmp_path, "push")
    player, sound_log = _recorder(tmp_path, "player")
    config = make_config(
        tmp_path,
        notifications={"desktop": True, "push_command": str(push), "sound_command": str(player)},
    )
    with live_server(config) as server:
        use_fake_agent(server)
        yield server, push_log, sound_log


def _wait_for(path: Path, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path.name} was never written"
        time.sleep(0.05)
    return path.read_text()


def test_a_finished_attempt_notifies_as_the_user_config_asks(
    notified: tuple[LiveServer, Path, Path], tmp_path: Path
) -> None:
    server, push_log, sound_log = notified
    project = make_project(server, tmp_path)
    task, _attempt = start(server, project, "Ship it; $(touch pwned)")
    wait_task_status(server, task["id"], "inreview")
    pushed = _wait_for(push_log)
    assert "Task Complete: Ship it; $(touch pwned)" in pushed and "completed successfully" in pushed
    played = ast.literal_eval(_wait_for(sound_log).splitlines()[0])
    assert played[0].endswith("cow-mooing.wav") and Path(played[0]).read_bytes()[:4] == b"RIFF"
    assert not any(Path(p).exists() for p in (tmp_path / "pwned", Path(os.getcwd()) / "pwned"))

    # the user turns both off: the next attempt is silent
    config = server.ok("GET", "/api/info")["config"]
    config["notifications"] = {"sound_enabled": False, "push_enabled": False, "sound_file": "ROOSTER"}
    server.ok("PUT", "/api/config", json=config)
    push_log.unlink()
    sound_log.unlink()
    task2, _ = start(server, project, "quiet")
    wait_task_status(server, task2["id"], "inreview")
    time.sleep(0.5)
    assert not push_log.exists() and not sound_log.exists()


def test_no_desktop_programs_means_no_notice_and_no_error(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        notifications={
            "desktop": True,
            "push_command": "no-such-notifier-xyz",
            "sound_command": "no-such-player",
        },
    )
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        task, attempt = start(server, project, "plain")
        wait_task_status(server, task["id"], "inreview")
        statuses = [
            p["status"] for p in server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
        ]
        assert statuses == ["completed"]
