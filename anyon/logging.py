"""Process-wide logging: JSON lines (or text for people) tagged with the deployment mode.

Every record carries ``deployment`` (``local``/``cloud``) and ``service`` so that journald and log
shippers can tell the modes apart (the seed's ``deployment=cloud`` tag). Records go to stderr (journald
under systemd) and, when ``paths.log_file`` is set, to that file through a ``WatchedFileHandler``,
which reopens the file after logrotate moves it.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys

from anyon.config.dirs import make_directory
from anyon.config.model import AnyonConfig
from anyon.config.redact import redact_text, url_secrets

SERVICE = "anyon"
_MARK = "_anyon_handler"

# Attributes every LogRecord has; anything else on a record is a structured extra.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "deployment",
    "service",
}


class _Tag(logging.Filter):
    """Adds the fields every record must carry."""

    def __init__(self, deployment: str) -> None:
        super().__init__()
        self.deployment = deployment

    def filter(self, record: logging.LogRecord) -> bool:
        record.deployment = self.deployment
        record.service = SERVICE
        return True


class _Quiet(logging.Filter):
    """Drops uvicorn's noise that says nothing ops can act on.

    * ``ASGI callable returned without completing handshake``: logged at ERROR for every WebSocket the app
      refuses on purpose (foreign Origin, missing token); the refusal is in the access log instead;
    * uvicorn's own WebSocket lines (``"WebSocket /path?query" 403``, ``connection open``/``closed``/
      ``rejected``): they print the query string and say nothing the access log does not;
    * uvicorn's ``color_message`` extra (the message again, with terminal escape codes) is removed, so
      the text format does not print escape codes and JSON lines do not carry the message twice.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and str(record.msg).startswith(_UVICORN_NOISE):
            return False
        record.__dict__.pop("color_message", None)
        return True


#: uvicorn records that are dropped: the refused-handshake ERROR, and its per-WebSocket lines, which
#: carry the raw path and query string (where a stream's credential may be) and repeat the access log.
_UVICORN_NOISE = (
    "ASGI callable returned without completing handshake",
    '%s - "WebSocket ',
    "connection rejected",
    "connection open",
    "connection closed",
)


class _Redacting(logging.Formatter):
    """Wraps a formatter: the finished line (message, extras, traceback) passes through
    :func:`anyon.config.redact.redact_text`, so no database password reaches a log, whatever logged it."""

    def __init__(self, inner: logging.Formatter, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._inner = inner
        # a JSON line escapes some characters: look for each secret as written there too
        escaped = (json.dumps(s)[1:-1] for s in secrets)
        self._secrets = tuple(sorted({*secrets, *escaped}, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self._inner.format(record), self._secrets)


class TextFormatter(logging.Formatter):
    """``time level logger [deployment] message key=value …`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s [%(deployment)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        if extras:
            text += " " + " ".join(f"{k}={v!r}" for k, v in sorted(extras.items()))
        return text


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(deployment)s %(service)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def configure_logging(config: AnyonConfig) -> None:
    """Install anyon's handlers on the root logger; calling it again replaces them (no duplicates).

    The log file's directory is created (0750) when missing, so this may run before
    :func:`anyon.config.dirs.prepare_directories`. Raises ``OSError`` naming the file when
    ``paths.log_file`` cannot be opened.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    inner = TextFormatter() if config.logging.format == "text" else _json_formatter()
    formatter = _Redacting(inner, url_secrets(config.database_url))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.paths.log_file:
        make_directory("paths.log_file", os.path.dirname(config.paths.log_file))
        try:
            handlers.append(logging.handlers.WatchedFileHandler(config.paths.log_file, encoding="utf-8"))
        except OSError as exc:
            message = f"cannot open the log file {config.paths.log_file} (paths.log_file): {exc.strerror}"
            raise OSError(exc.errno, message) from exc
    tag = _Tag(config.deployment.mode)
    quiet = _Quiet()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(quiet)
        handler.addFilter(tag)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(config.logging.level)
    # httpx logs every request at INFO; the PR monitor alone would fill the log with them
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # uvicorn installs its own handlers unless told otherwise; route its records through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
