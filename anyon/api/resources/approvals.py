"""``POST /api/approvals/{approval_id}/respond``: a person answers an agent's tool approval (spec §11).

The reply is the bare resulting ``ApprovalStatus`` (not enveloped, as the contract says). Errors are the
usual envelope with a status the UI can read: 404 for an unknown approval, 409 for one already answered,
timed out or cancelled by a stop, 4xx naming the field for a bad body (spec §8: never the reference's
empty 500).
"""

from __future__ import annotations

import uuid

import falcon.asgi

from anyon.api.envelope import ApiError
from anyon.api.http import json_body
from anyon.api.validation import F, api_operation
from anyon.services.container import Services
from anyon.services.errors import NotFound, ServiceError

STATUS = {
    "status": F("str", required=True, nullable=False, enum=("approved", "denied")),
    "reason": F("str"),
}
RESPOND = {
    "execution_process_id": F("uuid", required=True, nullable=False),
    "status": F("object", required=True, nullable=False, fields=STATUS),
}


class ApprovalRespond:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(body=RESPOND, data="raw:ApprovalStatus")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, approval_id: str) -> None:
        body = await json_body(req, RESPOND)
        try:
            status = self._services.approvals.respond(
                approval_id, uuid.UUID(body["execution_process_id"]), body["status"]
            )
        except NotFound:
            raise
        except ServiceError as exc:
            if exc.status != 200:
                raise
            raise ApiError(400, f"BadRequest: {exc.message}") from None
        resp.media = status
