"""Can this machine serve this configuration? Checks shared by cloud start-up, ``anyon doctor`` and
``anyon config validate --online``.

``anyon config validate`` proves the settings are well-formed; these checks look at the machine: the
Docker Engine and its image, the service user's rights, disk space, git, the database, the API token.
Each result is ``ok``, ``warn`` or ``fail`` with a one-line hint saying what to do, so the same list
reads well in a terminal, as JSON, and in the journal when start-up refuses to go on.

Every probe that touches something outside the process is a parameter, so tests exercise the real
checks without sending traffic anywhere but loopback.

The package owns the checks, one module per subject: :mod:`~anyon.checks.results` (the outcome type),
:mod:`~anyon.checks.machine` (directories, disk, git, database), :mod:`~anyon.checks.credentials` (API
and GitHub tokens), :mod:`~anyon.checks.docker` (the Engine, its image, the metadata address) and
:mod:`~anyon.checks.swarm` (a swarm's manager and nodes). It may import ``anyon.config``; the security
and runner modules it probes with are imported inside the checks that use them, so loading the package
stays cheap for ``anyon config validate``. The commands (``serve``, ``doctor``, ``config``) import it;
nothing below them does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from anyon.checks.credentials import check_api_token, check_github
from anyon.checks.docker import MetadataProbe, check_docker
from anyon.checks.machine import check_database, check_directories, check_disk, check_git
from anyon.checks.results import CheckResult, Status, fail, ok, warn, worst
from anyon.config.model import AnyonConfig

__all__ = [
    "CheckResult",
    "MetadataProbe",
    "Status",
    "check_api_token",
    "check_database",
    "check_directories",
    "check_disk",
    "check_docker",
    "check_git",
    "check_github",
    "fail",
    "ok",
    "run_checks",
    "warn",
    "worst",
]


def run_checks(
    config: AnyonConfig,
    *,
    environ: Mapping[str, str] | None = None,
    uid: int | None = None,
    metadata_probe: MetadataProbe | None = None,
    docker_client_factory: Callable[[], Any] | None = None,
) -> list[CheckResult]:
    """Every check that applies to ``config`` (Docker ones in cloud mode only), in a stable order."""
    service_uid = os.geteuid() if uid is None else uid
    results = check_directories(config, service_uid)
    results += check_disk(config)
    results.append(check_git())
    results.append(check_database(config))
    results.append(check_api_token(config, environ))
    results.append(check_github(config, environ))
    if config.is_cloud:
        results += check_docker(
            config, service_uid, metadata_probe=metadata_probe, client_factory=docker_client_factory
        )
    return results
