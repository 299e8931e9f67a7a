"""JSON Patch (RFC 6902) ops and the WebSocket frames every live view of the UI is built on.

The UI keeps a local document per stream (``{tasks:{}}``, ``{execution_processes:{}}``, ``{drafts:{}}``,
``{entries:[]}`` or ``{entries:{}}``) and applies each ``{"JsonPatch":[...]}`` frame to it; the stream ends
with the literal ``{"finished":true}``. All op and frame construction lives here so that the wire text is
produced in exactly one place (spec anyon-api.md §2.0, types.md §15).

Keys are JSON-pointer escaped (``~`` → ``~0``, ``/`` → ``~1``): diff entries are keyed by file paths, which
contain slashes, and a missing escape silently nests the UI's document.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Op = dict[str, Any]
OpName = Literal["add", "replace", "remove"]

FINISHED_FRAME = '{"finished":true}'
"""The terminal frame of a stream; the client closes and does not reconnect."""


class PatchError(ValueError):
    """An op that cannot be applied to a document (bad path, missing member, unknown op)."""


def dumps(value: Any) -> str:
    """Compact JSON with non-ASCII text kept as is: the byte size the UI receives stays minimal."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- JSON pointer --------------------------------------------------------------------------------


def escape(segment: str | int) -> str:
    """Escape one pointer segment: ``~`` first (to ``~0``), then ``/`` (to ``~1``)."""
    return str(segment).replace("~", "~0").replace("/", "~1")


def unescape(segment: str) -> str:
    """Inverse of :func:`escape`: ``~1`` first, then ``~0`` (RFC 6901 §4 order)."""
    return segment.replace("~1", "/").replace("~0", "~")


def pointer(*segments: str | int) -> str:
    """A JSON pointer from raw segments, each escaped: ``pointer("entries", "a/b")`` → ``/entries/a~1b``."""
    return "".join("/" + escape(s) for s in segments)


