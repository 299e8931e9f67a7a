"""`anyon config validate|show` through main() and, for a few cases, a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anyon.cli import build_parser, main
from anyon.config.fields import FLAT_ENV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hermetic environment: every path under tmp_path, settings file tmp_path/settings.toml."""
    for name in list(os.environ):
        if (name.startswith("ANYON_") and "__" in name) or any(name in n for n in FLAT_ENV.values()):
            monkeypatch.delenv(name)
    for name in ("XDG_DATA_HOME", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANYON_SETTINGS_FILE", str(settings))
    monkeypatch.setenv("ANYON_TEMP_DIR", str(tmp_path / "tmp"))
    return settings


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_valid_configuration_exits_0_and_creates_nothing(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(tmp_path)
    assert main(["config", "validate"]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["config", "validate", "--mode", "cloud", "--format", "json"]) in (0, 2)
    assert tree(tmp_path) == before


def test_invalid_configuration_exits_1_and_names_key_layer_expected(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text("[server]\nport = 70000\n")
    assert main(["config", "validate"]) == 1
    err = capsys.readouterr().err
    expected = "expected a value from 0 to 65535, e.g. 8080, found an integer 70000"
    assert f"server.port ({env}:2): {expected}" in err


def test_json_report_is_stable(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text("[server]\nhots = 1\n")
    monkeypatch.setenv("ANYON_SERVER__PORT", "x")
    assert main(["config", "validate", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"valid", "exit_code", "mode", "settings_file", "errors", "warnings"}
    assert report["valid"] is False and report["exit_code"] == 1
    assert {e["origin"] for e in report["errors"]} == {f"{env}:2", "env ANYON_SERVER__PORT"}
    for issue in report["errors"]:
        assert set(issue) == {"key", "origin", "expected", "found", "message", "kind"}


def test_environment_problems_exit_2_without_creating_anything(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be created")
    env.write_text(f'[paths]\nworkspace_dir = "{blocker}/workspace"\n')
    before = tree(tmp_path)
    assert main(["config", "validate", "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert [e["key"] for e in report["errors"]] == ["paths.workspace_dir"]
    assert report["errors"][0]["kind"] == "environment"
    assert tree(tmp_path) == before


def test_strict_turns_warnings_into_failure(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.write_text("[retention]\norphan_sweep_dry_run = true\n")
    assert main(["config", "validate"]) == 0
    assert "WARNING: retention.orphan_sweep_dry_run" in capsys.readouterr().err
    assert main(["config", "validate", "--strict"]) == 1


def test_show_origin_json_names_each_layer(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text('[server]\nport = 8080\n\n[cloud.docker]\nmemory = "1g"\n')
    monkeypatch.setenv("ANYON_DOCKER__CPUS", "1.5")
    monkeypatch.setenv("ANYON_DOCKER_USER", "1000:1000")
    assert main(["config", "show", "--origin", "--format", "json", "--mode", "cloud"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["server"]["port"] == {"value": 8080, "origin": f"{env}:2", "layer": "file"}
    assert shown["docker"]["memory"] == {
        "value": 1024**3,
        "origin": f"[cloud] in {env}:5",
        "layer": "file-cloud",
    }
    assert shown["docker"]["cpus"]["origin"] == "env ANYON_DOCKER__CPUS"
    assert shown["docker"]["user"] == {
        "value": "1000:1000",
        "origin": "env ANYON_DOCKER_USER",
        "layer": "env-flat",
    }
    assert shown["paths"]["log_file"]["layer"] == "default-cloud"
    assert shown["docker"]["pids_limit"] == {"value": 512, "origin": "default", "layer": "default"}
    assert shown["deployment"]["mode"]["origin"] == "option --mode"
    assert shown["paths"]["temp_dir"]["origin"] == "env ANYON_TEMP_DIR"


def test_show_masks_secrets(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.write_text('[database]\nurl = "postgresql://anyon:hunter2@127.0.0.1:5432/anyon"\n')
    assert main(["config", "show", "--origin", "database.url"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert 'url = "postgresql://anyon:***@127.0.0.1:5432/anyon"' in out
    assert f"# {env}:2" in out


def test_show_toml_output_reloads_as_the_same_settings(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    assert main(["config", "show", "--mode", "cloud"]) == 0
    shown = capsys.readouterr().out
    dumped = tmp_path / "dumped.toml"
    dumped.write_text(shown)
    assert main(["config", "show", "--format", "json", "--settings", str(dumped)]) == 0
    again = json.loads(capsys.readouterr().out)
    parsed = tomllib.loads(shown)
    assert again["paths"] == {
        k: (v or None) if k != "project_roots" else v for k, v in parsed["paths"].items()
    }


def test_show_one_section_and_unknown_key(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--format", "json", "logging"]) == 0
    logging_section = {"level": "INFO", "format": "text", "access_log": False}
    assert json.loads(capsys.readouterr().out) == {"logging": logging_section}
    assert main(["config", "show", "dokcer"]) == 1
    assert 'did you mean "docker"?' in capsys.readouterr().err


def test_show_refuses_an_invalid_configuration(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.write_text("[server\n")
    assert main(["config", "show"]) == 1
    assert f"{env}:1" in capsys.readouterr().err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "config" in out
    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in names:
        assert name in out
    assert main([]) == 2
    assert main(["config", "validate", "--mode", "moon"]) == 2


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anyon", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    settings = tmp_path / "settings.toml"
    if not settings.exists():
        settings.write_text("")
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    return {
        **keep,
        "HOME": str(tmp_path / "home"),
        "ANYON_SETTINGS_FILE": str(settings),
        "ANYON_TEMP_DIR": str(tmp_path / "tmp"),
        **extra,
    }


def test_subprocess_validate_exit_codes(tmp_path: Path) -> None:
    done = run_cli("config", "validate", "--format", "json", env=subprocess_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True
    done = run_cli("config", "validate", env=subprocess_env(tmp_path, HOST="0.0.0.0"))
    assert done.returncode == 1
    assert "server.host (env HOST)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "tmp").exists()


def test_subprocess_help_and_show(tmp_path: Path) -> None:
    done = run_cli("--help", env=subprocess_env(tmp_path))
    assert done.returncode == 0
    assert "config" in done.stdout
    done = run_cli("config", "show", "--mode", "cloud", "paths", env=subprocess_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert 'base_dir = "/var/opt/anyon"' in done.stdout
