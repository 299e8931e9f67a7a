"""Where a fetched copy of a pushed branch is kept, and the branch counted against the newest remote tip.

``refs/remotes/<remote>/<branch>`` of a branch the server pushed is the *lease* of its next push (a
rewritten branch is force-pushed only while the remote still holds exactly that commit). A fetch that
moved it would make the lease hold over commits someone else pushed, and the next force-push would
overwrite them. So a fetch of a pushed branch goes to its own ref, ``refs/anyon/fetched/<remote>/<branch>``,
and the counts use whichever of the two is newer: the fetched tip, unless the lease already contains it
(we pushed after that fetch).
"""

from __future__ import annotations

import pygit2
from pygit2.enums import BranchType

from .repo import open_repo, resolve_branch

FETCHED_PREFIX = "refs/anyon/fetched/"


def fetched_ref(remote: str, branch: str) -> str:
    """The ref a fetch of ``branch`` from ``remote`` writes (never the push lease)."""
    return f"{FETCHED_PREFIX}{remote}/{branch}"


def tracking_branch(repo_path: str, name: str) -> tuple[str, str] | None:
    """(remote, branch) when ``name`` means a remote-tracking branch of a configured remote, else None.

    A local branch of that name wins, as it does everywhere a branch name is resolved.
    """
    repo = open_repo(repo_path)
    try:
        if repo.lookup_branch(name) is not None or repo.lookup_branch(name, BranchType.REMOTE) is None:
            return None
    except (ValueError, pygit2.GitError):  # not a valid branch name: nothing to fetch
        return None
    for remote in sorted((n for n in repo.remotes.names() if n), key=len, reverse=True):
        if name.startswith(f"{remote}/") and len(name) > len(remote) + 1:
            return remote, name[len(remote) + 1 :]
    return None


def remote_tip_ahead_behind(repo_path: str, branch: str, remote: str = "origin") -> tuple[int, int] | None:
    """The local branch against the newest known remote copy; None when it was never pushed nor fetched."""
    repo = open_repo(repo_path)
    local = resolve_branch(repo, branch)
    pushed = repo.lookup_branch(f"{remote}/{branch}", BranchType.REMOTE)
    lease = pushed.peel(pygit2.Commit).id if pushed is not None else None
    ref = repo.references.get(fetched_ref(remote, branch))
    fetched = ref.peel(pygit2.Commit).id if ref is not None else None
    tip = lease
    if fetched is not None and (
        lease is None or (lease != fetched and not repo.descendant_of(lease, fetched))
    ):
        tip = fetched
    if tip is None:
        return None
    ahead, behind = repo.ahead_behind(local.id, tip)
    return int(ahead), int(behind)
