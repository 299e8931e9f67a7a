"""Host names, ``host:port`` pairs, origins and proxy networks, parsed one way for settings and requests.

The settings (``server.public_hosts``, ``server.trusted_proxies``, ``server.cors_allowed_origins``) and the
HTTP boundary that enforces them must agree on what ``[::1]:8080`` or ``https://board.example.com`` means;
if each side parsed for itself, a value the validator accepts could match nothing at run time, or a
request could slip through a difference between the two readings.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
DEFAULT_PORTS = {"http": 80, "https": 443}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HostPort:
    """A host (lower case, no trailing dot, IPv6 without brackets) and an optional port."""

    host: str
    port: int | None = None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


@lru_cache(maxsize=256)  # a server sees a handful of distinct Host values; results are immutable
def parse_host_port(text: str) -> HostPort | None:
    """``name[:port]``, ``1.2.3.4[:port]``, ``[::1][:port]`` or a bare IPv6 address; None if malformed.

    Used for ``Host`` headers too, so it refuses anything a browser would not send: spaces, user info,
    paths, empty ports, ports out of range.
    """
    text = text.strip().lower()
    if not text or any(c.isspace() or c in "/\\@?#" for c in text):
        return None
    port_text: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
        try:
            if ipaddress.ip_address(host).version != 6:
                return None
        except ValueError:
            return None
    elif text.count(":") > 1:  # a bare IPv6 address (only valid without a port)
        host = text
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port_text_raw = text.partition(":")
        port_text = port_text_raw if sep else None
    if host.endswith("."):  # the fully qualified form of the same name
        host = host[:-1]
    if not _valid_host(host):
        return None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            return None
        port = int(port_text)
    return HostPort(host, port)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ::1 (the names a browser resolves to this machine)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """A host as a setting writes it (any case, a trailing dot, ``[::1]``) names this machine.

    :func:`is_loopback_host` takes a host already normalised by :func:`parse_host_port`.
    """
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Origin:
    """A browser origin: scheme, host and the port it connects to (the scheme's default when not written)."""

    scheme: str
    host: str
    port: int
    explicit_port: bool

    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"


@lru_cache(maxsize=256)
def parse_origin(text: str) -> Origin | None:
    """``https://board.example.com[:port]`` (a trailing ``/`` allowed); None for anything else (``null``)."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if "@" in parts.netloc:
        return None
    hp = parse_host_port(parts.netloc)
    if hp is None:
        return None
    port = hp.port if hp.port is not None else DEFAULT_PORTS[scheme]
    return Origin(scheme, hp.host, port, hp.port is not None)


def parse_network(text: str) -> IpNetwork | None:
    """An IP address or a CIDR block (``10.0.0.0/8``, ``::1``); None if malformed."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
