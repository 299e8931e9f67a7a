"""A complete configuration whose every path lives under one directory (tests and benchmarks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from anyon.config.model import (
    AnyonConfig,
    AuthSettings,
    DatabaseSettings,
    DeploymentSettings,
    DockerSettings,
    ExecutionSettings,
    LoggingSettings,
    NotificationSettings,
    PathSettings,
    RetentionSettings,
    ServerSettings,
)


def make_config(root: Path, mode: str = "local", **sections: dict[str, Any]) -> AnyonConfig:
    """A complete config whose every path lives under ``root``; ``sections`` override fields."""
    base = root / "anyon"
    config = AnyonConfig(
        deployment=DeploymentSettings(mode=mode),  # type: ignore[arg-type]
        server=ServerSettings(),
        paths=PathSettings(
            base_dir=str(base),
            data_dir=str(base / "data"),
            worktree_dir=str(base / "worktrees"),
            workspace_dir=str(base / "workspace"),
            temp_dir=str(base / "tmp"),
            log_file=None,
        ),
        database=DatabaseSettings(file=str(base / "data" / "anyon.db")),
        docker=DockerSettings(),
        executions=ExecutionSettings(),
        retention=RetentionSettings(),
        logging=LoggingSettings(format="text"),
        auth=AuthSettings(),
        # no desktop notices from test attempts on a developer's machine (tests/test_notifications.py
        # turns them on with recording stand-ins)
        notifications=NotificationSettings(desktop=False),
    )
    for name, values in sections.items():
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **values)})
    return config
