"""The one place that hides credentials in URLs and in text before anything prints them.

Database URLs arrive in every shape people write: ``postgresql://user:pw@host/db``, a password holding an
unencoded ``@``, ``/``, ``:`` or ``?``, no user (``postgresql://:pw@host/db``), the password as a query
parameter (``?password=pw``), or a libpq keyword string (``host=h password=pw``). ``urlsplit`` misreads
several of these (an unencoded ``/`` ends its netloc early, so its ``password`` is a fragment of the real
one), so nothing here relies on it: the user-info is everything between ``://`` and the **last** ``@``
before the query, which over-redacts an odd URL rather than under-redacts a real one.

:func:`redact_url` is for a value known to be a URL; :func:`redact_text` is for free text (an error
message, a log line) and also replaces the literal secrets it is given (see :func:`url_secrets`), in case
a driver echoes a password outside any URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"

# names of query / keyword parameters whose value is a credential
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:password|passwd|pass|pwd|secret|token|sslkey|api[_-]?key|credentials?)"
# a query value runs to the next "&name=" (an "&" inside a password does not end it) or "#"
_QUERY_SECRET = re.compile(
    rf"(?i)([?&;]{_SECRET_NAME}=)(?:[^&#]|&(?![A-Za-z0-9_.-]+=))*",
)
# libpq keyword/value strings: password=secret, password='a b', password = "x"
_KEYWORD_SECRET = re.compile(
    rf"(?i)(\b{_SECRET_NAME}\s*=\s*)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;&]+)",
)
# a URL in free text: a scheme, "://", then anything up to white space or a closing quote/bracket
_HOST_PORT_PATH = re.compile(r"^[^:/?]*(?::\d*)?[/?]")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}]+")


def _split_userinfo(rest: str) -> tuple[str, str] | None:
    """``(userinfo, after)`` of what follows ``scheme://``, or None when it holds no ``@``.

    The user-info ends at the last ``@`` before the query (or, when there is no query, the last ``@``
    of all): a password may hold ``@``, ``/`` and ``:`` unencoded; a database name never holds ``@``.
    """
    query = rest.find("?")
    head = rest if query < 0 else rest[:query]
    at = head.rfind("@")
    if at < 0:
        # a "?" in the password itself: the last "@" of all, unless what precedes it is host:port/path
        at = rest.rfind("@")
        if at < 0 or _HOST_PORT_PATH.match(rest[:at]):
            return None
    return rest[:at], rest[at + 1 :]


def redact_url(url: str) -> str:
    """``url`` with its password (in the user-info and in query parameters) replaced by ``***``.

    The user name stays, so people can tell which account a message is about. A value without ``://``
    is treated as a libpq keyword string (``password=...`` replaced).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _KEYWORD_SECRET.sub(rf"\1{MASK}", url)
    split = _split_userinfo(rest)
    if split is not None:
        userinfo, after = split
        user, colon, _password = userinfo.partition(":")
        if colon:
            rest = f"{user}:{MASK}@{after}"
    return scheme + sep + _QUERY_SECRET.sub(rf"\1{MASK}", rest)


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The literal secrets in ``url``: its password as written and decoded, and secret query values."""
    if not url:
        return ()
    found: list[str] = []
    _scheme, sep, rest = url.partition("://")
    if sep:
        split = _split_userinfo(rest)
        if split is not None:
            _user, colon, password = split[0].partition(":")
            if colon and password:
                found += [password, unquote(password), quote(unquote(password), safe="")]
        for match in _QUERY_SECRET.finditer(rest):
            value = match.group(0)[len(match.group(1)) :]
            if value:
                found += [value, unquote(value)]
    else:
        for match in _KEYWORD_SECRET.finditer(url):
            found.append(match.group(2).strip("'\""))
    # longest first, so a secret that contains another is replaced whole
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's password, every ``password=`` value and each of ``secrets`` masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _KEYWORD_SECRET.sub(rf"\1{MASK}", text)
