"""``anyon serve``: migrations, the deployment, and uvicorn on the configured listener.

Every flag is a setting (uvicorn's rule): ``--host``/``--port`` override ``server.host``/``server.port``
exactly as ``HOST``/``PORT`` would, and go through the same validation.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from anyon.commands.common import add_settings_arguments, load_or_exit

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
    from anyon.deployment.factory import build_deployment
    from anyon.logging import configure_logging

    try:
        configure_logging(config)
        prepare_directories(config)
        deployment = build_deployment(config)
        version = deployment.services.database.migrate()
        log.info("database ready", extra={"schema_version": version})
        sock = bind_socket(config.server.host, config.server.port)
    except Exception as exc:
        log.error("start-up failed: %s", exc)
        print(f"anyon serve: start-up failed: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    _write_port_file(config.paths.temp_dir, port)
    log.info("listening on http://%s:%d", shown, port, extra={"url": f"http://{shown}:{port}"})
    server = build_server(deployment)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
    return 0


def _write_port_file(temp_dir: str, port: int) -> None:
    """The chosen port as text in ``<temp_dir>/anyon.port`` (spec §0.1), for tools that need it."""
    try:
        path = Path(temp_dir) / "anyon.port"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(port))
    except OSError as exc:
        log.warning("could not write the port file: %s", exc)
