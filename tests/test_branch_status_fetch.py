"""Pushes over git's smart HTTP, against the stand-in GitHub serving a real bare repository with the
token as basic auth."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from anyon.services.github.remotes import RemotePolicy
from anyon.services.github.transport import push_branch
from tests.github.standin import TOKEN, StandIn, github_standin

SIG = pygit2.Signature("Other", "other@example.com")


def commit_on(repo: pygit2.Repository, branch: str, name: str) -> pygit2.Oid:
    ref = f"refs/heads/{branch}"
    parent = repo.references[ref].target
    builder = repo.TreeBuilder(repo[parent].peel(pygit2.Commit).tree)
    builder.insert(name, repo.create_blob(name.encode()), pygit2.GIT_FILEMODE_BLOB)
    return repo.create_commit(ref, SIG, SIG, f"add {name}", builder.write(), [parent])


@pytest.fixture
def standin(tmp_path: Path):  # type: ignore[no-untyped-def]
    with github_standin() as gh:
        gh.state.git_root = tmp_path / "remotes"
        yield gh


def test_a_push_over_smart_http_lists_the_heads_then_pushes_on_a_new_connection(
    tmp_path: Path, standin: StandIn
) -> None:
    """libgit2 refuses to push over the fetch connection that listed the remote's heads."""
    bare = pygit2.init_repository(str(tmp_path / "remotes" / "octo" / "widget.git"), bare=True)
    work = pygit2.init_repository(str(tmp_path / "work"), initial_head="main")
    work.create_commit("refs/heads/feature", SIG, SIG, "1", work.TreeBuilder().write(), [])
    remote = RemotePolicy(standin.url).check(f"{standin.url}/octo/widget.git")
    assert push_branch(work.workdir, "feature", remote, TOKEN) == str(
        bare.references["refs/heads/feature"].target
    )
    tip = commit_on(work, "feature", "two.txt")
    assert push_branch(work.workdir, "feature", remote, TOKEN) == str(tip)
    assert bare.references["refs/heads/feature"].target == tip and not standin.seen(TOKEN)
