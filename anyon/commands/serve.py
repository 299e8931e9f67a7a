"""``anyon serve``: migrations, the deployment, and uvicorn on the configured listener.

Every flag is a setting (uvicorn's rule): ``--host``/``--port`` override ``server.host``/``server.port``
exactly as ``HOST``/``PORT`` would, and go through the same validation.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyon.commands.common import add_settings_arguments, load_or_exit

if TYPE_CHECKING:
    from anyon.config.model import AnyonConfig
    from anyon.observability.sd_notify import SystemdNotifier

log = logging.getLogger("anyon.serve")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the server (migrations first)")
    add_settings_arguments(parser)
    parser.add_argument("--host", help="listen address (setting server.host)")
    parser.add_argument("--port", help="listen port, 0 = random free port (setting server.port)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    if args.host is not None:
        environ["ANYON_SERVER__HOST"] = args.host
        environ.pop("HOST", None)
    if args.port is not None:
        environ["ANYON_SERVER__PORT"] = str(args.port)
        for name in ("PORT", "BACKEND_PORT"):
            environ.pop(name, None)
    config = load_or_exit(args, environ)
    if config is None:
        return 1

    from anyon.api.server import bind_socket, build_server
    from anyon.config.dirs import prepare_directories
    from anyon.config.redact import redact_text, url_secrets
    from anyon.deployment.factory import build_deployment
    from anyon.logging import configure_logging
    from anyon.observability.sd_notify import SystemdNotifier

    notifier = SystemdNotifier()
    try:
        configure_logging(config)
        notifier.status("preparing directories")
        prepare_directories(config)
        # before the deployment is built: building it would stop at the first problem (a missing
        # docker.user, an unreadable token) where the checks name every one with its fix
        if not _startup_checks(config, notifier, environ):
            return 1
        deployment = build_deployment(config)
        notifier.status("migrating the database")
        version = deployment.services.database.migrate()
        log.info("database ready", extra={"schema_version": version})
        server = build_server(deployment)
        notifier.status("binding the listener")
        sock = bind_socket(config.server.host, config.server.port)
    except Exception as exc:
        reason = redact_text(str(exc), url_secrets(config.database_url))
        log.error("start-up failed: %s", reason)
        print(f"anyon serve: start-up failed: {reason}", file=sys.stderr)
        notifier.status(f"start-up failed: {reason}")
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    _write_port_file(config.paths.temp_dir, port)
    log.info("listening on http://%s:%d", shown, port, extra={"url": f"http://{shown}:{port}"})
    try:
        started = asyncio.run(_serve(server, sock, notifier, f"http://{shown}:{port}"))
    finally:
        sock.close()
    return 0 if started else 1


def _startup_checks(config: AnyonConfig, notifier: SystemdNotifier, environ: dict[str, str]) -> bool:
    """Refuse to start on a machine that cannot serve the settings, naming every failed check with its
    fix (cloud: all of :mod:`anyon.checks`; local: the API token, the one a local listener can fail)."""
    from anyon.checks import check_api_token, run_checks

    notifier.status("checking the environment (Docker, image, directories, disk, database, token)")
    results = run_checks(config, environ=environ) if config.is_cloud else [check_api_token(config, environ)]
    for result in results:
        if result.status == "warn":
            log.warning("check %s: %s (fix: %s)", result.name, result.message, result.hint)
    failed = [r for r in results if r.status == "fail"]
    if not failed:
        return True
    summary = "; ".join(f"{r.name}: {r.message} (fix: {r.hint})" for r in failed)
    log.error("start-up checks failed (%d): %s", len(failed), summary)
    lines = "\n".join(f"  - {r.name}: {r.message}\n    fix: {r.hint}" for r in failed)
    count = f"{len(failed)} start-up check{'s' if len(failed) != 1 else ''} failed"
    print(
        f"anyon serve: this machine cannot serve the {config.deployment.mode} settings ({count}):\n{lines}",
        file=sys.stderr,
    )
    notifier.status(f"start-up checks failed: {summary}")
    return False


async def _serve(server: Any, sock: socket.socket, notifier: SystemdNotifier, url: str) -> bool:
    """Serve until shutdown; READY=1 once uvicorn has started (lifespan done), STOPPING=1 when it stops."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    started = bool(server.started)
    if started:
        notifier.ready(f"serving on {url}")
        while not server.should_exit and not task.done():
            await asyncio.sleep(0.1)
        notifier.stopping()
    await task
    return started


def _write_port_file(temp_dir: str, port: int) -> None:
    """The chosen port as text in ``<temp_dir>/anyon.port`` (spec §0.1), for tools that need it."""
    try:
        path = Path(temp_dir) / "anyon.port"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(port))
    except OSError as exc:
        log.warning("could not write the port file: %s", exc)
