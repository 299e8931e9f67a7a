"""Realistic mistakes an operator makes in /etc/anyon, through the real CLI: exit status and the phrases
that tell them what is wrong, where, what a valid value looks like, and how to fix it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from anyon.cli import main
from anyon.config.envfile import parse_env_text
from anyon.config.fields import FLAT_ENV


@dataclass
class Mistake:
    name: str
    settings: str = ""
    env_file: str | None = None  # contents of an EnvironmentFile passed with --env-file
    environ: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    settings_mode: int = 0o640
    code: int = 1
    phrases: tuple[str, ...] = ()  # in stderr; "{settings}" / "{env}" stand for the files' paths
    absent: tuple[str, ...] = ()


MISTAKES = [
    Mistake(
        "memory without a unit",
        "[docker]\nmemory = 2\n",
        phrases=(
            "docker.memory ({settings}:2)",
            "a size of at least 6 MiB",
            'e.g. "2g"',
            "a bare number counts bytes",
        ),
    ),
    Mistake(
        "a size that is not one",
        '[executions]\nlog_cap_bytes = "ten megs"\n',
        phrases=("executions.log_cap_bytes ({settings}:2)", '"512m" or "2g"', 'found a string "ten megs"'),
    ),
    Mistake(
        "a docker key at the top level",
        'memory = "2g"\n[server]\nport = 8080\n',
        phrases=('unknown section "memory"', "it is a key of [docker]", "move the line under [docker]"),
    ),
    Mistake(
        "a cloud key at the top of [cloud]",
        "[cloud]\nwarm_pool_size = 2\n",
        phrases=("[cloud] in {settings}:2", "it is a key of [cloud.docker]"),
    ),
    Mistake(
        "[cloud] nested the wrong way",
        '[docker.cloud]\nmemory = "2g"\n',
        phrases=("[cloud] is a top-level table", "write [cloud.docker], not [docker.cloud]"),
    ),
    Mistake(
        "a key in the wrong section",
        '[server]\nimage = "anyon-claude:latest"\n',
        phrases=('unknown key "image" in [server]', "image belongs in [docker]"),
    ),
    Mistake(
        "an unterminated string does not hide the other problems",
        '[server]\nhost = "0.0.0.0\nport = 70000\n[docker]\nmemory = 2\n',
        environ={"ANYON_EXECUTIONS__MAX_CONCURRENT": "many"},
        phrases=(
            "{settings}:2: malformed TOML",
            'unterminated string: the closing " is missing',
            'fix: close the string: host = "0.0.0.0"',
            "server.port ({settings}:3)",
            "docker.memory ({settings}:5)",
            "env ANYON_EXECUTIONS__MAX_CONCURRENT",
            "(4 problems)",
        ),
        absent=("Illegal character",),
    ),
    Mistake(
        "an unquoted string",
        "[server]\nhost = 0.0.0.0\n",
        phrases=("{settings}:2", "not a TOML value (text needs quotes)", 'quote it: host = "0.0.0.0"'),
    ),
    Mistake(
        "an unclosed table header",
        '[docker\nmemory = "2g"\n',
        phrases=("{settings}:1", 'unclosed table header: a "]" is missing', "write it as [docker]"),
    ),
    Mistake(
        "an invalid mode under --mode",
        environ={"ANYON_DEPLOYMENT_MODE": "clod"},
        args=("--mode", "cloud"),
        phrases=(
            "deployment.mode (env ANYON_DEPLOYMENT_MODE)",
            '"local", "cloud"',
            "overridden by option --mode",
        ),
    ),
    Mistake(
        "an env override for a key of another section",
        environ={"ANYON_SERVER__MEMORY": "2g"},
        phrases=("env ANYON_SERVER__MEMORY", "use ANYON_DOCKER__MEMORY"),
    ),
    Mistake(
        "a bad value in the env file is named with its line",
        env_file="# overrides\nANYON_DOCKER__MEMORY=2\nPORT=eighty\n",
        phrases=(
            "docker.memory (env ANYON_DOCKER__MEMORY ({env}:2))",
            "server.port (env PORT ({env}:3))",
        ),
    ),
    Mistake(
        "shell syntax in the env file",
        env_file="export ANYON_DATABASE__URL=postgresql://a@db/anyon\nnot an assignment\n",
        phrases=(
            '{env}:1: "export ANYON_DATABASE__URL" is not a variable name',
            "drop the shell's export",
            '{env}:2: not an assignment: "not an assignment"',
        ),
    ),
    Mistake(
        "a PostgreSQL password in a world-readable settings file",
        '[database]\nurl = "postgresql://anyon:hunter2@127.0.0.1:5432/anyon"\n',
        settings_mode=0o644,
        code=0,
        phrases=(
            "WARNING",
            "holds a secret (database.url with a password)",
            "mode 0644",
            "chmod 0640 {settings}",
        ),
        absent=("hunter2",),
    ),
    Mistake(
        "a PostgreSQL password in a world-readable env file",
        env_file="ANYON_DATABASE__URL=postgresql://anyon:hunter2@127.0.0.1:5432/anyon\n",
        code=0,
        phrases=("WARNING", "{env} holds a secret (ANYON_DATABASE__URL)", "chmod 0640 {env}"),
        absent=("hunter2",),
    ),
    Mistake(
        "a token file every account can read",
        '[server]\nhost = "0.0.0.0"\npublic_hosts = ["anyon.example.com"]\n[auth]\ntoken_file = "{token}"\n',
        code=2,
        phrases=("api token", "readable by group or others", "chmod 600"),
    ),
    Mistake(
        "a reachable listener without any credential",
        '[server]\nhost = "0.0.0.0"\n[auth]\nsecrets_dir = ""\n',
        phrases=("server.host ({settings}:2)", "no auth credential is configured", "listen on 127.0.0.1"),
    ),
    Mistake(
        "a port out of range",
        "[server]\nport = 80800\n",
        phrases=("server.port ({settings}:2)", "a value from 0 to 65535, e.g. 8080"),
    ),
]


@pytest.fixture
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("ANYON_") or any(name in n for n in FLAT_ENV.values()):
            monkeypatch.delenv(name)
    for name in ("XDG_DATA_HOME", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANYON_TEMP_DIR", str(tmp_path / "tmp"))
    return tmp_path


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_realistic_mistake(
    mistake: Mistake, hermetic: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = hermetic / "api-token"
    token.write_text("a-token-of-some-length\n")
    token.chmod(0o644)
    settings = hermetic / "settings.toml"
    settings.write_text(mistake.settings.replace("{token}", str(token)))
    settings.chmod(mistake.settings_mode)
    args = ["config", "validate", "--settings", str(settings), *mistake.args]
    env_path = hermetic / "anyon.env"
    if mistake.env_file is not None:
        env_path.write_text(mistake.env_file)
        env_path.chmod(0o644)
        args += ["--env-file", str(env_path)]
    for name, value in mistake.environ.items():
        monkeypatch.setenv(name, value)
    code = main(args)
    err = capsys.readouterr().err
    assert code == mistake.code, err
    for phrase in mistake.phrases:
        assert phrase.format(settings=settings, env=env_path) in err, err
    for phrase in mistake.absent:
        assert phrase not in err


def test_show_origin_on_an_invalid_configuration(hermetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = hermetic / "settings.toml"
    settings.write_text('[docker]\nmemory = 2\nimage = "anyon-claude:latest"\n[server]\nport = 80800\n')
    env_file = hermetic / "anyon.env"
    env_file.write_text("ANYON_DATABASE__URL=postgresql://anyon:hunter2@127.0.0.1:5432/anyon\n")
    env_file.chmod(0o600)
    base = ["config", "show", "--origin", "--settings", str(settings), "--env-file", str(env_file)]
    assert main(base) == 1
    out, err = capsys.readouterr()
    assert f"memory = 2  # {settings}:2  INVALID: expected a size of at least 6 MiB" in out
    assert f'image = "anyon-claude:latest"  # {settings}:3\n' in out
    assert f"port = 80800  # {settings}:5  INVALID: expected a value from 0 to 65535" in out
    assert (
        f'url = "postgresql://anyon:***@127.0.0.1:5432/anyon"  # env ANYON_DATABASE__URL ({env_file}:1)'
        in out
    )
    assert "[paths]" in out and "hunter2" not in out + err
    assert "The configuration is invalid (2 problems)" in err
    assert main([*base, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["docker"]["memory"]["value"] == 2
    assert "at least 6 MiB" in report["docker"]["memory"]["invalid"]
    assert "invalid" not in report["docker"]["image"]


ENV_FILE_CASES = [
    ("A=1\n", {"A": "1"}),
    ("  A = spaced value  \n", {"A": "spaced value"}),
    ("# comment\n; comment\n\nA=1\n", {"A": "1"}),
    ('A="  kept  "\n', {"A": "  kept  "}),
    ("A='$HOME \\n literal'\n", {"A": "$HOME \\n literal"}),
    ('A="a \\"quote\\" \\$HOME \\\\ \\n"\n', {"A": 'a "quote" $HOME \\ \\n'}),
    ("A=one\\\ntwo\n", {"A": "onetwo"}),
    ('A="one\\\ntwo"\n', {"A": "onetwo"}),
    ('A="multi\nline"\nB=2\n', {"A": "multi\nline", "B": "2"}),
    ('A="x y"z\n', {"A": "x yz"}),
    ("A=a\\ b\n", {"A": "a b"}),
    ("A=${HOME}/x\n", {"A": "${HOME}/x"}),  # no expansion, as systemd
    ("A=1\nA=2\n", {"A": "2"}),
    ("A=\n", {"A": ""}),
]


@pytest.mark.parametrize(("text", "expected"), ENV_FILE_CASES)
def test_env_file_is_read_as_systemd_reads_it(text: str, expected: dict[str, str]) -> None:
    parsed = parse_env_text(text, "/etc/anyon/anyon.env")
    assert not parsed.issues, [i.message for i in parsed.issues]
    assert parsed.values == expected


def test_env_file_wins_over_the_process_environment_and_feeds_doctor(
    hermetic: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = hermetic / "settings.toml"
    settings.write_text("")
    env_file = hermetic / "anyon.env"
    env_file.write_text("ANYON_EXECUTIONS__MAX_CONCURRENT=7\nHOST=0.0.0.0\n")
    monkeypatch.setenv("ANYON_EXECUTIONS__MAX_CONCURRENT", "3")
    assert (
        main(
            [
                "config",
                "show",
                "executions.max_concurrent",
                "--settings",
                str(settings),
                "--env-file",
                str(env_file),
            ]
        )
        == 1
    )  # HOST=0.0.0.0 without a token: invalid
    assert "max_concurrent = 7" in capsys.readouterr().out
    # without the file, the same environment is valid: the file is what validate and doctor must read
    assert main(["doctor", "--settings", str(settings)]) == 0
    capsys.readouterr()
    assert main(["doctor", "--settings", str(settings), "--env-file", str(env_file)]) == 1
    assert f"server.host (env HOST ({env_file}:2))" in capsys.readouterr().err
    assert main(["config", "validate", "--env-file", str(hermetic / "missing.env")]) == 1
    assert "cannot read --env-file" in capsys.readouterr().err
