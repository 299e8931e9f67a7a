"""TOML syntax errors people can act on, and a parse that goes on past them.

``tomllib`` stops at the first error with a parser's words ("Illegal character '\\n'", "at end of
document"). Ops read these at 3 a.m.: each error is turned into what went wrong in their terms
("unterminated string"), the file:line, the line itself and how to fix it. The broken line is then
blanked and the file parsed again, so the other keys of the same file are still checked and one typo
does not hide every other problem.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_AT_END = re.compile(r"\s*\(at end of document\)")
#: A file with more syntax errors than this is not worth reading further (later ones are often echoes).
MAX_SYNTAX_ERRORS = 10
#: Name given to a table whose header could not be parsed; :mod:`anyon.config.layers` skips it.
BROKEN_TABLE = " unreadable table at line "


@dataclass(frozen=True)
class SyntaxProblem:
    line: int | None  # 1-based; None when it cannot be told
    column: int | None
    what: str  # "unterminated string: the closing \" is missing"
    fix: str  # "close the string: host = \"0.0.0.0\""
    text: str  # the offending line, stripped (may be "")


def _unbalanced_quote(line: str) -> str | None:
    """The quote character left open on a single line, if any (comments and escapes respected)."""
    quote: str | None = None
    escaped = False
    for char in line:
        if quote is None:
            if char == "#":
                return None
            if char in "\"'":
                quote = char
            continue
        if escaped:
            escaped = False
        elif char == "\\" and quote == '"':
            escaped = True
        elif char == quote:
            quote = None
    return quote


def _describe(reason: str, line_text: str) -> tuple[str, str]:
    """(what went wrong, how to fix it) in words for people, from tomllib's reason and the line."""
    stripped = line_text.strip()
    key, _, value = stripped.partition("=")
    key, value = key.strip(), value.strip()
    quote = _unbalanced_quote(line_text)
    if quote is not None and (reason.startswith("Illegal character") or reason.startswith("Expected")):
        closed = f"{stripped}{quote}" if stripped else f"key = {quote}text{quote}"
        return f"unterminated string: the closing {quote} is missing", f"close the string: {closed}"
    if reason.startswith("Unterminated string"):
        return 'unterminated multi-line string: the closing """ is missing', 'end it with """'
    if reason.startswith("Unclosed array"):
        return 'unclosed array: a "]" is missing', 'close it: key = ["a", "b"]'
    if reason.startswith("Unclosed inline table"):
        return 'unclosed inline table: a "}" is missing', "close it: key = { a = 1 }"
    if reason.startswith("Expected ']' at the end of a table"):
        name = stripped.strip("[] ") or "section"
        return 'unclosed table header: a "]" is missing', f"write it as [{name}]"
    if reason.startswith("Expected '=' after a key"):
        return 'a key without "= value"', 'write key = value, e.g. host = "127.0.0.1"'
    if reason.startswith("Cannot overwrite a value") or reason.startswith("Cannot declare"):
        return "this key or table is already set earlier in the file", "keep one of the two"
    if reason.startswith("Unescaped '\\'"):
        return "a backslash in a double-quoted string", "double it (\\\\) or use single quotes"
    if reason.startswith("Invalid value") or reason.startswith("Expected newline or end of document"):
        if key and value and value[0] not in "\"'[{":
            return (
                f"the value {value} is not a TOML value (text needs quotes)",
                f'quote it: {key} = "{value}"',
            )
        return "an invalid value", 'strings need quotes (host = "0.0.0.0"), numbers do not (port = 8080)'
    return reason[:1].lower() + reason[1:], "see https://toml.io for the syntax"


def _error_line(lines: list[str]) -> int | None:
    """For errors tomllib places "at end of document": the first line after which the file cannot parse."""
    for count in range(1, len(lines) + 1):
        try:
            tomllib.loads("\n".join(lines[:count]))
        except tomllib.TOMLDecodeError:
            return count
    return None


def parse_toml(text: str) -> tuple[dict[str, object], list[SyntaxProblem]]:
    """The parsed document and every syntax problem; broken lines are left out of the document."""
    lines = text.split("\n")
    problems: list[SyntaxProblem] = []
    while True:
        try:
            return tomllib.loads("\n".join(lines)), problems
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            at = _AT_LINE.search(message)
            reason = _AT_END.sub("", _AT_LINE.sub("", message)).strip()
            line: int | None = int(at.group(1)) if at else _error_line(lines)
            column = int(at.group(2)) if at else None
            line_text = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
            what, fix = _describe(reason, line_text)
            problems.append(SyntaxProblem(line, column, what, fix, line_text.strip()))
            if line is None or not 0 < line <= len(lines) or not lines[line - 1]:
                return {}, problems
            if len(problems) >= MAX_SYNTAX_ERRORS:
                return {}, problems
            # a broken table header becomes a table of its own that is skipped, so that its keys are
            # not taken for keys of the table above it
            broken = lines[line - 1].lstrip().startswith("[")
            lines[line - 1] = f'["{BROKEN_TABLE}{line}"]' if broken else ""
