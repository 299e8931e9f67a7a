"""Images through the real server: upload, dedupe, serve, link, delete, and the agent's copy in its
worktree — with the attacker's cases (oversized, disguised types, path tricks, a planted symlink)."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import (
    branch_files,
    make_project,
    use_fake_agent,
    wait_processes,
    wait_task_status,
)

LIMIT = 64 * 1024


def png(seed: int = 0, width: int = 4) -> bytes:
    """A real, tiny PNG (so it is an image by its bytes, whatever it is called)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([seed % 256, 0, 0]) * width for _ in range(width))
    header = struct.pack(">IIBBBBB", width, width, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    config = make_config(tmp_path, images={"max_bytes": LIMIT}, notifications={"desktop": False})
    with live_server(config) as live:
        use_fake_agent(live)
        yield live


def images_dir(server: LiveServer) -> Path:
    return Path(server.services.config.paths.data_dir) / "images"


def stored_files(server: LiveServer) -> list[str]:
    folder = images_dir(server)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def upload(
    server: LiveServer,
    data: bytes,
    name: str = "cat.png",
    ctype: str = "image/png",
    path: str = "/api/images/upload",
) -> Any:
    return server.post(path, files={"image": (name, data, ctype)})


def test_upload_round_trips_dedupes_and_serves_safely(server: LiveServer) -> None:
    data = png(1)
    first = upload(server, data).json()
    assert first["success"] is True, first
    image = first["data"]
    digest = hashlib.sha256(data).hexdigest()
    assert image["hash"] == digest and image["size_bytes"] == len(data) and image["mime_type"] == "image/png"
    assert image["file_path"] == f".vibe-images/{digest}.png" and image["original_name"] == "cat.png"
    served = server.get(f"/api/images/{image['id']}/file")
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    assert "default-src 'none'" in served.headers["content-security-policy"]
    # the same bytes under another name and declared type: one row, one file
    again = upload(server, data, name="other.gif", ctype="image/gif").json()["data"]
    assert again["id"] == image["id"] and stored_files(server) == [f"{digest}.png"]


@pytest.mark.parametrize(
    ("name", "data", "ctype"),
    [
        ("evil.png", b"<html><script>alert(document.domain)</script></html>", "image/png"),
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
        ),
        ("notes.png", b"just some text that claims to be a picture", "image/png"),
        ("page.html", b"<!doctype html><p>hi</p>", "text/html"),
        ("empty.png", b"", "image/png"),
    ],
)
def test_content_that_is_not_a_raster_image_is_refused(
    server: LiveServer, name: str, data: bytes, ctype: str
) -> None:
    response = upload(server, data, name=name, ctype=ctype)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["message"].startswith("ImageError")
    assert stored_files(server) == []


