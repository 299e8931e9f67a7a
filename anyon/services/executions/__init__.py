"""The execution lifecycle: setup → coding agent → cleanup chains, shared by both deployment modes."""

from anyon.services.executions.engine import ExecutionService

__all__ = ["ExecutionService"]
