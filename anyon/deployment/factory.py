"""``build_deployment(config)``: picks the mode and wires the services in the seed's order."""

from __future__ import annotations

from anyon.config.model import AnyonConfig
from anyon.deployment.base import BaseDeployment
from anyon.deployment.cloud import CloudDeployment
from anyon.deployment.local import LocalDeployment
from anyon.services.container import build_services


def build_deployment(config: AnyonConfig) -> BaseDeployment:
    services = build_services(config)
    if config.is_cloud:
        return CloudDeployment(config, services)
    return LocalDeployment(config, services)