def test_oversized_uploads_are_refused_and_nothing_is_kept(server: LiveServer) -> None:
    big = png(2) + b"\x00" * (LIMIT + 1)
    response = upload(server, big)
    assert response.status_code == 413 and response.json()["success"] is False

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="image"; filename="a.png"\r\n'
        yield b"Content-Type: image/png\r\n\r\n" + png(2)
        for _ in range(LIMIT // 4096 + 2):
            yield b"\x00" * 4096
        yield b"\r\n--xyz--\r\n"

    response = server.post(
        "/api/images/upload", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert response.status_code == 413, response.text
    assert stored_files(server) == []


def test_bad_forms_and_types(server: LiveServer) -> None:
    no_field = server.post("/api/images/upload", files={"picture": ("a.png", png(3), "image/png")})
    assert no_field.status_code == 400 and "image" in no_field.json()["message"]
    garbled = server.post(
        "/api/images/upload", content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=q"}
    )
    assert garbled.status_code == 400 and garbled.json()["success"] is False
    not_multipart = server.post("/api/images/upload", content=png(3), headers={"Content-Type": "image/png"})
    assert not_multipart.status_code == 415
    assert stored_files(server) == []


def test_path_tricks_in_file_names_stay_names(server: LiveServer, tmp_path: Path) -> None:
    data = png(4)
    for name in ["../../../../outside.png", "/etc/passwd", "..\\..\\win.png", "a\x00b.png", ".."]:
        image = upload(server, data, name=name).json()["data"]
        assert image["file_path"] == f".vibe-images/{hashlib.sha256(data).hexdigest()}.png"
    assert stored_files(server) == [f"{hashlib.sha256(data).hexdigest()}.png"]
    assert not (tmp_path / "outside.png").exists() and not any(tmp_path.rglob("outside.png"))
    names = {
        upload(server, png(5 + i), name=n).json()["data"]["original_name"]
        for i, n in enumerate(["../x/../evil.png", "dir\\win.png"])
    }
    assert names == {"evil.png", "win.png"}


def test_task_images_link_list_delete_and_orphans(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "t"})
    linked = upload(server, png(10), path=f"/api/images/task/{task['id']}/upload").json()["data"]
    assert [i["id"] for i in server.ok("GET", f"/api/images/task/{task['id']}")] == [linked["id"]]
    unknown = upload(server, png(11), path="/api/images/task/00000000-0000-4000-8000-000000000000/upload")
    assert unknown.status_code == 404
    loose = upload(server, png(12)).json()["data"]
    # update replaces the links; a create links what it is given
    server.ok("PUT", f"/api/tasks/{task['id']}", json={"image_ids": [loose["id"]]})
    assert [i["id"] for i in server.ok("GET", f"/api/images/task/{task['id']}")] == [loose["id"]]
    other = server.ok(
        "POST", "/api/tasks", json={"project_id": project["id"], "title": "o", "image_ids": [linked["id"]]}
    )
    assert [i["id"] for i in server.ok("GET", f"/api/images/task/{other['id']}")] == [linked["id"]]
    # an image no task uses goes once it is old enough; the used ones stay
    orphan = upload(server, png(13)).json()["data"]
    maintenance = server.services.maintenance
    stray = images_dir(server) / f"{'0' * 64}.png"  # a file whose upload never got its row
    stray.write_bytes(png(99))
    assert maintenance.prune_images() == 0  # too fresh: the user may still be writing the task
    assert maintenance.prune_images(dt.datetime.now(dt.UTC) + dt.timedelta(days=2)) == 2
    assert not stray.exists()
    assert server.get(f"/api/images/{orphan['id']}/file").status_code == 404
    assert server.get(f"/api/images/{loose['id']}/file").status_code == 200
    # delete: row, links and file go
    assert server.ok("DELETE", f"/api/images/{loose['id']}") is None
    assert server.ok("GET", f"/api/images/task/{task['id']}") == []
    assert server.get(f"/api/images/{loose['id']}/file").status_code == 404
    assert f"{loose['hash']}.png" not in stored_files(server)
    assert server.delete(f"/api/images/{loose['id']}").status_code == 404
    assert server.get("/api/images/not-a-uuid/file").status_code == 400


def _attempt(server: LiveServer, task: dict[str, Any]) -> dict[str, Any]:
    return server.ok(  # type: ignore[no-any-return]
        "POST",
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    )


def test_the_agent_reads_its_images_and_does_not_commit_them(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    data = png(20)
    image = upload(server, data).json()["data"]
    description = f"Look at this: ![shot]({image['file_path']})"
    task = server.ok(
        "POST",
        "/api/tasks",
        json={
            "project_id": project["id"],
            "title": "see",
            "description": description,
            "image_ids": [image["id"]],
        },
    )
    attempt = _attempt(server, task)
    processes = wait_processes(server, attempt["id"], 1)
    wait_task_status(server, task["id"], "inreview")
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    placed = worktree / image["file_path"]
    assert placed.read_bytes() == data and (worktree / ".vibe-images" / ".gitignore").read_text() == "*\n"
    prompt = processes[0]["executor_action"]["typ"]["prompt"]
    assert f"![shot]({placed})" in prompt  # the link the agent gets is absolute
    branch = pygit2.Repository(project["git_repo_path"]).lookup_branch(attempt["branch"]).peel(pygit2.Commit)
    seen = branch.tree["seen.txt"].data.decode()  # type: ignore[attr-defined]
    assert seen.startswith(hashlib.sha256(data).hexdigest())
    assert ".vibe-images" not in branch_files(project["git_repo_path"], attempt["branch"])

    # the agent swaps its images folder for a link to somewhere else: the next copy refuses to follow it
    outside = tmp_path / "outside"
    outside.mkdir()
    import shutil

    shutil.rmtree(worktree / ".vibe-images")
    (worktree / ".vibe-images").symlink_to(outside)
    second = upload(server, png(21)).json()["data"]
    server.ok(
        "POST",
        f"/api/task-attempts/{attempt['id']}/follow-up",
        json={"prompt": f"and ![two]({second['file_path']})", "image_ids": [second["id"]]},
    )
    wait_processes(server, attempt["id"], 2)
    assert list(outside.iterdir()) == []  # nothing written through the link
    assert {i["id"] for i in server.ok("GET", f"/api/images/task/{task['id']}")} == {
        image["id"],
        second["id"],
    }
    bad = server.post(
        f"/api/task-attempts/{attempt['id']}/follow-up",
        json={"prompt": "x", "image_ids": ["00000000-0000-4000-8000-000000000000"]},
    ).json()
    assert bad["success"] is False and "Unknown image" in bad["message"]
    processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
    assert len(processes) == 2  # refused before anything ran


def test_a_planted_file_link_is_replaced_not_written_through(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    first = upload(server, png(30)).json()["data"]
    task = server.ok(
        "POST", "/api/tasks", json={"project_id": project["id"], "title": "one", "image_ids": [first["id"]]}
    )
    attempt = _attempt(server, task)
    wait_processes(server, attempt["id"], 1)
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    placed = worktree / first["file_path"]
    placed.unlink()
    placed.symlink_to(victim)
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "again"})
    wait_processes(server, attempt["id"], 2)
    assert victim.read_text() == "keep me\n"
    assert not placed.is_symlink() and placed.read_bytes() == png(30)


def test_a_foreign_page_cannot_upload(server: LiveServer) -> None:
    """A multipart POST is a "simple" request a page of any site may send: the boundary refuses it."""
    for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
        response = server.post(
            "/api/images/upload", files={"image": ("a.png", png(40), "image/png")}, headers=headers
        )
        assert response.status_code == 403, response.text
    assert stored_files(server) == []


def test_a_form_with_too_many_parts_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path, images={"max_form_parts": 2})
    with live_server(config) as server:
        fields = {f"extra{i}": (None, "x") for i in range(3)}
        response = server.post(
            "/api/images/upload", files={**fields, "image": ("a.png", png(50), "image/png")}
        )
        assert response.status_code == 400 and response.json()["success"] is False
        assert stored_files(server) == []
        ok = server.post(
            "/api/images/upload", files={"note": (None, "x"), "image": ("a.png", png(50), "image/png")}
        )
        assert ok.json()["success"] is True
