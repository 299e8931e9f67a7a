"""The browser boundary: which pages may talk to this server at all, token or not.

A server on 127.0.0.1 without a token is still reachable by every web page the user opens: a page can
send "simple" cross-origin requests (a ``text/plain`` POST needs no preflight), open WebSockets (they
are not covered by CORS), and, through DNS rebinding, make its own name resolve to 127.0.0.1 so that
its requests count as same-origin. Any of these could rewrite an agent profile and start an attempt:
a shell command on the user's machine. So before anything else looks at a request (HTTP, SSE or a
WebSocket upgrade), this middleware refuses it unless

* its ``Host`` is a loopback name (``localhost``, 127.0.0.0/8, ``[::1]``), the listen address, or one of
  ``server.public_hosts`` — a rebinding page's ``Host`` is its own name;
* its ``Origin``, when present, is the server's own (scheme, host and port of the ``Host`` header) or one
  of ``server.cors_allowed_origins``;
* a state-changing request (POST, PUT, PATCH, DELETE) that carries a body says ``application/json``
  (the two routes that legitimately take something else are named in :data:`OTHER_BODY_TYPES`).

Refusals are 403 (415 for the content type, the status the contract gives a wrong content type) in the
usual envelope; the request never reaches a resource, so nothing changes. The same class resolves the
client address once per request (``X-Forwarded-For`` only from ``server.trusted_proxies``) for the
failed-token limit.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

import falcon
import falcon.asgi

from anyon.api.envelope import ApiError, soft_error
from anyon.config.hosts import (
    DEFAULT_PORTS,
    HostPort,
    IpNetwork,
    Origin,
    is_loopback_host,
    parse_host_port,
    parse_network,
    parse_origin,
)

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"
#: (method, path pattern) -> the one non-JSON body type that route takes. The login form posts
#: urlencoded (``GET /login`` works without scripts); the contract's image uploads are multipart.
OTHER_BODY_TYPES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/api/auth/token$"), "application/x-www-form-urlencoded"),
    ("POST", re.compile(r"^/api/images/upload$"), "multipart/form-data"),
    ("POST", re.compile(r"^/api/images/task/[^/]+/upload$"), "multipart/form-data"),
)
CLIENT_CONTEXT = "client_address"
_MAX_SHOWN = 80


def _shown(value: str) -> str:
    """A header value safe to put in a log line or a message: printable, bounded."""
    cleaned = "".join(c if c.isprintable() else "?" for c in value[:_MAX_SHOWN])
    return cleaned + ("…" if len(value) > _MAX_SHOWN else "")


class HostAllowList:
    """The ``Host`` header values this server answers to."""

    def __init__(self, listen_host: str, public_hosts: Iterable[str]) -> None:
        listen = parse_host_port(listen_host)
        self._names = {listen.host} if listen is not None else set()
        self._any_port: set[str] = set()
        self._with_port: set[tuple[str, int]] = set()
        for entry in public_hosts:
            parsed = parse_host_port(entry)
            if parsed is None:  # validated when the settings were loaded; never widen on a bad entry
                continue
            if parsed.port is None:
                self._any_port.add(parsed.host)
            else:
                self._with_port.add((parsed.host, parsed.port))

    def allows(self, host: HostPort) -> bool:
        if is_loopback_host(host.host) or host.host in self._names or host.host in self._any_port:
            return True
        return host.port is not None and (host.host, host.port) in self._with_port


class OriginAllowList:
    """``server.cors_allowed_origins``, compared as (scheme, host, port): ``:443`` or a ``/`` never differ."""

    def __init__(self, origins: Iterable[str]) -> None:
        self._keys = frozenset(_key(o) for o in map(parse_origin, origins) if o is not None)

    def __contains__(self, origin: object) -> bool:
        if isinstance(origin, str):
            origin = parse_origin(origin)
        return isinstance(origin, Origin) and _key(origin) in self._keys


def same_origin(origin: Origin, host: HostPort) -> bool:
    """The Origin names the host and port the request was sent to.

    A ``Host`` without a port was sent to the default port of the page's scheme; behind a TLS proxy the
    server itself speaks plain HTTP, so the scheme comes from the Origin, not from the socket.
    """
    if origin.host != host.host:
        return False
    if host.port is None:
        return origin.port == DEFAULT_PORTS[origin.scheme]
    return origin.port == host.port


def media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


class TrustedProxies:
    """Who the client is: the peer, or what a trusted proxy says in ``X-Forwarded-For``.

    Walking the header from the right, every hop a trusted proxy appended is skipped; the first address
    not in ``server.trusted_proxies`` is the client. Entries further left were written by the client
    itself and are never believed, so a spoofed header cannot move a guesser to a fresh bucket.
    """

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: list[IpNetwork] = [n for n in map(parse_network, networks) if n is not None]

    def _trusted(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        client = peer or "unknown"
        if not forwarded_for or not self._trusted(client):
            return client
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            client = hop[:64]
            if not self._trusted(hop):
                break
        return client


class BoundaryMiddleware:
    """Refuses foreign ``Host``/``Origin`` and non-JSON state-changing bodies; see the module docstring."""

    def __init__(
        self,
        *,
        listen_host: str,
        public_hosts: Iterable[str],
        allowed_origins: Iterable[str],
        trusted_proxies: Iterable[str],
    ) -> None:
        self._hosts = HostAllowList(listen_host, public_hosts)
        self._origins = OriginAllowList(allowed_origins)
        self._proxies = TrustedProxies(trusted_proxies)

    def _refusal(self, req: falcon.asgi.Request, *, websocket: bool) -> tuple[int, str] | None:
        """(status, message) when the request must be refused; None when it may go on."""
        raw_host = req.get_header("Host")
        host = parse_host_port(raw_host) if raw_host else None
        if host is None or not self._hosts.allows(host):
            shown = _shown(raw_host) if raw_host else "(none)"
            return 403, (
                f"Forbidden: this server does not answer to Host {shown}; use localhost or 127.0.0.1, "
                "or add the name to server.public_hosts"
            )
        origin_text = req.get_header("Origin")
        if origin_text is not None:
            origin = parse_origin(origin_text)
            if origin is None or not (same_origin(origin, host) or origin in self._origins):
                return 403, (
                    f"Forbidden: requests from origin {_shown(origin_text)} are not allowed; "
                    "list it in server.cors_allowed_origins to allow it"
                )
        if not websocket and req.method in STATE_CHANGING:
            return self._body_refusal(req)
        return None

    def _body_refusal(self, req: falcon.asgi.Request) -> tuple[int, str] | None:
        declared = media_type(req.content_type)
        if declared == JSON:
            return None
        for method, pattern, other in OTHER_BODY_TYPES:
            if req.method == method and declared == other and pattern.match(req.path):
                return None
        has_body = bool(req.content_length) or req.get_header("Transfer-Encoding") is not None
        if declared is None and not has_body:
            return None  # a body-less call such as POST .../stop: nothing for a page to smuggle
        return 415, (
            f"UnsupportedMediaType: {req.method} {req.path} takes a body of type {JSON}, "
            f"found {_shown(declared) if declared else 'a body without Content-Type'}"
        )

    def _remember_client(self, req: falcon.asgi.Request) -> None:
        setattr(
            req.context,
            CLIENT_CONTEXT,
            self._proxies.client(req.remote_addr, req.get_header("X-Forwarded-For")),
        )

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self._remember_client(req)
        refusal = self._refusal(req, websocket=False)
        if refusal is None:
            return
        status, message = refusal
        log.warning("refused %s %s from %s: %s", req.method, req.path, client_address(req), message)
        resp.status = status
        resp.media = soft_error(message)
        resp.complete = True

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        self._remember_client(req)
        refusal = self._refusal(req, websocket=True)
        if refusal is None:
            return
        status, message = refusal
        log.warning("refused a WebSocket to %s from %s: %s", req.path, client_address(req), message)
        raise ApiError(status, message)  # answered as an HTTP refusal of the handshake (app.py)


def _key(origin: Origin) -> tuple[str, str, int]:
    return origin.scheme, origin.host, origin.port


def client_address(req: falcon.asgi.Request) -> str:
    """The client as :class:`TrustedProxies` resolved it (the peer address when no proxy is trusted)."""
    resolved = getattr(req.context, CLIENT_CONTEXT, None)
    return resolved if isinstance(resolved, str) else (req.remote_addr or "unknown")
