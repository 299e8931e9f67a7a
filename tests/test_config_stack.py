"""The settings stack: layer precedence in both modes, derived defaults, origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from anyon.config import effective_settings, load_config

HOME = "/home/someone"


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment naming a settings file under ``tmp_path`` (so /etc is never read)."""
    path = tmp_path / "settings.toml"
    if not path.exists():
        path.write_text("")
    return {"HOME": HOME, "ANYON_SETTINGS_FILE": str(tmp_path / "settings.toml"), **extra}


def write_settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_local_defaults_follow_xdg_and_the_reference(tmp_path: Path) -> None:
    config = load_config(environ={"HOME": HOME})
    assert config.deployment.mode == "local"
    assert config.paths.base_dir == f"{HOME}/.local/share/anyon"
    assert config.paths.data_dir == f"{HOME}/.local/share/anyon"
    assert config.paths.temp_dir == "/var/tmp/anyon"
    assert config.paths.worktree_dir == "/var/tmp/anyon/worktrees"
    assert config.paths.workspace_dir == f"{HOME}/workspace"
    assert config.database.file == f"{HOME}/.local/share/anyon/anyon.db"
    assert config.paths.log_file is None
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 0
    assert config.logging.format == "text"
    assert config.docker.memory == 4 * 1024**3
    assert config.docker.tmpfs_size == 512 * 1024**2


def test_xdg_data_home_is_respected_and_relative_values_ignored() -> None:
    config = load_config(environ={"HOME": HOME, "XDG_DATA_HOME": "/data/xdg"})
    assert config.paths.data_dir == "/data/xdg/anyon"
    config = load_config(environ={"HOME": HOME, "XDG_DATA_HOME": "relative/dir"})
    assert config.paths.data_dir == f"{HOME}/.local/share/anyon"


def test_cloud_defaults_are_the_seed_layout() -> None:
    config = load_config(environ={"HOME": HOME, "ANYON_DEPLOYMENT_MODE": "cloud"})
    assert config.is_cloud
    assert config.paths.base_dir == "/var/opt/anyon"
    assert config.paths.data_dir == "/var/opt/anyon/data"
    assert config.database.file == "/var/opt/anyon/data/anyon.db"
    assert config.paths.worktree_dir == "/var/opt/anyon/worktrees"
    assert config.paths.workspace_dir == "/var/opt/anyon/workspace"
    assert config.paths.temp_dir == "/var/opt/anyon/tmp"
    assert config.paths.log_file == "/var/opt/anyon/logs/server.log"
    assert config.paths.secrets_dir == "/var/opt/anyon/tmp/cloud-secrets"
    assert config.docker.user == "anyon"
    assert config.docker.image == "anyon-claude:latest"
    assert config.logging.format == "json"


def test_derived_directories_follow_the_base_dir_unless_set(tmp_path: Path) -> None:
    env = base_env(tmp_path, ANYON_DEPLOYMENT_MODE="cloud", ANYON_CLOUD_BASE_DIR="/srv/x")
    config = load_config(environ=env)
    assert config.paths.data_dir == "/srv/x/data"
    assert config.paths.worktree_dir == "/srv/x/worktrees"
    assert config.paths.temp_dir == "/srv/x/tmp"
    assert config.paths.secrets_dir == "/srv/x/tmp/cloud-secrets"
    assert config.database.file == "/srv/x/data/anyon.db"
    assert config.paths.log_file == "/srv/x/logs/server.log"
    config = load_config(environ={**env, "ANYON_WORKTREE_DIR": "/fast/worktrees"})
    assert config.paths.worktree_dir == "/fast/worktrees"
    assert config.paths.data_dir == "/srv/x/data"


