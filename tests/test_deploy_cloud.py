"""CloudDeployment start-up: a background job that raises is logged and retried; the server keeps serving."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

import anyon.harness.live as live_module
from anyon.deployment.cloud import CloudDeployment
from anyon.deployment.factory import build_deployment
from tests.conftest import make_config


def test_a_failing_background_job_is_retried_and_the_server_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError(f"docker daemon restarting (call {len(calls)})")

    def with_flaky_job(config: Any) -> Any:
        deployment = build_deployment(config)
        deployment.services.extra_jobs.append(("reconcile-containers", flaky))
        return deployment

    monkeypatch.setattr(CloudDeployment, "retry_delays", (0.05, 0.1))
    monkeypatch.setattr(live_module, "build_deployment", with_flaky_job)
    caplog.set_level(logging.ERROR, logger="anyon.deployment.cloud")
    # cloud mode without touching Docker: the runner connects lazily and this test never asks it to
    config = make_config(
        tmp_path, mode="cloud", docker={"user": "0:0", "host": f"unix://{tmp_path}/none.sock"}
    )
    with live_module.live_server(config) as server:
        assert isinstance(server.deployment, CloudDeployment)
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline, f"the job was not retried: {len(calls)} call(s)"
            assert server.get("/api/health").status_code == 200
            time.sleep(0.02)
        assert server.get("/api/projects").status_code == 200
    failures = [r for r in caplog.records if "background task reconcile-containers failed" in r.getMessage()]
    assert len(failures) == 2
    assert "docker daemon restarting (call 1)" in failures[0].getMessage()
    assert "retrying in" in failures[0].getMessage()
    # the delay grows between attempts (sleep never returns early)
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.1
