"""The one Engine API client a cloud runner shares, and the few calls that need nothing but an Engine.

**One Engine API client** (docker-py, thread-safe connection pool) is shared by every call; its blocking
calls run in a pool of worker threads of its own, so they never starve the event loop's default
executor. Exec output streams over an asyncio connection (:mod:`anyon.services.runners.engine_stream`).
A connection failure becomes :class:`DockerUnavailable` (the API answers 503), an API refusal stays a
docker-py ``APIError`` for the caller to name. A swarm node's Engine is a subclass that connects over TLS
(:class:`~anyon.services.runners.swarm_node.NodeClient`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners.base import RunnerError, RunnerUnavailable
from anyon.services.runners.engine_stream import read_frame, start_exec

BUILD_HINT = "build it with `bash scripts/build-test-image.sh` (tests) or from deploy/image/Dockerfile"
#: Output a helper command may print that is kept (helpers print a few lines).
HELPER_OUTPUT_LIMIT = 4096


class DockerUnavailable(RunnerUnavailable):
    """The Docker Engine does not answer."""


class ImageMissing(RunnerError):
    """The runner image is not present on the Docker host."""


class EngineClient:
    """A docker-py ``APIClient`` made on first use, its worker threads, and exec streams over asyncio."""

    #: TLS for a ``tcp://`` engine (a swarm node's, see swarm_node.py); ``None``: unix socket or plain tcp
    tls: ssl.SSLContext | None = None

    def __init__(self, settings: DockerSettings, *, client: Any | None = None) -> None:
        self.settings = settings
        self._client = client
        self._client_lock = threading.Lock()
        self._closed = False
        # docker-py calls block; a pool of our own keeps them from starving the loop's default executor
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="anyon-docker")

    @property
    def api(self) -> Any:
        """The one docker-py ``APIClient``; created on first use so a stopped daemon never blocks start-up."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import docker  # lazy: local mode never imports docker

                    try:
                        self._client = self.make_client()
                    except docker.errors.DockerException as exc:
                        raise self.unavailable(exc) from exc
        return self._client

    def make_client(self) -> Any:
        """The docker-py ``APIClient`` (a swarm node's engine makes a TLS one)."""
        import docker

        return docker.APIClient(base_url=self.settings.host, version="auto", timeout=60)

    async def start_exec(self, exec_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await start_exec(self.settings.host, self.api.api_version, exec_id, self.tls)

    def unavailable(self, exc: BaseException) -> DockerUnavailable:
        return DockerUnavailable(
            f"the Docker Engine at {self.settings.host} does not answer ({exc}); start it "
            "(e.g. `systemctl start docker`) or fix docker.host in the settings"
        )

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking docker-py call in a worker thread, translating connection failures."""
        import docker
        import requests

        def call() -> Any:
            return fn(*args, **kwargs)

        try:
            return await self.in_thread(call)
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            if isinstance(exc, docker.errors.APIError):
                raise
            raise self.unavailable(exc) from exc

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def ping(self) -> None:
        """Raise :class:`DockerUnavailable` unless the daemon answers."""
        try:
            await self.call(lambda: self.api.ping())
        except DockerUnavailable:
            raise
        except Exception as exc:
            raise self.unavailable(exc) from exc

    async def check_image(self) -> None:
        """Raise :class:`ImageMissing` (naming the image and how to build it) unless it is present."""
        import docker

        try:
            await self.call(lambda: self.api.inspect_image(self.settings.image))
        except docker.errors.ImageNotFound as exc:
            raise self.image_missing() from exc

    def image_missing(self) -> ImageMissing:
        return ImageMissing(
            f"the runner image {self.settings.image!r} is not on the Docker host; {BUILD_HINT}"
        )

    async def close(self) -> None:
        """Close the client and the worker threads (once); containers keep running."""
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            await self.in_thread(self._client.close)
        self._executor.shutdown(wait=False)

    # --- calls on a container by id -------------------------------------------------------------

    async def run_quiet(self, container_id: str, argv: list[str], timeout: float) -> bytes:
        """Run a short helper command in the container and return its output (stdout and stderr)."""
        import docker

        try:
            created = await self.call(lambda: self.api.exec_create(container_id, argv))
        except docker.errors.APIError as exc:
            raise RunnerError(str(exc.explanation)) from exc
        reader, writer = await self.start_exec(str(created["Id"]))

        async def drain() -> bytes:
            out = b""
            while (frame := await read_frame(reader)) is not None:
                if len(out) < HELPER_OUTPUT_LIMIT:  # helpers print a few lines; never keep more
                    out += frame[1][: HELPER_OUTPUT_LIMIT - len(out)]
            return out

        try:
            return await asyncio.wait_for(drain(), timeout)
        except TimeoutError as exc:
            raise RunnerError(f"helper command timed out after {timeout:.0f}s") from exc
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def kill_container(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.call(lambda: self.api.kill(container_id))

    async def remove_ids(self, ids: list[str]) -> None:
        import docker

        for container_id in ids:
            with contextlib.suppress(docker.errors.NotFound):
                await self.call(lambda cid=container_id: self.api.remove_container(cid, force=True, v=True))

    async def oom_flagged(self, container_id: str) -> bool:
        """The container's own OOMKilled flag (its init was killed), when the counters say nothing."""
        try:
            state = await self.call(lambda: self.api.inspect_container(container_id))
        except Exception:  # a vanished container was not OOM-killed as far as anyone can tell
            return False
        return bool(state.get("State", {}).get("OOMKilled"))
