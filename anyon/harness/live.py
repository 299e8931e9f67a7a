"""A real anyon server on 127.0.0.1 in a background thread, for HTTP/WebSocket/SSE tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from anyon.api.server import bind_socket, build_server
from anyon.config.model import AnyonConfig
from anyon.deployment.base import BaseDeployment
from anyon.deployment.factory import build_deployment


class LiveServer:
    def __init__(self, deployment: BaseDeployment, base_url: str) -> None:
        self.deployment = deployment
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://", 1)
        self.client = httpx.Client(base_url=base_url, timeout=30.0)

    @property
    def services(self) -> Any:
        return self.deployment.services

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.put(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(path, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        """Call a route that must succeed; returns the envelope's ``data``."""
        response = self.client.request(method, path, **kw)
        assert response.status_code < 300, (response.status_code, response.text)
        body = response.json()
        assert body["success"] is True, body
        return body["data"]


@contextmanager
def live_server(config: AnyonConfig) -> Iterator[LiveServer]:
    deployment = build_deployment(config)
    deployment.services.database.migrate()
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = build_server(deployment)
    server.config.install_signal_handlers = False  # type: ignore[attr-defined]

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="anyon-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    live = LiveServer(deployment, f"http://127.0.0.1:{port}")
    try:
        yield live
    finally:
        live.client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
