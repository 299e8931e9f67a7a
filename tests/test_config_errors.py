"""Bad input: every problem is reported at once, naming the key, the layer and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from anyon.config import ConfigError, ConfigIssue, effective_settings, load_config


def env_for(tmp_path: Path, text: str = "", **extra: str) -> dict[str, str]:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return {"HOME": str(tmp_path / "home"), "ANYON_SETTINGS_FILE": str(path), **extra}


def errors_of(env: dict[str, str], **kwargs: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(environ=env, **kwargs)
    return caught.value.errors


def only(errors: list[ConfigIssue]) -> ConfigIssue:
    assert len(errors) == 1, [e.message for e in errors]
    return errors[0]


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[server]\nhost = "127.0.0.1"\nport = = 3\n')
    issue = only(errors_of(env))
    assert issue.origin == f"{tmp_path / 'settings.toml'}:3"
    assert "malformed TOML" in issue.message
    assert "column" in issue.message


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[server]\nhots = "127.0.0.1"\n')
    issue = only(errors_of(env))
    assert issue.key == "server.hots"
    assert issue.origin == f"{tmp_path / 'settings.toml'}:2"
    assert 'did you mean "host"?' in issue.message


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    env = env_for(tmp_path, "[dokcer]\nmemory = 1\n")
    issue = only(errors_of(env))
    assert issue.key == "dokcer"
    assert issue.origin == f"{tmp_path / 'settings.toml'}:1"
    assert 'did you mean "docker"?' in issue.message


def test_unknown_key_inside_cloud_and_mode_inside_cloud(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[cloud.paths]\ndata_dri = "/x"\n[cloud.deployment]\nmode = "local"\n')
    errors = errors_of(env)
    messages = " | ".join(e.message for e in errors)
    assert 'did you mean "data_dir"?' in messages
    assert "[cloud] in" in errors[0].origin
    assert any(e.key == "cloud.deployment" for e in errors)


def test_unknown_environment_setting(tmp_path: Path) -> None:
    env = env_for(tmp_path, ANYON_DOCKER__MEMORI="2g", ANYON_SERVR__PORT="1")
    errors = errors_of(env)
    assert {e.origin for e in errors} == {"env ANYON_DOCKER__MEMORI", "env ANYON_SERVR__PORT"}
    assert any('did you mean "memory"?' in e.message for e in errors)
    assert any('did you mean "server"?' in e.message for e in errors)


def test_wrong_type(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[server]\nport = "8080"\n[docker]\nread_only_rootfs = "yes"\n')
    errors = errors_of(env)
    port = next(e for e in errors if e.key == "server.port")
    assert port.expected.startswith("an integer")
    assert port.found == 'a string "8080"'
    assert port.origin.endswith("settings.toml:2")
    assert any(e.key == "docker.read_only_rootfs" and "boolean" in e.expected for e in errors)


def test_relative_path(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[paths]\nworktree_dir = "worktrees"\n')
    issue = only(errors_of(env))
    assert issue.key == "paths.worktree_dir"
    assert issue.expected == "an absolute path"
    assert '"worktrees"' in issue.found


def test_port_out_of_range(tmp_path: Path) -> None:
    env = env_for(tmp_path, "[server]\nport = 70000\n")
    issue = only(errors_of(env))
    assert issue.key == "server.port"
    assert issue.expected.startswith("a value from 0 to 65535, e.g. ")
    assert issue.found == "an integer 70000"


def test_unknown_mode_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[deployment]\nmode = "cluod"\n')
    issue = only(errors_of(env))
    assert issue.key == "deployment.mode"
    assert '"local"' in issue.expected and '"cloud"' in issue.expected
    # the environment wins, and the file's invalid value is still reported (it applies again without it)
    errors = errors_of({**env, "ANYON_DEPLOYMENT_MODE": "remote"})
    assert [e.origin for e in errors] == [f"{tmp_path / 'settings.toml'}:2", "env ANYON_DEPLOYMENT_MODE"]
    assert "overridden by env ANYON_DEPLOYMENT_MODE" in errors[0].message


def test_unparseable_environment_values(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        ANYON_SERVER__PORT="eighty",
        ANYON_RETENTION__ORPHAN_SWEEP="maybe",
        ANYON_DOCKER__MEMORY="lots",
        BACKEND_PORT="80a",
    )
    errors = {e.origin: e for e in errors_of(env)}
    assert set(errors) == {
        "env ANYON_SERVER__PORT",
        "env ANYON_RETENTION__ORPHAN_SWEEP",
        "env ANYON_DOCKER__MEMORY",
        "env BACKEND_PORT",
    }
    assert errors["env ANYON_SERVER__PORT"].expected == "an integer"
    assert "512m" in errors["env ANYON_DOCKER__MEMORY"].expected


def test_explicit_settings_file_that_does_not_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    issue = only(errors_of({"HOME": "/h"}, settings_file=missing))
    assert issue.origin == f"option --settings {missing}"
    assert "does not exist" in issue.message
    issue = only(errors_of({"HOME": "/h", "ANYON_SETTINGS_FILE": missing}))
    assert issue.origin == "env ANYON_SETTINGS_FILE"


def test_unreadable_settings_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    issue = only(errors_of({"HOME": "/h"}, settings_file=str(directory)))
    assert "cannot read the settings file" in issue.message
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'[server]\nhost = "\xff"\n')
    issue = only(errors_of({"HOME": "/h"}, settings_file=str(binary)))
    assert "not UTF-8" in issue.message


def test_non_loopback_host_needs_a_credential(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[server]\nhost = "0.0.0.0"\n')
    issue = only(errors_of(env))
    assert issue.key == "server.host"
    assert issue.origin.endswith("settings.toml:2")
    assert "auth.token_file" in issue.message
    token = tmp_path / "token"
    token.write_text("secret")
    assert load_config(environ={**env, "ANYON_API_TOKEN_FILE": str(token)}).server.host == "0.0.0.0"
    creds = tmp_path / "creds"
    creds.mkdir()
    assert errors_of({**env, "CREDENTIALS_DIRECTORY": str(creds)})
    (creds / "api-token").write_text("secret")
    assert load_config(environ={**env, "CREDENTIALS_DIRECTORY": str(creds)}).auth.credentials_dir == str(
        creds
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_hosts_run_open(tmp_path: Path, host: str) -> None:
    assert load_config(environ=env_for(tmp_path, HOST=host)).server.host == host


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        '[server]\nport = -1\nhots = "x"\n[paths]\ntemp_dir = "tmp"\n[docker]\nmemory = "2 parsecs"\n',
        ANYON_EXECUTIONS__MAX_CONCURRENT="many",
    )
    keys = sorted(e.key for e in errors_of(env))
    assert keys == [
        "docker.memory",
        "executions.max_concurrent",
        "paths.temp_dir",
        "server.hots",
        "server.port",
    ]


def test_semantic_checks(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        '[database]\nurl = "mysql://u:hunter2@db/x"\n[docker]\nhost = "ftp://x"\nuser = "bad user"\n'
        'memory = "2g"\nmemory_swap = "1g"\n[server]\ncors_allowed_origins = ["not a url"]\n',
    )
    errors = {e.key: e for e in errors_of(env)}
    assert set(errors) == {
        "database.url",
        "docker.host",
        "docker.user",
        "docker.memory_swap",
        "server.cors_allowed_origins",
    }
    assert "hunter2" not in errors["database.url"].message
    assert "***" in errors["database.url"].found


def test_browser_boundary_settings_name_the_bad_entry_and_its_layer(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        '[server]\ncors_allowed_origins = ["*"]\npublic_hosts = ["anyon.example.com", "https://x.example/"]\n',
        ANYON_SERVER__TRUSTED_PROXIES="10.0.0.0/8, not-an-ip",
    )
    errors = {e.key: e for e in errors_of(env)}
    assert set(errors) == {"server.cors_allowed_origins", "server.public_hosts", "server.trusted_proxies"}
    star = errors["server.cors_allowed_origins"]
    assert star.origin.endswith("settings.toml:2") and "every web page" in star.message
    public = errors["server.public_hosts"]
    assert public.origin.endswith("settings.toml:3") and '"https://x.example/"' in public.message
    proxies = errors["server.trusted_proxies"]
    assert proxies.origin == "env ANYON_SERVER__TRUSTED_PROXIES" and '"not-an-ip"' in proxies.message


def test_browser_boundary_settings_accept_hosts_ports_and_networks(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        "[server]\n"
        'public_hosts = ["Anyon.Example.com", "10.0.0.5:8080", "[2001:db8::1]:8443", "2001:db8::2"]\n'
        'trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]\n'
        'cors_allowed_origins = ["https://board.example.com", "http://localhost:3000/"]\n',
    )
    server = load_config(environ=env).server
    assert server.public_hosts[1] == "10.0.0.5:8080" and len(server.trusted_proxies) == 4


def test_wildcard_listener_without_public_hosts_warns(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[server]\nhost = "0.0.0.0"\n', ANYON_API_TOKEN="x")
    assert any("server.public_hosts" in w for w in load_config(environ=env).warnings)
    env["ANYON_SERVER__PUBLIC_HOSTS"] = "anyon.example.com"
    config = load_config(environ=env)
    assert config.server.public_hosts == ("anyon.example.com",)
    assert not any("server.public_hosts" in w for w in config.warnings)


def test_bad_placeholder_and_cycle(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        '[paths]\nbase_dir = "${paths.nope}/x"\nworkspace_dir = "${paths.temp_dir}/w"\n'
        'temp_dir = "${paths.workspace_dir}/t"\n',
    )
    errors = errors_of(env)
    assert any(e.key == "paths.base_dir" and "unknown reference" in e.message for e in errors)
    assert any("circular reference" in e.message for e in errors)


def test_warnings_do_not_make_the_config_invalid(tmp_path: Path) -> None:
    env = env_for(tmp_path, '[cloud.docker]\nnetwork = "bridge"\n', ANYON_DEPLOYMENT_MODE="cloud")
    result = effective_settings(environ=env)
    assert result.errors == []
    assert [w.key for w in result.warnings] == ["docker.network"]
    assert result.config is not None and result.config.warnings


def test_github_urls_must_be_https_or_loopback_http(tmp_path: Path) -> None:
    text = (
        '[github]\napi_url = "http://github.example.com/api/v3"\nweb_url = "file:///srv/git"\n'
        "timeout_seconds = 0\n"
    )
    errors = errors_of(env_for(tmp_path, text))
    assert sorted(e.key for e in errors) == ["github.api_url", "github.timeout_seconds", "github.web_url"]
    assert all("settings.toml" in e.message for e in errors)
    for bad in ("https://user:pw@github.com", "https://github.com?x=1", "https://"):
        found = errors_of(env_for(tmp_path, f'[github]\napi_url = "{bad}"\n'))
        assert [e.key for e in found] == ["github.api_url"]
        assert ":pw@" not in found[0].message  # a password in the URL is never echoed
    ok = load_config(
        environ=env_for(
            tmp_path,
            '[github]\napi_url = "http://127.0.0.1:9/api/v3"\nweb_url = "https://ghe.example.com"\n',
            GITHUB_CLIENT_ID="Iv1.abc",
        )
    )
    assert ok.github.api_url == "http://127.0.0.1:9/api/v3" and ok.github.client_id == "Iv1.abc"
    assert ok.github.pr_monitor_interval_seconds == 60.0 and ok.github.allow_local_remotes is False


def test_swarm_settings_are_checked(tmp_path: Path) -> None:
    text = (
        '[docker]\nrunner = "kubernetes"\nswarm_constraints = ["node.labels.pool==agents", "rm -rf /"]\n'
        'swarm_engine_label = "bad label"\nswarm_task_timeout_seconds = 0\n'
    )
    errors = {e.key: e for e in errors_of(env_for(tmp_path, text))}
    assert set(errors) == {
        "docker.runner",
        "docker.swarm_constraints",
        "docker.swarm_engine_label",
        "docker.swarm_task_timeout_seconds",
    }
    assert '"engine", "swarm"' in errors["docker.runner"].message
    assert '"rm -rf /"' in errors["docker.swarm_constraints"].message
    good = '[docker]\nrunner = "swarm"\nswarm_constraints = ["node.role != manager", "node.labels.a.b==c"]\n'
    config = load_config(environ=env_for(tmp_path, good))
    assert config.docker.runner == "swarm"
    assert config.docker.swarm_constraints == ("node.role != manager", "node.labels.a.b==c")