def test_alias_base_dir_is_used_and_loses_to_the_primary_name(tmp_path: Path) -> None:
    env = base_env(tmp_path, ANYON_DEPLOYMENT_MODE="cloud", ANYON_BASE_DIR="/alias")
    assert load_config(environ=env).paths.data_dir == "/alias/data"
    result = effective_settings(environ={**env, "ANYON_CLOUD_BASE_DIR": "/primary"})
    assert result.values["paths.data_dir"] == "/primary/data"
    assert any("ANYON_BASE_DIR" in w.origin for w in result.warnings)


# --- the precedence matrix ----------------------------------------------------------------------

LAYERS = ["default", "file", "file-cloud", "env", "env-flat"]


def stack_for(tmp_path: Path, upto: str, mode: str) -> tuple[dict[str, str], Path]:
    """Settings and environment with every layer up to ``upto`` setting paths.data_dir and docker.user."""
    wanted = LAYERS[: LAYERS.index(upto) + 1]
    text = f'[deployment]\nmode = "{mode}"\n'
    if "file" in wanted:
        text += '[paths]\ndata_dir = "/file/top"\n[docker]\nuser = "filetop"\n'
    if "file-cloud" in wanted:
        text += '[cloud.paths]\ndata_dir = "/file/cloud"\n[cloud.docker]\nuser = "filecloud"\n'
    path = write_settings(tmp_path, text)
    env = base_env(tmp_path)
    if "env" in wanted:
        env.update(ANYON_PATHS__DATA_DIR="/env/nested", ANYON_DOCKER__USER="envnested")
    if "env-flat" in wanted:
        env.update(ANYON_DATA_DIR="/env/flat", ANYON_DOCKER_USER="envflat")
    return env, path


EXPECTED = {
    # (top layer present, mode) -> (data_dir, docker.user, winning layer)
    ("default", "local"): (f"{HOME}/.local/share/anyon", "ubuntu", "default"),
    ("default", "cloud"): ("/var/opt/anyon/data", "anyon", "default-cloud"),
    ("file", "local"): ("/file/top", "filetop", "file"),
    ("file", "cloud"): ("/file/top", "filetop", "file"),
    ("file-cloud", "local"): ("/file/top", "filetop", "file"),  # [cloud] ignored in local mode
    ("file-cloud", "cloud"): ("/file/cloud", "filecloud", "file-cloud"),
    ("env", "local"): ("/env/nested", "envnested", "env"),
    ("env", "cloud"): ("/env/nested", "envnested", "env"),
    ("env-flat", "local"): ("/env/flat", "envflat", "env-flat"),
    ("env-flat", "cloud"): ("/env/flat", "envflat", "env-flat"),
}


@pytest.mark.parametrize(("upto", "mode"), list(EXPECTED))
def test_precedence_matrix(tmp_path: Path, upto: str, mode: str) -> None:
    env, _ = stack_for(tmp_path, upto, mode)
    result = effective_settings(environ=env)
    assert result.errors == []
    data_dir, user, layer = EXPECTED[(upto, mode)]
    assert result.values["paths.data_dir"] == data_dir
    assert result.values["docker.user"] == user
    assert result.origins["paths.data_dir"].layer == layer
    assert result.origins["docker.user"].layer == layer
    assert result.mode == mode


def test_mode_option_wins_over_every_layer(tmp_path: Path) -> None:
    write_settings(tmp_path, '[deployment]\nmode = "cloud"\n')
    env = base_env(tmp_path, ANYON_DEPLOYMENT__MODE="cloud", ANYON_DEPLOYMENT_MODE="cloud")
    result = effective_settings(mode="local", environ=env)
    assert result.values["deployment.mode"] == "local"
    assert result.origins["deployment.mode"].text == "option --mode"
    assert result.values["paths.temp_dir"] == "/var/tmp/anyon"  # no [cloud] defaults


