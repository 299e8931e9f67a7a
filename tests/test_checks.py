"""Environment checks and ``anyon doctor``: real directories, git, PostgreSQL and Docker when present.

The metadata-address probe never runs for real here: with ``docker.network = "none"`` it is answered
without traffic, and otherwise the tests inject the probe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from anyon.checks import (
    CheckResult,
    check_database,
    check_directories,
    check_docker,
    run_checks,
    worst,
)
from anyon.checks.docker import _metadata_check
from anyon.cli import main
from tests.conftest import make_config, postgres_url, require_docker


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_local_machine_is_ready(tmp_path: Path) -> None:
    results = run_checks(make_config(tmp_path))
    assert worst(results) == "ok", [r.line() for r in results]
    names = by_name(results)
    assert names["git"].message.startswith("git version")
    assert "docker engine" not in names  # local mode never touches Docker
    assert names["directory paths.data_dir"].message.endswith("is created at start-up")


def test_directories_not_directories_and_foreign_owners(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    Path(config.paths.base_dir).mkdir(parents=True)
    Path(config.paths.worktree_dir).write_text("a file where a directory belongs")
    Path(config.paths.temp_dir).mkdir()
    results = by_name(check_directories(config, uid=os.geteuid() + 4242))
    assert results["directory paths.worktree_dir"].status == "fail"
    assert "is not a directory" in results["directory paths.worktree_dir"].message
    temp = results["directory paths.temp_dir"]
    if os.geteuid() == 0 or os.stat(config.paths.temp_dir).st_uid != os.geteuid() + 4242:
        assert temp.status == "warn" and temp.hint.startswith("chown -R")


def test_api_token_check_follows_the_listener(tmp_path: Path) -> None:
    open_config = make_config(tmp_path)
    assert by_name(run_checks(open_config))["api token"].status == "ok"
    reachable = make_config(
        tmp_path,
        server={"host": "0.0.0.0"},
        auth={"secrets_dir": str(tmp_path / "s"), "credentials_dir": None},
    )
    assert by_name(run_checks(reachable, environ={}))["api token"].status == "fail"
    env_only = by_name(run_checks(reachable, environ={"ANYON_API_TOKEN": "canary-xyz"}))["api token"]
    assert env_only.status == "warn" and "canary-xyz" not in env_only.line()
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "api-token").write_text("canary-xyz")
    (tmp_path / "s" / "api-token").chmod(0o644)
    unsafe = by_name(run_checks(reachable, environ={}))["api token"]
    assert unsafe.status == "fail" and "chmod 600" in unsafe.message and "canary-xyz" not in unsafe.line()


def test_github_check_names_the_token_source_never_the_token(tmp_path: Path) -> None:
    secrets = tmp_path / "s"
    config = make_config(tmp_path, auth={"secrets_dir": str(secrets), "credentials_dir": None})
    none = by_name(run_checks(config, environ={}))["github"]
    assert none.status == "ok" and "device sign-in is off" in none.message
    env = by_name(run_checks(config, environ={"ANYON_GITHUB_TOKEN": "ghp_canary"}))["github"]
    assert env.status == "warn" and "ghp_canary" not in env.line()
    secrets.mkdir()
    (secrets / "github-token").write_text("ghp_canary")
    (secrets / "github-token").chmod(0o644)
    unsafe = by_name(run_checks(config, environ={}))["github"]
    assert unsafe.status == "fail" and "chmod 600" in unsafe.message and "ghp_canary" not in unsafe.line()
    (secrets / "github-token").chmod(0o600)
    good = by_name(run_checks(config, environ={}))["github"]
    assert good.status == "ok" and str(secrets / "github-token") in good.message


def test_database_check_postgres(tmp_path: Path) -> None:
    url = postgres_url()
    if not url:
        pytest.skip("ANYON_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")
    good = check_database(make_config(tmp_path, database={"url": url}))
    assert good.status == "ok" and "PostgreSQL" in good.message
    # a loopback port nothing listens on: refused at once, no traffic leaves the machine
    bad = check_database(make_config(tmp_path, database={"url": "postgresql://u:hunter2@127.0.0.1:1/db"}))
    assert bad.status == "fail" and "hunter2" not in bad.line() and bad.hint


def test_metadata_check_answers_without_traffic_or_through_the_injected_probe(tmp_path: Path) -> None:
    none = make_config(tmp_path, mode="cloud")
    assert _metadata_check(none, client=None, probe=None).status == "ok"
    bridged = make_config(tmp_path, mode="cloud", docker={"network": "bridge"})
    reachable = _metadata_check(bridged, client=None, probe=lambda c: True)
    assert reachable.status == "warn" and "DOCKER-USER" in reachable.hint
    assert _metadata_check(bridged, client=None, probe=lambda c: False).status == "ok"
    unknown = _metadata_check(bridged, client=None, probe=lambda c: "probe image missing")
    assert unknown.status == "warn" and "probe image missing" in unknown.message


def test_cloud_without_docker_fails_with_hints(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, mode="cloud", docker={"host": f"unix://{tmp_path}/none.sock", "user": "no-such-user-xyz"}
    )
    results = by_name(run_checks(config))
    assert (
        results["docker socket"].status == "fail"
        and "systemctl enable --now docker" in results["docker socket"].hint
    )
    assert results["docker.user"].status == "fail" and "no-such-user-xyz" in results["docker.user"].message
    assert "ANYON_DOCKER_USER" in results["docker.user"].hint and "useradd" in results["docker.user"].hint
    # the socket line says what is wrong; no "start Docker" line for an engine that was never asked
    assert "docker engine" not in results


@pytest.mark.docker
def test_cloud_with_real_docker_reports_version_and_image(tmp_path: Path) -> None:
    require_docker()
    image = os.environ.get("ANYON_TEST_IMAGE", "anyon-test-runner:latest")
    config = make_config(tmp_path, mode="cloud", docker={"image": image, "user": "0:0"})
    results = by_name(run_checks(config))
    assert results["docker engine"].status == "ok" and "API" in results["docker engine"].message
    assert results["docker socket"].status == "ok"
    assert results["docker.user"].status == "ok"
    assert results["metadata address"].status == "ok"
    missing = by_name(
        run_checks(make_config(tmp_path, mode="cloud", docker={"image": "anyon-no-such:0", "user": "0:0"}))
    )
    assert missing["runner image"].status == "fail"
    assert missing["runner image"].hint == "docker build -t anyon-no-such:0 deploy/image"


# --- anyon doctor ----------------------------------------------------------------------------------


def _doctor_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str = "") -> str:
    for name in list(os.environ):
        if name.startswith("ANYON_") or name in ("HOST", "PORT", "CREDENTIALS_DIRECTORY"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ANYON_BASE_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("ANYON_TEMP_DIR", str(tmp_path / "t"))
    settings = tmp_path / "settings.toml"
    settings.write_text(body)
    return str(settings)


def test_doctor_text_json_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _doctor_env(tmp_path, monkeypatch)
    assert main(["doctor", "--settings", settings]) == 0
    out = capsys.readouterr().out
    assert "ok   git: git version" in out and "ready to serve (mode local)" in out
    assert main(["doctor", "--settings", settings, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True and report["exit_code"] == 0
    assert {c["status"] for c in report["checks"]} == {"ok"}
    assert all(set(c) == {"name", "status", "message", "hint"} for c in report["checks"])

    cloud = _doctor_env(
        tmp_path, monkeypatch, f'[docker]\nhost = "unix://{tmp_path}/none.sock"\nuser = "0:0"\n'
    )
    assert main(["doctor", "--settings", cloud, "--mode", "cloud", "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    failed = {c["name"] for c in report["checks"] if c["status"] == "fail"}
    assert "docker socket" in failed and "docker engine" not in failed
    assert all(c["hint"] for c in report["checks"] if c["status"] != "ok")
    assert main(["config", "validate", "--settings", cloud, "--mode", "cloud", "--online"]) == 2
    assert "docker socket" in capsys.readouterr().err
    assert main(["config", "validate", "--settings", cloud, "--mode", "cloud"]) == 0  # offline: settings only

    invalid = _doctor_env(tmp_path, monkeypatch, "[server]\nport = -1\n")
    assert main(["doctor", "--settings", invalid]) == 1
    assert "server.port" in capsys.readouterr().err
    assert main(["doctor", "--settings", invalid, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"]

    warned = _doctor_env(tmp_path, monkeypatch)
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("ANYON_API_TOKEN", "canary-doctor")
    assert main(["doctor", "--settings", warned]) == 0
    assert main(["doctor", "--settings", warned, "--strict"]) == 1
    assert "canary-doctor" not in capsys.readouterr().out


def test_docker_permission_denied_is_not_docker_not_running(tmp_path: Path) -> None:
    """A socket the service user may not open says "permission denied" and how to join the group, never
    "start Docker"; a socket nobody listens on says Docker is not running."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a socket another user may not open")
    import socket
    import tempfile

    import docker  # noqa: F401  # loaded before the child drops its privileges

    import anyon.services.runners.docker  # noqa: F401

    base = Path(tempfile.mkdtemp(prefix="anyon-sock-"))
    base.chmod(0o755)
    path = base / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    path.chmod(0o660)  # root:root, as a docker socket whose group the user is not in
    config = make_config(tmp_path, mode="cloud", docker={"host": f"unix://{path}", "user": "0:0"})
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the service user's view: an unprivileged process
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            found = [r.as_dict() for r in check_docker(config, os.getuid())]
            os.write(write_end, json.dumps(found).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        denied = {r["name"]: r for r in json.loads(pipe.read())}
    os.waitpid(pid, 0)
    assert denied["docker socket"]["status"] == "fail"
    assert "permission denied" in denied["docker socket"]["message"]
    assert "usermod -aG docker" in denied["docker socket"]["hint"]
    assert "docker engine" not in denied  # no "start Docker" advice for a running engine
    assert not any("systemctl" in r["hint"] for r in denied.values())

    listener.close()  # the socket file stays, nothing answers: Docker is not running
    stopped = by_name(check_docker(config, os.geteuid()))
    assert stopped["docker socket"].status == "ok"
    assert stopped["docker engine"].status == "fail"
    assert "not running" in stopped["docker engine"].message
    assert "systemctl enable --now docker" in stopped["docker engine"].hint

    def refused() -> object:  # an engine client that the socket refuses
        raise PermissionError(13, "Permission denied")

    via_client = by_name(check_docker(config, os.geteuid(), client_factory=refused))
    assert "permission denied on the Docker socket" in via_client["docker engine"].message
    assert "usermod -aG docker" in via_client["docker engine"].hint
    path.unlink()
    base.rmdir()
