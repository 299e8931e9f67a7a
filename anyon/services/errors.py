"""Errors services raise; the API maps each kind to the spec's answer.

* :class:`ServiceError` — a "soft" error: HTTP 200, ``success: false`` and the message (or typed
  ``error_data``), the spec's answer for most validation problems.
* :class:`NotFound` — 404 (unknown id in the path).
* :class:`Conflict` — 409 (e.g. deleting a task while a process runs, draft version mismatch).
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 200

    def __init__(self, message: str, error_data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_data = error_data


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409
