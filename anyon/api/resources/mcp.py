"""``GET/POST /api/mcp-config?executor=X`` (spec §1.1, types.md §5): the agent's MCP servers."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.validation import F, api_operation, query_params
from anyon.services.container import Services

MCP_QUERY = {"executor": F("str", required=True, nullable=False)}
MCP_BODY = {"servers": F("object", required=True, nullable=False)}


class McpConfig:
    def __init__(self, services: Services) -> None:
        self._mcp = services.mcp

    @api_operation(query=MCP_QUERY, data="GetMcpServerResponse")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        executor = query_params(req, MCP_QUERY)["executor"]
        respond(resp, await run_sync(self._mcp.get, executor))

    @api_operation(query=MCP_QUERY, body=MCP_BODY, data="string")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        executor = query_params(req, MCP_QUERY)["executor"]
        body = await json_body(req, MCP_BODY)
        respond(resp, await run_sync(self._mcp.replace, executor, body["servers"]))
