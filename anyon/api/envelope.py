"""The response envelope every REST route answers with (spec §0.2, types.md §1).

``{success, data, error_data, message}`` — all four keys, always. Soft errors are HTTP 200 with
``success: false``; hard errors keep the envelope but carry a non-2xx status.
"""

from __future__ import annotations

from typing import Any


def ok(data: Any = None) -> dict[str, Any]:
    return {"success": True, "data": data, "error_data": None, "message": None}


def soft_error(message: str) -> dict[str, Any]:
    return {"success": False, "data": None, "error_data": None, "message": message}


def typed_error(error_data: Any) -> dict[str, Any]:
    return {"success": False, "data": None, "error_data": error_data, "message": None}


class ApiError(Exception):
    """A hard error: non-2xx status, enveloped message (``"<Kind>: <detail>"`` or bare text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
