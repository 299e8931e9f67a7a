"""The deploy/ kit: the unit passes systemd-analyze, the bootstrap script bash -n and shellcheck, the example
settings and environment file are accepted by the real config loader.

Under CI=true the external tools must be present (scripts/test.sh installs them); elsewhere a missing
tool skips its test, saying which.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from anyon.config import load_config
from anyon.config.fields import FLAT_ENV, catalogue
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "anyon.service"
BOOTSTRAP = DEPLOY / "gcp" / "bootstrap.sh"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"CI=true but {name} is not installed (scripts/test.sh installs it)")
        pytest.skip(f"{name} is not installed (scripts/test.sh installs it)")
    return path


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    # verify insists that ExecStart binaries exist; the venv does not on a test machine, so point them at
    # a real executable and check everything else exactly as written.
    exe = tmp_path / "anyon"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    text = UNIT.read_text().replace("/opt/anyon/venv/bin/anyon", str(exe))
    unit = tmp_path / "anyon.service"
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "anyon.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_unit_has_the_required_shape() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["ExecStartPre"] == ["/opt/anyon/venv/bin/anyon config validate --env-file=-/etc/anyon/anyon.env"]
    assert s["ExecStart"] == ["/opt/anyon/venv/bin/anyon serve"]
    assert "-/etc/anyon/anyon.env" in s["EnvironmentFile"]
    assert s["LoadCredential"] == ["api-token:/etc/anyon/secrets/api-token"]
    assert s["SupplementaryGroups"] == ["docker"] and s["User"] == ["anyon"]
    for key in ("StateDirectory", "LogsDirectory", "ReadWritePaths"):
        assert s[key]
    for key, value in {
        "ProtectSystem": "strict",
        "PrivateTmp": "true",
        "NoNewPrivileges": "true",
        "ProtectKernelTunables": "true",
        "ProtectKernelModules": "true",
        "ProtectKernelLogs": "true",
    }.items():
        assert s[key] == [value], key
    assert "AF_UNIX" in s["RestrictAddressFamilies"][0]
    assert "@system-service" in s["SystemCallFilter"]
    assert "/var/opt/anyon" in s["ReadWritePaths"][0]


def test_unit_lets_jit_runtimes_run_and_explains_every_hardening_option() -> None:
    """node (every agent CLI) aborts under MemoryDenyWriteExecute=true: a local-mode rollback under this
    unit could not run agents. Every option of the hardening block carries a comment saying why."""
    s = unit_settings()
    assert s.get("MemoryDenyWriteExecute", ["false"]) == ["false"]
    assert "AF_NETLINK" in s["RestrictAddressFamilies"][0]
    block = UNIT.read_text().split("# --- Hardening", 1)[1].split("[Install]")[0]
    lines = block.splitlines()[1:]
    previous = ""
    for line in lines:
        if line and not line.startswith("#"):
            key = line.split("=", 1)[0]
            grouped = previous and not previous.startswith("#")
            assert previous.startswith("#") or grouped, f"{key} has no comment saying why"
        previous = line


def test_unit_validate_reads_the_env_file_and_tolerates_its_absence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anyon.cli import main

    settings = DEPLOY / "etc" / "settings.toml"
    missing = tmp_path / "anyon.env"
    env = ["--settings", str(settings), f"--env-file=-{missing}"]
    monkeypatch.setenv("ANYON_API_TOKEN", "x")  # normally LoadCredential=
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["config", "show", "server.port", *env]) == 0
    missing.write_text("PORT=eighty\n")
    assert main(["config", "show", "server.port", *env]) == 1


def test_bootstrap_passes_bash_n_and_shellcheck() -> None:
    subprocess.run([tool("bash"), "-n", str(BOOTSTRAP)], check=True, timeout=30)
    result = subprocess.run([tool("shellcheck"), str(BOOTSTRAP)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert BOOTSTRAP.stat().st_mode & 0o111, "bootstrap.sh must be executable"


def test_bootstrap_uses_the_seed_paths_and_blocks_the_metadata_address() -> None:
    text = BOOTSTRAP.read_text()
    assert "ANYON_BASE:-/var/opt/anyon" in text
    for part in ("data", "worktrees", "workspace", "tmp", "logs"):
        assert f'"$ANYON_BASE/{part}"' in text
    assert "DOCKER-USER -d $METADATA_ADDRESS -j DROP" in text
    assert "usermod -aG docker" in text and "config validate" in text and "systemctl enable anyon" in text


def test_example_settings_load_as_a_valid_cloud_config(tmp_path: Path) -> None:
    settings = DEPLOY / "etc" / "settings.toml"
    env = {"HOME": str(tmp_path), "ANYON_API_TOKEN": "x"}  # the token normally comes from LoadCredential=
    config = load_config(settings_file=str(settings), environ=env)
    assert config.is_cloud and config.server.host == "0.0.0.0"
    assert config.paths.data_dir == "/var/opt/anyon/data"
    assert config.database.file == "/var/opt/anyon/data/anyon.db"
    assert config.docker.network == "none" and config.logging.format == "json"
    # the one thing ops must fill in: the name users reach the VM by (the example cannot know it)
    assert [w for w in config.warnings if "server.public_hosts" not in w] == [], config.warnings


def test_env_example_names_only_variables_the_loader_knows() -> None:
    known = {name for names in FLAT_ENV.values() for name in names}
    known |= {f"ANYON_{key.replace('.', '__').upper()}" for key in catalogue()}
    known |= {"ANYON_DEPLOYMENT_MODE", "ANYON_API_TOKEN"}
    text = (DEPLOY / "etc" / "anyon.env.example").read_text()
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert names, "no variables found"
    # agents' credentials: what executions.host_env_allowlist lets through to host-run agents
    from fnmatch import fnmatchcase

    from anyon.config.model import ExecutionSettings

    patterns = ExecutionSettings().host_env_allowlist
    agents = {n for n in names - known if any(fnmatchcase(n, p) for p in patterns if "*" in p)}
    assert agents <= {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"}, agents
    assert names - agents <= known, names - agents - known


def test_runner_image_is_non_root_with_git_node_and_agent_clis() -> None:
    text = (DEPLOY / "image" / "Dockerfile").read_text()
    assert re.search(r"^FROM node:\d+", text, re.MULTILINE)
    assert "git" in text and "@anthropic-ai/claude-code" in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_runner_image_installs_every_npm_agent_cli_at_the_pinned_version() -> None:
    from anyon.services.agents.launchers import AGENT_CLIS

    text = (DEPLOY / "image" / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    installed = {package: args[arg] for package, arg in re.findall(r'"(@?[\w./-]+)@\$\{(\w+)\}"', text)}
    for executor, cli in AGENT_CLIS.items():
        if cli.package is None or executor == "CLAUDE_CODE_ROUTER":
            continue
        assert installed.get(cli.package) == cli.version, (executor, cli.package, installed)


def test_runbook_covers_what_ops_need() -> None:
    text = (DEPLOY / "RUNBOOK.md").read_text()
    for needle in (
        "journalctl",
        "Upgrade",
        "backup(",
        "PostgreSQL",
        "ANYON_DEPLOYMENT_MODE=local",
        "/var/opt/anyon",
    ):
        assert needle in text, needle
