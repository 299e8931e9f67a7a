"""Draft routes of an attempt (spec §1.5): autosave, delete, queue."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.validation import F, api_operation, parse_uuid, query_params
from anyon.services.board.drafts import check_type
from anyon.services.container import Services

UPDATE_DRAFT = {
    "prompt": F("str"),
    "variant": F("str"),
    "image_ids": F("list[uuid]"),
    "version": F("int"),
    "retry_process_id": F("uuid"),
}
DRAFT_QUERY = {"type": F("str", enum=("follow_up", "retry"))}
SET_QUEUE = {
    "queued": F("bool", required=True, nullable=False),
    "expected_queued": F("bool"),
    "expected_version": F("int"),
}


class AttemptDraft:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(query=DRAFT_QUERY, data="DraftResponse")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        draft_type = check_type(query_params(req, DRAFT_QUERY)["type"])
        respond(resp, await run_sync(self._services.drafts.get, aid, draft_type))

    @api_operation(query=DRAFT_QUERY, body=UPDATE_DRAFT, data="DraftResponse")
    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        draft_type = check_type(query_params(req, DRAFT_QUERY)["type"])
        body = await json_body(req, UPDATE_DRAFT)
        respond(resp, await run_sync(self._services.drafts.save, aid, draft_type, body))

    @api_operation(query=DRAFT_QUERY, data="null")
    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        draft_type = check_type(query_params(req, DRAFT_QUERY)["type"])
        await run_sync(self._services.drafts.delete, aid, draft_type)
        respond(resp, None)


class DraftQueue:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(query=DRAFT_QUERY, body=SET_QUEUE, data="DraftResponse")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        draft_type = check_type(query_params(req, DRAFT_QUERY)["type"])
        body = await json_body(req, SET_QUEUE)
        draft = await run_sync(self._services.drafts.set_queued, aid, draft_type, body)
        if draft["queued"] and draft_type == "follow_up":
            await self._services.executions.send_queued(aid)
            draft = await run_sync(self._services.drafts.get, aid, draft_type)
        respond(resp, draft)
