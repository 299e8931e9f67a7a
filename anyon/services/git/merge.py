"""Squash merge of an attempt branch into its target, updating the target's checkout when there is one.

A merge only fast-forwards in content: it is refused when the target has commits the branch lacks, so the
squash commit's tree is exactly the branch tip's tree. Where the target is checked out, the checkout is
updated in place only if nothing there (staged changes, or local changes to files the merge touches)
would be lost. Everything runs under the repository's lock.
"""

from __future__ import annotations

import logging
import os

import pygit2
from pygit2.enums import CheckoutStrategy, FileStatus

from .errors import BranchesDiverged, BranchNotFound, GitServiceError, NothingToMerge, WorktreeDirty
from .locks import PathLocks
from .repo import check_lookup_name, open_repo, resolve_branch, signature

log = logging.getLogger(__name__)

_INDEX_FLAGS = (
    FileStatus.INDEX_NEW
    | FileStatus.INDEX_MODIFIED
    | FileStatus.INDEX_DELETED
    | FileStatus.INDEX_RENAMED
    | FileStatus.INDEX_TYPECHANGE
)


def _checkout_of(repo: pygit2.Repository, branch: str, linked: bool = True) -> str | None:
    """Where ``branch`` is checked out: the main checkout's workdir, or a linked worktree's metadata
    directory (libgit2 opens it as that worktree). ``linked=False`` looks at the main checkout only.
    """
    ref = f"refs/heads/{branch}"
    if not repo.is_bare and not repo.head_is_detached:
        head = repo.lookup_reference("HEAD")
        if str(head.target) == ref:
            return str(repo.workdir)
    if not linked:
        return None
    for name in repo.list_worktrees():
        try:
            wt = repo.lookup_worktree(name)
            if wt.is_prunable:
                continue
            # the HEAD in the worktree's metadata (host-owned), not through the worktree's .git
            with open(os.path.join(repo.path, "worktrees", name, "HEAD"), encoding="utf-8") as fh:
                linked_head = fh.read(4096).strip()
        except (pygit2.GitError, KeyError, OSError, UnicodeDecodeError):
            continue
        if linked_head == f"ref: {ref}":
            return os.path.join(repo.path, "worktrees", name)
    return None


def squash_merge(
    locks: PathLocks,
    repo_path: str,
    branch: str,
    target_branch: str,
    message: str,
    *,
    update_linked: bool = True,
) -> str:
    """Squash ``branch`` into the local ``target_branch``; returns the new commit sha.

    Refused with BranchesDiverged when the target has commits the branch lacks (rebase first), so the
    squash commit's tree is exactly the branch tip's tree. When the target is checked out somewhere
    (``update_linked=False``: only the main checkout counts; an isolated attempt's worktree is the
    agent's, and follows in its container), that checkout is updated in place: staged changes there,
    or local changes to files the merge touches, raise WorktreeDirty before anything moves. Afterwards
    the task branch ref is moved to the squash commit (spec §1.5) so the attempt is "merged, not ahead".
    """
    check_lookup_name(branch)
    check_lookup_name(target_branch)
    if not message.strip():
        raise GitServiceError("The merge commit message must not be empty")
    with locks.hold(repo_path):
        repo = open_repo(repo_path)
        tip = resolve_branch(repo, branch, local_only=True)
        target_ref = repo.lookup_branch(target_branch)
        if target_ref is None:
            raise BranchNotFound(target_branch)
        target = target_ref.peel(pygit2.Commit)
        ahead, behind = repo.ahead_behind(tip.id, target.id)
        if behind:
            raise BranchesDiverged(
                f"'{target_branch}' has {behind} commit(s) that '{branch}' does not; "
                f"rebase the attempt onto '{target_branch}' first"
            )
        if not ahead:
            raise NothingToMerge(f"'{branch}' has no commits that are not already in '{target_branch}'")
        sig = signature(repo)
        checkout = _checkout_of(repo, target_branch, linked=update_linked)
        if checkout is None:
            new_oid = repo.create_commit(target_ref.name, sig, sig, message, tip.tree_id, [target.id])
        else:
            new_oid = _merge_into_checkout(repo, checkout, target, tip, sig, message, target_ref)
        branch_ref = repo.lookup_branch(branch)
        branch_ref.set_target(new_oid, f"anyon: squash merged into {target_branch}")
        log.info("squash merged %s into %s as %s", branch, target_branch, new_oid)
        return str(new_oid)


def _merge_into_checkout(
    repo: pygit2.Repository,
    checkout: str,
    target: pygit2.Commit,
    tip: pygit2.Commit,
    sig: pygit2.Signature,
    message: str,
    target_ref: pygit2.Branch,
) -> pygit2.Oid:
    crepo = open_repo(checkout)
    staged = sorted(p for p, f in crepo.status().items() if f & _INDEX_FLAGS)
    if staged:
        raise WorktreeDirty(
            f"'{checkout}' has staged changes on '{target_ref.shorthand}': {', '.join(staged[:10])}; "
            "commit or unstage them before merging",
            staged,
        )
    touched: set[str] = set()
    for delta in target.tree.diff_to_tree(tip.tree).deltas:
        touched.update((delta.old_file.path, delta.new_file.path))
    local = sorted(
        p
        for p, f in crepo.status(untracked_files="all").items()
        if p in touched and not f & FileStatus.IGNORED and f != FileStatus.CURRENT
    )
    if local:
        raise WorktreeDirty(
            f"Local changes in '{checkout}' would be overwritten by the merge: {', '.join(local[:10])}",
            local,
        )
    new_oid = repo.create_commit(None, sig, sig, message, tip.tree_id, [target.id])
    try:
        crepo.checkout_tree(crepo[tip.tree_id], strategy=CheckoutStrategy.SAFE)  # type: ignore[no-untyped-call]
    except pygit2.GitError as exc:
        raise WorktreeDirty(f"Cannot update the checkout at '{checkout}': {exc}") from exc
    target_ref.set_target(new_oid, f"anyon: squash merge of {tip.id}")
    return new_oid