def test_settings_option_wins_over_the_environment_variable(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 9999\n")
    write_settings(tmp_path, "[server]\nport = 1111\n")
    assert load_config(str(other), environ=base_env(tmp_path)).server.port == 9999
    assert load_config(environ=base_env(tmp_path)).server.port == 1111


def test_origins_name_file_and_line(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path,
        '# comment\n[server]\nhost = "127.0.0.1"\nport = 8080\n\n[cloud.paths]\n# x\ntemp_dir = "/t"\n',
    )
    env = base_env(tmp_path, ANYON_DOCKER__MEMORY="2g", ANYON_DEPLOYMENT_MODE="cloud")
    result = effective_settings(environ=env)
    assert result.origins["server.port"].text == f"{path}:4"
    assert result.origins["server.host"].text == f"{path}:3"
    assert result.origins["paths.temp_dir"].text == f"[cloud] in {path}:8"
    assert result.origins["docker.memory"].text == "env ANYON_DOCKER__MEMORY"
    assert result.values["docker.memory"] == 2 * 1024**3
    assert result.origins["docker.cpus"].text == "default"
    assert result.origins["paths.log_file"].text == "default [cloud]"
    assert result.origins["deployment.mode"].text == "env ANYON_DEPLOYMENT_MODE"


def test_listener_environment_names(tmp_path: Path) -> None:
    env = base_env(tmp_path, HOST="::1", PORT="7000", BACKEND_PORT="\x1b[32m7001\x1b[0m")
    config = load_config(environ=env)
    assert config.server.host == "::1"
    assert config.server.port == 7001
    config = load_config(environ=base_env(tmp_path, PORT="7000"))
    assert config.server.port == 7000


def test_lists_from_the_environment_replace_file_lists(tmp_path: Path) -> None:
    write_settings(tmp_path, '[server]\ncors_allowed_origins = ["https://a.example"]\n')
    env = base_env(tmp_path, CORS_ALLOWED_ORIGINS="https://b.example, http://localhost:3000")
    config = load_config(environ=env)
    assert config.server.cors_allowed_origins == ("https://b.example", "http://localhost:3000")
    env = base_env(tmp_path, ANYON_DOCKER__ENV_ALLOWLIST='["A", "B"]')
    assert load_config(environ=env).docker.env_allowlist == ("A", "B")


def test_values_are_typed_and_sizes_parsed(tmp_path: Path) -> None:
    write_settings(
        tmp_path,
        '[docker]\nmemory = "512m"\nmemory_swap = 1073741824\ncpus = 1\n'
        '[logging]\nlevel = "debug"\n[retention]\norphan_sweep = false\n',
    )
    env = base_env(
        tmp_path, ANYON_RETENTION__ORPHAN_SWEEP_DRY_RUN="yes", ANYON_EXECUTIONS__MAX_CONCURRENT="8"
    )
    config = load_config(environ=env)
    assert config.docker.memory == 512 * 1024**2
    assert config.docker.memory_swap == 1024**3
    assert config.docker.cpus == 1.0 and isinstance(config.docker.cpus, float)
    assert config.logging.level == "DEBUG"
    assert config.retention.orphan_sweep is False
    assert config.retention.orphan_sweep_dry_run is True
    assert config.executions.max_concurrent == 8


def test_empty_string_unsets_optional_settings(tmp_path: Path) -> None:
    env = base_env(tmp_path, ANYON_DEPLOYMENT_MODE="cloud", ANYON_LOG_FILE="")
    config = load_config(environ=env)
    assert config.paths.log_file is None


def test_a_missing_default_system_file_is_fine() -> None:
    # no --settings and no ANYON_SETTINGS_FILE: /etc/anyon/settings.toml is optional
    result = effective_settings(environ={"HOME": HOME})
    assert result.errors == []


def test_placeholders_in_the_system_file(tmp_path: Path) -> None:
    write_settings(tmp_path, '[paths]\nbase_dir = "/opt/a"\nworkspace_dir = "${paths.base_dir}/ws"\n')
    config = load_config(environ=base_env(tmp_path))
    assert config.paths.workspace_dir == "/opt/a/ws"
    assert config.paths.data_dir == "/opt/a"
