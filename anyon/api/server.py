"""Running the ASGI app under uvicorn on a socket we bind ourselves.

Binding first lets port 0 mean "a random free port" (spec §0.1) and tells us the real port before
uvicorn starts, so it can be logged and written to ``<temp_dir>/anyon.port``.
"""

from __future__ import annotations

import socket

import uvicorn

from anyon.api.app import create_app
from anyon.deployment.base import BaseDeployment


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it keep-alive responses wait ~40 ms on the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class AnyonServer(uvicorn.Server):
    """uvicorn, telling the deployment when shutdown begins.

    uvicorn waits for open connections before the lifespan shutdown; endless responses (SSE) would hold
    it for the whole graceful timeout, so they watch ``services.stopping`` and end themselves.
    """

    def __init__(self, config: uvicorn.Config, deployment: BaseDeployment) -> None:
        super().__init__(config)
        self._deployment = deployment

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._deployment.services.stopping.set()
        await super().shutdown(sockets=sockets)


def build_server(deployment: BaseDeployment, *, log_config: dict[str, object] | None = None) -> AnyonServer:
    config = deployment.config
    uv_config = uvicorn.Config(
        create_app(deployment),
        lifespan="on",
        log_config=log_config,
        access_log=False,
        # the client address is the peer's; X-Forwarded-* is read by the app, and only from
        # server.trusted_proxies (uvicorn would otherwise believe any local process that sends them)
        proxy_headers=False,
        timeout_graceful_shutdown=int(config.server.shutdown_timeout_seconds),
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        # log and patch frames are small and many: compressing each costs more CPU than it saves on loopback
        # or a LAN, and fan-out to many clients multiplies it
        ws_per_message_deflate=False,
    )
    return AnyonServer(uv_config, deployment)
