"""Wire text of patches and frames, pointer escaping, and the reference applier."""

from __future__ import annotations

import json

import pytest

from anyon.services.logs import jsonpatch as jp


def test_escape_order_tilde_before_slash() -> None:
    assert jp.escape("a/b") == "a~1b"
    assert jp.escape("a~b") == "a~0b"
    # "~1" literally in a name must survive the round trip: ~ is escaped first
    assert jp.escape("x~1/y") == "x~01~1y"
    assert jp.unescape(jp.escape("x~1/y")) == "x~1/y"
    assert jp.split_pointer(jp.pointer("entries", "src/~tmp/a~1.txt")) == ["entries", "src/~tmp/a~1.txt"]


def test_frames_are_exact_compact_text() -> None:
    ops = [jp.add("/entries/0", jp.stdout_value("héllo\n"))]
    assert (
        jp.patch_frame(ops)
        == '{"JsonPatch":[{"op":"add","path":"/entries/0","value":{"type":"STDOUT","content":"héllo\\n"}}]}'
    )
    assert jp.finished_frame() == '{"finished":true}'
    assert json.loads(jp.patch_frame([])) == {"JsonPatch": []}


def test_collection_paths() -> None:
    task = {"id": "t1", "project_id": "p", "title": "x"}
    assert jp.task_upsert_ops(task) == [{"op": "replace", "path": "/tasks/t1", "value": task}]
    assert jp.task_upsert_ops(task, op="add")[0]["op"] == "add"
    assert jp.task_remove_ops("t1") == [{"op": "remove", "path": "/tasks/t1"}]
    assert jp.tasks_snapshot_ops({}) == [{"op": "replace", "path": "/tasks", "value": {}}]
    assert jp.process_ops({"id": "e1"})[0]["path"] == "/execution_processes/e1"
    assert jp.process_remove_ops("e1")[0] == {"op": "remove", "path": "/execution_processes/e1"}
    assert jp.attempt_remove_ops("a1")[0]["path"] == "/task_attempts/a1"
    assert jp.draft_ops("a1", "retry", None) == [{"op": "replace", "path": "/drafts/a1/retry", "value": None}]
    assert jp.draft_ops("a1", "follow_up", {"prompt": ""})[0]["path"] == "/drafts/a1/follow_up"
    assert jp.entry_add(3, 1) == {"op": "add", "path": "/entries/3", "value": 1}
    with pytest.raises(ValueError, match="draft_type"):
        jp.draft_ops("a1", "other", None)
    with pytest.raises(ValueError, match="id"):
        jp.task_upsert_ops({"title": "no id"})
    with pytest.raises(ValueError):
        jp.entry_add(-1, None)


def test_diff_entries_escape_file_paths_and_apply() -> None:
    diff = {"change": "modified", "oldPath": "src/a~b/c.py", "newPath": "src/a~b/c.py", "additions": 1}
    op = jp.diff_entry_add(jp.diff_key(diff), diff)
    assert op["path"] == "/entries/src~1a~0b~1c.py"
    assert op["value"] == {"type": "DIFF", "content": diff}
    doc = jp.apply_ops({"entries": {}}, [op])
    assert doc == {"entries": {"src/a~b/c.py": {"type": "DIFF", "content": diff}}}
    doc = jp.apply_ops(doc, [jp.diff_entry_remove("src/a~b/c.py")])
    assert doc == {"entries": {}}
    assert jp.diff_key({"oldPath": "gone.txt", "newPath": None}) == "gone.txt"


def test_apply_ops_arrays_and_errors() -> None:
    doc = {"entries": []}
    doc = jp.apply_ops(doc, [jp.entry_add(0, "a"), jp.entry_add(1, "b"), jp.entry_replace(0, "A")])
    assert doc == {"entries": ["A", "b"]}
    with pytest.raises(jp.PatchError):
        jp.apply_ops(doc, [jp.entry_add(5, "x")])
    with pytest.raises(jp.PatchError):
        jp.apply_ops({"tasks": {}}, [jp.replace("/tasks/nope", 1)])
    with pytest.raises(jp.PatchError):
        jp.apply_ops({}, [jp.add("/a/b", 1)])
    original = {"tasks": {}}
    jp.apply_ops(original, jp.task_upsert_ops({"id": "t"}, op="add"))
    assert original == {"tasks": {}}  # never modified in place
