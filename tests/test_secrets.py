"""SecretProvider: lookup order, unsafe files refused with the fix, values never printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anyon.commands.common import EXIT_OK
from anyon.config import load_config
from anyon.config.model import AuthSettings
from anyon.security.auth import FailureLimiter, TokenChecker
from anyon.security.secrets import Secret, SecretError, SecretProvider

CANARY = "canary-secret-51d2e0"


def secret_file(directory: Path, name: str, value: str, mode: int = 0o600) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def test_lookup_order_credentials_then_token_file_then_secrets_dir_then_env(tmp_path: Path) -> None:
    creds, secrets = tmp_path / "creds", tmp_path / "secrets"
    token_file = secret_file(tmp_path / "tf", "token", "from-token-file")
    auth = AuthSettings(credentials_dir=str(creds), token_file=str(token_file), secrets_dir=str(secrets))
    env = {"ANYON_API_TOKEN": "from-env"}
    secret_file(creds, "api-token", "from-creds")
    secret_file(secrets, "api-token", "from-secrets-dir")
    assert SecretProvider(auth, env).require("api-token").reveal() == "from-creds"
    (creds / "api-token").unlink()
    assert SecretProvider(auth, env).require("api-token").reveal() == "from-token-file"
    auth = AuthSettings(credentials_dir=str(creds), secrets_dir=str(secrets))
    found = SecretProvider(auth, env).require("api-token")
    assert found.reveal() == "from-secrets-dir" and found.source == str(secrets / "api-token")
    (secrets / "api-token").unlink()
    found = SecretProvider(auth, env).require("api-token")
    assert found.reveal() == "from-env" and found.source == "env ANYON_API_TOKEN"
    assert SecretProvider(auth, {}).get("api-token") is None
    with pytest.raises(SecretError, match="no secret named 'api-token': looked in"):
        SecretProvider(auth, {}).require("api-token")


def test_a_secrets_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "s", "api-token", CANARY, mode=0o644)
    provider = SecretProvider(AuthSettings(secrets_dir=str(tmp_path / "s")), {})
    with pytest.raises(SecretError) as info:
        provider.get("api-token")
    message = str(info.value)
    assert str(path) in message and "mode 0644" in message and f"chmod 600 {path}" in message
    assert CANARY not in message
    path.chmod(0o640)
    with pytest.raises(SecretError, match="group or others"):
        provider.get("api-token")
    path.chmod(0o400)
    assert provider.require("api-token").reveal() == CANARY


def test_a_secrets_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "s", "api-token", CANARY)
    other = os.geteuid() + 1
    provider = SecretProvider(AuthSettings(secrets_dir=str(tmp_path / "s")), {}, service_uid=other)
    with pytest.raises(SecretError) as info:
        provider.get("api-token")
    assert str(path) in str(info.value) and "not by the service user" in str(info.value)
    assert f"fix: chown {other} {path}" in str(info.value) or "fix: chown " in str(info.value)


def test_empty_and_odd_files_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    secret_file(directory, "api-token", "   ")
    provider = SecretProvider(AuthSettings(secrets_dir=str(directory)), {})
    with pytest.raises(SecretError, match="is empty"):
        provider.get("api-token")
    (directory / "api-token").unlink()
    (directory / "api-token").mkdir()
    with pytest.raises(SecretError, match="not a regular file"):
        provider.get("api-token")


def test_secret_values_never_print() -> None:
    secret = Secret("env ANYON_API_TOKEN", CANARY)
    for text in (str(secret), repr(secret), f"{secret}", f"{secret!r}", str([secret]), str({"s": secret})):
        assert CANARY not in text
    assert secret.reveal() == CANARY


def test_config_accepts_a_token_in_the_secrets_dir_or_the_environment(tmp_path: Path) -> None:
    base = {"HOME": str(tmp_path), "ANYON_BASE_DIR": str(tmp_path / "b"), "HOST": "0.0.0.0"}
    base["ANYON_SECRETS_DIR"] = str(tmp_path / "secrets")
    from anyon.config import ConfigError

    (tmp_path / "none.toml").write_text("")
    with pytest.raises(ConfigError, match="ANYON_API_TOKEN"):
        load_config(settings_file=str(tmp_path / "none.toml"), environ=base)
    assert load_config(settings_file=str(tmp_path / "none.toml"), environ={**base, "ANYON_API_TOKEN": CANARY})
    secret_file(tmp_path / "secrets", "api-token", CANARY)
    config = load_config(settings_file=str(tmp_path / "none.toml"), environ=base)
    assert config.auth.secrets_dir == str(tmp_path / "secrets")


def test_config_show_and_validate_never_print_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from anyon.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ANYON_BASE_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("ANYON_TEMP_DIR", str(tmp_path / "t"))
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("ANYON_API_TOKEN", CANARY)
    settings = str(tmp_path / "settings.toml")
    Path(settings).write_text("")
    assert main(["config", "show", "--settings", settings, "--origin"]) == EXIT_OK
    assert main(["config", "show", "--settings", settings, "--format", "json"]) == EXIT_OK
    assert main(["config", "validate", "--settings", settings, "--format", "json"]) in (0, 2)
    out = capsys.readouterr()
    assert CANARY not in out.out + out.err


def test_session_cookies_expire_and_die_with_the_token() -> None:
    now = [1_000_000.0]
    checker = TokenChecker(Secret("t", CANARY), session_seconds=60, clock=lambda: now[0])
    session = checker.new_session()
    assert CANARY not in session
    assert checker.check_session(session)
    assert not checker.check_session(session[:-1] + ("0" if session[-1] != "0" else "1"))
    assert not checker.check_session("v1.9999999999." + session.rsplit(".", 1)[1])  # expiry not forgeable
    rotated = TokenChecker(Secret("t", CANARY + "-rotated"), clock=lambda: now[0])
    assert not rotated.check_session(session)
    now[0] += 61
    assert not checker.check_session(session)
    assert (
        checker.check_token(CANARY) and not checker.check_token(CANARY[:-1]) and not checker.check_token("")
    )


def test_failure_limiter_refills_and_stays_bounded() -> None:
    now = [0.0]
    limiter = FailureLimiter(capacity=3, refill_per_second=0.5, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failure("a")
    assert limiter.retry_after("a") == pytest.approx(2.0)
    assert limiter.retry_after("b") == 0  # per client
    now[0] += 2.0
    assert limiter.retry_after("a") == 0
    limiter.failure("b")
    limiter.failure("c")
    assert len(limiter._buckets) <= 2