def split_pointer(path: str) -> list[str]:
    """The unescaped segments of a pointer; ``""`` is the whole document."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {path!r}")
    return [unescape(s) for s in path[1:].split("/")]


# --- op builders ---------------------------------------------------------------------------------


def add(path: str, value: Any) -> Op:
    return {"op": "add", "path": path, "value": value}


def replace(path: str, value: Any) -> Op:
    return {"op": "replace", "path": path, "value": value}


def remove(path: str) -> Op:
    return {"op": "remove", "path": path}


def _upsert(op: OpName, path: str, value: Any) -> Op:
    if op == "add":
        return add(path, value)
    if op == "replace":
        return replace(path, value)
    raise ValueError(f"upsert op must be 'add' or 'replace', not {op!r}")


# --- frames --------------------------------------------------------------------------------------


def patch_frame(ops: Sequence[Op]) -> str:
    """The text of one ``{"JsonPatch":[...]}`` WebSocket frame."""
    return '{"JsonPatch":' + dumps(list(ops)) + "}"


def finished_frame() -> str:
    return FINISHED_FRAME


# --- collection helpers (spec §2.1 to §2.8) ----------------------------------------------------------


def _id_of(record: Mapping[str, Any], what: str) -> str:
    ident = record.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError(f"{what} has no string 'id': cannot build its patch path")
    return ident


def tasks_snapshot_ops(tasks: Mapping[str, Any]) -> list[Op]:
    """``replace /tasks`` with ``{id: TaskWithAttemptStatus}``, even if empty."""
    return [replace("/tasks", dict(tasks))]


def task_upsert_ops(task_json: Mapping[str, Any], *, op: OpName = "replace") -> list[Op]:
    """``add`` (insert) or ``replace`` (update) ``/tasks/<id>`` with a fresh ``TaskWithAttemptStatus``."""
    return [_upsert(op, pointer("tasks", _id_of(task_json, "task")), dict(task_json))]


def task_remove_ops(task_id: str) -> list[Op]:
    return [remove(pointer("tasks", task_id))]


def processes_snapshot_ops(processes: Mapping[str, Any]) -> list[Op]:
    return [replace("/execution_processes", dict(processes))]


def process_ops(process_json: Mapping[str, Any], *, op: OpName = "replace") -> list[Op]:
    """``add``/``replace`` ``/execution_processes/<id>`` with an ``ExecutionProcess``."""
    path = pointer("execution_processes", _id_of(process_json, "execution process"))
    return [_upsert(op, path, dict(process_json))]


def process_remove_ops(process_id: str) -> list[Op]:
    return [remove(pointer("execution_processes", process_id))]


def attempt_remove_ops(attempt_id: str) -> list[Op]:
    """Attempts only ever produce a ``remove`` on the global bus (spec §2.1)."""
    return [remove(pointer("task_attempts", attempt_id))]


def drafts_snapshot_ops(drafts: Mapping[str, Any]) -> list[Op]:
    """Frame 1 of the drafts stream: ``replace /drafts`` with ``{attempt_id: {follow_up, retry}}``."""
    return [replace("/drafts", dict(drafts))]


def draft_ops(attempt_id: str, draft_type: str, draft_json: Mapping[str, Any] | None) -> list[Op]:
    """``replace /drafts/<attempt>/<follow_up|retry>`` with the Draft; ``None`` (deleted retry) → ``null``."""
    if draft_type not in ("follow_up", "retry"):
        raise ValueError(f"draft_type must be 'follow_up' or 'retry', not {draft_type!r}")
    value = None if draft_json is None else dict(draft_json)
    return [replace(pointer("drafts", attempt_id, draft_type), value)]


# --- /entries documents (log and diff streams) ---------------------------------------------------


def stdout_value(text: str) -> dict[str, Any]:
    return {"type": "STDOUT", "content": text}


def stderr_value(text: str) -> dict[str, Any]:
    return {"type": "STDERR", "content": text}


def normalized_entry_value(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "NORMALIZED_ENTRY", "content": dict(entry)}


def diff_value(diff: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "DIFF", "content": dict(diff)}


def entry_add(index: int, value: Any) -> Op:
    """``add /entries/<n>`` on the array document of the log streams."""
    if index < 0:
        raise ValueError(f"entry index must be >= 0, not {index}")
    return add(pointer("entries", index), value)


def entry_replace(index: int, value: Any) -> Op:
    if index < 0:
        raise ValueError(f"entry index must be >= 0, not {index}")
    return replace(pointer("entries", index), value)


def diff_entry_add(file_path: str, diff: Mapping[str, Any]) -> Op:
    """``add /entries/<escaped path>`` with ``{"type":"DIFF","content":Diff}`` (the diff stream's object)."""
    return add(pointer("entries", file_path), diff_value(diff))


def diff_entry_remove(file_path: str) -> Op:
    return remove(pointer("entries", file_path))


def diff_key(diff: Mapping[str, Any]) -> str:
    """The key a Diff is stored under: ``newPath``, or ``oldPath`` when there is no new path."""
    key = diff.get("newPath") or diff.get("oldPath")
    if not isinstance(key, str) or not key:
        raise ValueError("a Diff needs a newPath or an oldPath")
    return key


# --- applying (the client's side; used by tests and by anything that folds a stream) -------------


def apply_ops(document: Any, ops: Sequence[Op]) -> Any:
    """Apply ``add``/``replace``/``remove`` ops the way the UI's RFC 6902 applier does; returns the new doc.

    The input document is not modified. Arrays accept an index or ``-`` (append) for ``add``.
    """
    doc = copy.deepcopy(document)
    for op in ops:
        doc = _apply_one(doc, op)
    return doc


def _apply_one(doc: Any, op: Op) -> Any:
    kind = op.get("op")
    segments = split_pointer(op.get("path", ""))
    if not segments:
        if kind in ("add", "replace"):
            return copy.deepcopy(op["value"])
        raise PatchError(f"cannot {kind} the whole document")
    parent: Any = doc
    for seg in segments[:-1]:
        parent = _child(parent, seg, op)
    last = segments[-1]
    if isinstance(parent, dict):
        if kind == "add":
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            if last not in parent:
                raise PatchError(f"replace of a missing member: {op['path']}")
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if last not in parent:
                raise PatchError(f"remove of a missing member: {op['path']}")
            del parent[last]
        else:
            raise PatchError(f"unsupported op {kind!r}")
    elif isinstance(parent, list):
        if kind == "add" and last == "-":
            parent.append(copy.deepcopy(op["value"]))
            return doc
        index = _index(last, op)
        if kind == "add":
            if index > len(parent):
                raise PatchError(f"add beyond the end of an array: {op['path']}")
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind in ("replace", "remove"):
            if index >= len(parent):
                raise PatchError(f"{kind} of a missing array element: {op['path']}")
            if kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            else:
                del parent[index]
        else:
            raise PatchError(f"unsupported op {kind!r}")
    else:
        raise PatchError(f"path goes through a scalar: {op['path']}")
    return doc


def _index(segment: str, op: Op) -> int:
    if not segment.isdigit():
        raise PatchError(f"array index is not a number: {op['path']}")
    return int(segment)


def _child(parent: Any, seg: str, op: Op) -> Any:
    if isinstance(parent, dict):
        if seg not in parent:
            raise PatchError(f"path does not exist: {op['path']}")
        return parent[seg]
    if isinstance(parent, list):
        index = _index(seg, op)
        if index >= len(parent):
            raise PatchError(f"path does not exist: {op['path']}")
        return parent[index]
    raise PatchError(f"path goes through a scalar: {op['path']}")
