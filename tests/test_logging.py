"""configure_logging: JSON records with the deployment tag, text for people, logrotate-safe file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from anyon.logging import configure_logging
from tests.conftest import make_config


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_json_records_carry_deployment_service_and_extras(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_config(tmp_path, mode="cloud", logging={"format": "json"}))
    logging.getLogger("anyon.test").warning("started %s", "attempt", extra={"attempt_id": "a-1"})
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["deployment"] == "cloud"
    assert record["service"] == "anyon"
    assert record["level"] == "WARNING"
    assert record["logger"] == "anyon.test"
    assert record["message"] == "started attempt"
    assert record["attempt_id"] == "a-1"
    assert "timestamp" in record


def test_text_format_for_people(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_config(tmp_path, logging={"format": "text", "level": "DEBUG"}))
    logging.getLogger("anyon.t").debug("hello", extra={"n": 3})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "DEBUG" in line and "anyon.t [local] hello" in line and "n=3" in line


def test_reconfiguring_does_not_duplicate_and_level_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path, logging={"format": "json", "level": "ERROR"})
    configure_logging(config)
    configure_logging(config)
    logging.getLogger("anyon.t").warning("hidden")
    logging.getLogger("anyon.t").error("shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown"]


def test_log_file_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    configure_logging(make_config(tmp_path, paths={"log_file": str(log)}, logging={"format": "json"}))
    logger = logging.getLogger("anyon.rotate")
    logger.warning("before")
    log.rename(tmp_path / "server.log.1")  # what logrotate does
    logger.warning("after")
    assert json.loads((tmp_path / "server.log.1").read_text())["message"] == "before"
    assert json.loads(log.read_text())["message"] == "after"


def test_missing_log_directory_is_created(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "server.log"
    configure_logging(make_config(tmp_path, paths={"log_file": str(log)}, logging={"format": "json"}))
    logging.getLogger("anyon.t").warning("x")
    assert json.loads(log.read_text())["message"] == "x"


def test_unopenable_log_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "server.log").mkdir()  # a directory where the file should be
    config = make_config(tmp_path, paths={"log_file": str(tmp_path / "server.log")})
    with pytest.raises(OSError, match=r"server\.log \(paths\.log_file\)"):
        configure_logging(config)
