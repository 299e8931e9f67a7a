"""Rebase of an attempt worktree onto a new base, and aborting whatever conflicted operation is stopped in
a worktree. Both run the git CLI (see :func:`rebase` for why); the checks before a rebase
(:func:`rebase_bases`) are shared with the in-container rebase of isolated attempts.
"""

from __future__ import annotations

from .errors import GitCommandFailed, GitServiceError, MergeConflicts, RebaseInProgress, WorktreeDirty
from .locks import PathLocks
from .repo import check_lookup_name, open_repo, resolve_branch, run_git
from .status import conflict_op, conflicted_files, status_counts

_ABORT_ARGS = {
    "rebase": ["rebase", "--abort"],
    "merge": ["merge", "--abort"],
    "cherry_pick": ["cherry-pick", "--abort"],
    "revert": ["revert", "--abort"],
}


def rebase_conflicts(branch: str, new_base_branch: str, files: list[str]) -> MergeConflicts:
    """The error a rebase stopped on conflicts raises, here or in an isolated attempt's container."""
    names = ", ".join(files) if files else "(see git status)"
    return MergeConflicts(
        "rebase",
        f"Rebase of '{branch}' onto '{new_base_branch}' stopped on conflicts in {names}. "
        "Resolve them and continue the rebase, or abort it.",
        files,
    )


def rebase(
    locks: PathLocks,
    repo_path: str,
    worktree_path: str,
    branch: str,
    new_base_branch: str,
    old_base_branch: str | None = None,
) -> str:
    """``git rebase --onto <new base> <old base>`` in the attempt worktree; returns the new HEAD sha.

    This uses the git CLI on purpose: libgit2's rebase has no conflict-resolution state that ``git
    rebase --continue/--abort`` understands end to end (it does not run the merge backend, hooks or
    rerere), and a stopped rebase must be finishable by the agent or the user with plain git inside
    the worktree or its container. The bases are passed as resolved commit ids, never as user text.
    On conflicts the worktree is left in git's normal, abortable rebase state and MergeConflicts
    (op ``rebase``) is raised; nothing in the main checkout is touched.
    """
    new_base, old_base = rebase_bases(repo_path, worktree_path, branch, new_base_branch, old_base_branch)
    with locks.hold(worktree_path):
        wrepo = open_repo(worktree_path)
        argv = ["rebase", "--onto", new_base, old_base]
        proc = run_git(argv, cwd=worktree_path, repo=wrepo, check=False)
        wrepo = open_repo(worktree_path)
        if proc.returncode != 0:
            if conflict_op(wrepo) == "rebase":
                raise rebase_conflicts(branch, new_base_branch, conflicted_files(wrepo))
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise GitCommandFailed(
                f"Rebase of '{branch}' onto '{new_base_branch}' failed: {detail[-1] if detail else ''}"
            )
        return str(wrepo.head.target)


def rebase_bases(
    repo_path: str,
    worktree_path: str,
    branch: str,
    new_base_branch: str,
    old_base_branch: str | None = None,
) -> tuple[str, str]:
    """Check that ``worktree_path`` can be rebased; the (new, old) base commit ids to pass to git.

    Shared by the host rebase above and the in-container one of isolated attempts (whose
    ``worktree_path`` is the host's view of the checkout).
    """
    check_lookup_name(branch)
    repo = open_repo(repo_path)
    new_base = resolve_branch(repo, new_base_branch)
    old_base = resolve_branch(repo, old_base_branch or new_base_branch)
    wrepo = open_repo(worktree_path)
    op = conflict_op(wrepo)
    if op == "rebase":
        raise RebaseInProgress()
    if op is not None:
        raise MergeConflicts(op, f"A {op.replace('_', '-')} is in progress; abort it first", [])
    if wrepo.head_is_detached or wrepo.head_is_unborn or wrepo.head.shorthand != branch:
        raise GitServiceError(f"The worktree at '{worktree_path}' does not have '{branch}' checked out")
    uncommitted, _ = status_counts(wrepo)
    if uncommitted:
        raise WorktreeDirty(
            f"The worktree has {uncommitted} uncommitted change(s); commit them before rebasing"
        )
    return str(new_base.id), str(old_base.id)


def abort_conflicts(locks: PathLocks, worktree_path: str) -> None:
    """Abort whatever rebase, merge, cherry-pick or revert is in progress (no-op when none is)."""
    wrepo = open_repo(worktree_path)
    op = conflict_op(wrepo)
    if op is None:
        return
    with locks.hold(worktree_path):
        proc = run_git(_ABORT_ARGS[op], cwd=worktree_path, repo=wrepo, check=False)
        if proc.returncode != 0 and conflict_op(open_repo(worktree_path)) is not None:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise GitCommandFailed(f"Aborting the {op} failed: {detail[-1] if detail else ''}")
