"""GitService: branches, branch status, attempt diffs, commits, squash merge, rebase, conflicts.

The service knows nothing about the database: it takes repository paths, worktree paths and branch names
and returns plain dicts in the wire shape of the spec (``types.md`` §6 and §8). Callers fill in what only
the database knows (``BranchStatus.merges``, the merge row, the task status). All expected failures are
:class:`~anyon.services.git.errors.GitServiceError` subclasses.

libgit2 (pygit2) does the work everywhere except rebase and aborting a conflicted operation, which use the
git CLI (see :meth:`GitService.rebase` for why).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import (
    BranchType,
    CheckoutStrategy,
    FileStatus,
    RepositoryInitFlag,
    RepositoryState,
    ResetMode,
)

from .diff import ContentBudget, iter_diffs, tree_diff, worktree_diff
from .errors import (
    BranchesDiverged,
    BranchExists,
    BranchNotFound,
    CommitNotFound,
    GitCommandFailed,
    GitServiceError,
    InvalidPath,
    MergeConflicts,
    NotARepository,
    RebaseInProgress,
    WorktreeDirty,
)
from .locks import PathLocks
from .repo import (
    check_lookup_name,
    is_within,
    open_repo,
    rfc3339,
    run_git,
    safe_relative_path,
    signature,
    validate_branch_name,
)

log = logging.getLogger(__name__)

_INDEX_FLAGS = (
    FileStatus.INDEX_NEW
    | FileStatus.INDEX_MODIFIED
    | FileStatus.INDEX_DELETED
    | FileStatus.INDEX_RENAMED
    | FileStatus.INDEX_TYPECHANGE
)
_HEX = frozenset("0123456789abcdefABCDEF")
_ABORT_ARGS = {
    "rebase": ["rebase", "--abort"],
    "merge": ["merge", "--abort"],
    "cherry_pick": ["cherry-pick", "--abort"],
    "revert": ["revert", "--abort"],
}


class NothingToMerge(GitServiceError):
    kind = "NothingToMerge"


def rebase_conflicts(branch: str, new_base_branch: str, files: list[str]) -> MergeConflicts:
    names = ", ".join(files) if files else "(see git status)"
    return MergeConflicts(
        "rebase",
        f"Rebase of '{branch}' onto '{new_base_branch}' stopped on conflicts in {names}. "
        "Resolve them and continue the rebase, or abort it.",
        files,
    )


def _conflict_op(wrepo: pygit2.Repository) -> str | None:
    """The operation that left this worktree mid-way, read from git's own state files."""
    gitdir = Path(wrepo.path)
    if (gitdir / "rebase-merge").is_dir() or (gitdir / "rebase-apply" / "rebasing").exists():
        return "rebase"
    if (gitdir / "MERGE_HEAD").exists():
        return "merge"
    if (gitdir / "CHERRY_PICK_HEAD").exists():
        return "cherry_pick"
    if (gitdir / "REVERT_HEAD").exists():
        return "revert"
    state = wrepo.state()
    if state in (RepositoryState.REBASE, RepositoryState.REBASE_INTERACTIVE, RepositoryState.REBASE_MERGE):
        return "rebase"
    return None


def _conflicted_files(wrepo: pygit2.Repository) -> list[str]:
    conflicts = wrepo.index.conflicts
    if conflicts is None:
        return []
    files = set()
    for ancestor, ours, theirs in conflicts:
        for entry in (ours, theirs, ancestor):
            if entry is not None:
                files.add(entry.path)
                break
    return sorted(files)


def _status_counts(wrepo: pygit2.Repository) -> tuple[int, int]:
    """(uncommitted tracked changes, untracked files); ignored files never count."""
    uncommitted = untracked = 0
    for flags in wrepo.status(untracked_files="all").values():
        if flags & FileStatus.IGNORED:
            continue
        if flags == FileStatus.WT_NEW:
            untracked += 1
        elif flags != FileStatus.CURRENT:
            uncommitted += 1
    return uncommitted, untracked


class GitService:
    """Stateless apart from per-repository locks; safe to share between threads."""

    def __init__(self, content_budget_bytes: int = 200 * 1024 * 1024) -> None:
        self.content_budget_bytes = content_budget_bytes
        self.locks = PathLocks()

    # ----------------------------------------------------------------------------------------- repository

    def is_repository(self, path: str) -> bool:
        try:
            open_repo(path)
        except NotARepository:
            return False
        return True

    def init_repo(self, path: str) -> None:
        """``git init`` with ``main`` as the initial branch when ``path`` has no ``.git`` (idempotent)."""
        p = Path(path)
        if (p / ".git").exists():
            open_repo(p)  # raise NotARepository if the .git there is broken
            return
        try:
            p.mkdir(parents=True, exist_ok=True)
            pygit2.init_repository(
                str(p), initial_head="main", flags=RepositoryInitFlag.MKPATH | RepositoryInitFlag.NO_REINIT
            )
        except (OSError, pygit2.GitError) as exc:
            raise NotARepository(f"Cannot create a git repository at '{p}': {exc}") from exc

    def ensure_initial_commit(self, repo_path: str) -> str:
        """Give an empty repository a first (empty) commit on ``main`` so attempts can branch from it."""
        repo = open_repo(repo_path)
        if not repo.head_is_unborn:
            return str(repo.head.target)
        # spec §1.3: a repository without commits gets a ``main`` branch, whatever its unborn HEAD names
        ref = "refs/heads/main"
        tree = repo.TreeBuilder().write()
        sig = signature(repo)
        oid = repo.create_commit(ref, sig, sig, "Initial commit", tree, [])
        repo.set_head(ref)
        return str(oid)

    # ------------------------------------------------------------------------------------------- branches

    def branches(self, repo_path: str) -> list[dict[str, Any]]:
        """GitBranch[]: local then remote branches; the current one first, then newest commit first."""
        repo = open_repo(repo_path)
        current = None if repo.head_is_unborn or repo.head_is_detached else repo.head.shorthand
        out: list[dict[str, Any]] = []
        for kind, is_remote in ((BranchType.LOCAL, False), (BranchType.REMOTE, True)):
            for name in repo.listall_branches(kind):
                if is_remote and name.endswith("/HEAD"):
                    continue
                branch = repo.lookup_branch(name, kind)
                try:
                    commit = branch.peel(pygit2.Commit)
                except (pygit2.GitError, KeyError, ValueError):
                    continue
                out.append(
                    {
                        "name": name,
                        "is_current": not is_remote and name == current,
                        "is_remote": is_remote,
                        "last_commit_date": rfc3339(commit.commit_time),
                        "_t": commit.commit_time,
                    }
                )
        out.sort(key=lambda b: (not b["is_current"], b["is_remote"], -b["_t"], b["name"]))
        for b in out:
            del b["_t"]
        return out

    def branch_exists(self, repo_path: str, name: str) -> bool:
        try:
            self._resolve(open_repo(repo_path), name)
        except (BranchNotFound, GitServiceError):
            return False
        return True

    def branch_commit_time(self, repo_path: str, name: str) -> dt.datetime | None:
        """When the tip of the local branch ``name`` was committed (UTC); None when there is none."""
        try:
            tip = self._resolve(open_repo(repo_path), name, local_only=True)
        except BranchNotFound:
            return None
        return dt.datetime.fromtimestamp(tip.commit_time, dt.UTC)

    def current_branch(self, repo_path: str) -> str | None:
        repo = open_repo(repo_path)
        if repo.head_is_unborn or repo.head_is_detached:
            return None
        return str(repo.head.shorthand)

    def create_branch(self, repo_path: str, name: str, base_branch: str) -> str:
        """Create ``name`` at the tip of ``base_branch``; returns the commit sha."""
        validate_branch_name(name)
        repo = open_repo(repo_path)
        base = self._resolve(repo, base_branch)
        with self.locks.hold(repo_path):
            if repo.lookup_branch(name) is not None:
                raise BranchExists(name)
            repo.branches.local.create(name, base)
        return str(base.id)

    def delete_branch(self, repo_path: str, name: str) -> None:
        repo = open_repo(repo_path)
        branch = repo.lookup_branch(check_lookup_name(name))
        if branch is None:
            raise BranchNotFound(name)
        try:
            branch.delete()
        except pygit2.GitError as exc:
            raise GitServiceError(f"Cannot delete branch '{name}': {exc}") from exc

    def rename_branch(self, repo_path: str, old: str, new: str, worktree_path: str | None = None) -> str:
        """Rename a local branch; worktrees that have it checked out follow the new name."""
        validate_branch_name(new)
        repo = open_repo(repo_path)
        branch = repo.lookup_branch(check_lookup_name(old))
        if branch is None:
            raise BranchNotFound(old)
        if worktree_path and Path(worktree_path).is_dir():
            try:
                if _conflict_op(open_repo(worktree_path)) == "rebase":
                    raise RebaseInProgress("Cannot rename the branch while a rebase is in progress")
            except NotARepository:
                pass
        if old == new:
            return new
        with self.locks.hold(repo_path):
            if repo.lookup_branch(new) is not None:
                raise BranchExists(new)
            try:
                branch.rename(new)
            except pygit2.GitError as exc:
                raise GitServiceError(f"Cannot rename branch '{old}' to '{new}': {exc}") from exc
        return new

    # ------------------------------------------------------------------------------------------- status

    def head_oid(self, worktree_path: str) -> str | None:
        wrepo = open_repo(worktree_path)
        return None if wrepo.head_is_unborn else str(wrepo.head.target)

    def reset_hard(self, worktree_path: str, oid: str) -> None:
        """``git reset --hard <oid>`` in the worktree (a retry goes back to before the retried process)."""
        try:
            open_repo(worktree_path).reset(pygit2.Oid(hex=oid), ResetMode.HARD)
        except (pygit2.GitError, ValueError, KeyError) as exc:
            raise GitServiceError(f"Cannot reset {worktree_path} to {oid}: {exc}") from None

    def is_clean(self, worktree_path: str, include_untracked: bool = True) -> bool:
        uncommitted, untracked = _status_counts(open_repo(worktree_path))
        return uncommitted == 0 and (untracked == 0 or not include_untracked)

    def ahead_behind(self, repo_path: str, branch: str, target_branch: str) -> tuple[int, int]:
        """(commits on ``branch`` not on the target, commits on the target not on ``branch``)."""
        repo = open_repo(repo_path)
        a = self._resolve(repo, branch)
        b = self._resolve(repo, target_branch)
        ahead, behind = repo.ahead_behind(a.id, b.id)
        return int(ahead), int(behind)

    def remote_ahead_behind(
        self, repo_path: str, branch: str, remote: str = "origin"
    ) -> tuple[int, int] | None:
        """The local branch against its pushed ``<remote>/<branch>``; None when never pushed."""
        repo = open_repo(repo_path)
        local = self._resolve(repo, branch)
        pushed = repo.lookup_branch(f"{remote}/{branch}", BranchType.REMOTE)
        if pushed is None:
            return None
        ahead, behind = repo.ahead_behind(local.id, pushed.peel(pygit2.Commit).id)
        return int(ahead), int(behind)

    def conflict_state(self, worktree_path: str) -> dict[str, Any]:
        """``{is_rebase_in_progress, conflict_op, conflicted_files}`` of a worktree."""
        wrepo = open_repo(worktree_path)
        op = _conflict_op(wrepo)
        return {
            "is_rebase_in_progress": op == "rebase",
            "conflict_op": op,
            "conflicted_files": _conflicted_files(wrepo),
        }

    def branch_status(
        self, repo_path: str, worktree_path: str | None, branch: str, target_branch: str
    ) -> dict[str, Any]:
        """Every BranchStatus field except ``merges`` (the caller adds it from the database).

        ``remote_commits_*`` are null; the caller fills them from :meth:`remote_ahead_behind` when the
        newest merge is an open PR. Without a worktree on disk the worktree fields are null.
        """
        repo = open_repo(repo_path)
        target = self._resolve(repo, target_branch)
        status: dict[str, Any] = {
            "commits_behind": None,
            "commits_ahead": None,
            "has_uncommitted_changes": None,
            "head_oid": None,
            "uncommitted_count": None,
            "untracked_count": None,
            "target_branch_name": target_branch,
            "remote_commits_behind": None,
            "remote_commits_ahead": None,
            "is_rebase_in_progress": False,
            "conflict_op": None,
            "conflicted_files": [],
        }
        wrepo = open_repo(worktree_path) if worktree_path and Path(worktree_path).exists() else None
        if wrepo is not None and not wrepo.head_is_unborn:
            head = wrepo.head.peel(pygit2.Commit)
            op = _conflict_op(wrepo)
            if op == "rebase" or wrepo.head_is_detached:
                # mid-rebase HEAD is detached on a half-replayed commit: count the branch ref instead
                head = self._resolve(repo, branch)
            uncommitted, untracked = _status_counts(wrepo)
            status.update(
                head_oid=str(wrepo.head.target),
                uncommitted_count=uncommitted,
                untracked_count=untracked,
                has_uncommitted_changes=(uncommitted + untracked) > 0,
                is_rebase_in_progress=op == "rebase",
                conflict_op=op,
                conflicted_files=_conflicted_files(wrepo),
            )
        else:
            head = self._resolve(repo, branch)
        ahead, behind = repo.ahead_behind(head.id, target.id)
        status["commits_ahead"], status["commits_behind"] = int(ahead), int(behind)
        return status

    # --------------------------------------------------------------------------------------------- diffs

    def _budget(self, budget: ContentBudget | None) -> ContentBudget:
        return budget if budget is not None else ContentBudget(self.content_budget_bytes)

    def _attempt_diff(
        self, repo_path: str, worktree_path: str | None, branch: str, target_branch: str
    ) -> tuple[pygit2.Repository, pygit2.Diff, str | None]:
        repo = open_repo(repo_path)
        target = self._resolve(repo, target_branch)
        if worktree_path and Path(worktree_path).is_dir():
            wrepo = open_repo(worktree_path)
            head = wrepo.head.peel(pygit2.Commit) if not wrepo.head_is_unborn else None
            if head is None:
                raise BranchNotFound(branch)
            base_oid = wrepo.merge_base(head.id, target.id)
            tree_id = base_oid if base_oid else wrepo.TreeBuilder().write()  # unrelated: diff from empty
            base_tree = wrepo[tree_id].peel(pygit2.Tree)
            return wrepo, worktree_diff(wrepo, base_tree), str(wrepo.workdir)
        tip = self._resolve(repo, branch)
        base_oid = repo.merge_base(tip.id, target.id)
        old_tree = repo[base_oid].peel(pygit2.Tree) if base_oid else None
        return repo, tree_diff(repo, old_tree, tip.tree), None

    def diff(
        self,
        repo_path: str,
        worktree_path: str | None,
        branch: str,
        target_branch: str,
        stats_only: bool = False,
        budget: ContentBudget | None = None,
    ) -> list[dict[str, Any]]:
        """Diff[] of the attempt against the merge-base with its target, uncommitted and untracked included.

        Without a worktree on disk, the committed branch tip is compared instead.
        """
        repo, d, workdir = self._attempt_diff(repo_path, worktree_path, branch, target_branch)
        return list(iter_diffs(repo, d, workdir=workdir, stats_only=stats_only, budget=self._budget(budget)))

    def diff_path(
        self,
        repo_path: str,
        worktree_path: str | None,
        branch: str,
        target_branch: str,
        path: str,
        stats_only: bool = False,
        budget: ContentBudget | None = None,
    ) -> dict[str, Any] | None:
        """The Diff touching ``path`` (as new path, or as the old path of a rename), or None if unchanged.

        Called by the live diff stream once per changed path; only that file's patch and contents are
        built. The caller keys the result with :func:`anyon.services.git.diff_key` and sends ``remove`` for
        ``path`` when the result is None or keyed elsewhere.
        """
        rel = safe_relative_path(path)
        repo, d, workdir = self._attempt_diff(repo_path, worktree_path, branch, target_branch)
        for item in iter_diffs(
            repo, d, workdir=workdir, stats_only=stats_only, budget=self._budget(budget), only_path=rel
        ):
            return item
        return None

    def diff_paths(
        self,
        repo_path: str,
        worktree_path: str | None,
        branch: str,
        target_branch: str,
        paths: list[str],
        stats_only: bool = False,
        budget: ContentBudget | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """:meth:`diff_path` for a debounced batch of changed paths, sharing one status scan."""
        wanted = {safe_relative_path(p): p for p in paths}
        result: dict[str, dict[str, Any] | None] = dict.fromkeys(paths)
        repo, d, workdir = self._attempt_diff(repo_path, worktree_path, branch, target_branch)
        shared = self._budget(budget)
        for rel, original in wanted.items():
            for item in iter_diffs(
                repo, d, workdir=workdir, stats_only=stats_only, budget=shared, only_path=rel
            ):
                result[original] = item
                break
        return result

    def diff_commit(
        self, repo_path: str, sha: str, stats_only: bool = False, budget: ContentBudget | None = None
    ) -> list[dict[str, Any]]:
        """Diff[] of one commit against its first parent (the stream's "merged" mode)."""
        repo = open_repo(repo_path)
        commit = self._commit(repo, sha)
        parent = commit.parents[0].tree if commit.parents else None
        d = tree_diff(repo, parent, commit.tree)
        return list(iter_diffs(repo, d, workdir=None, stats_only=stats_only, budget=self._budget(budget)))

    # ------------------------------------------------------------------------------------------- commits

    def commit_all(self, worktree_path: str, message: str) -> str | None:
        """Stage everything (``git add -A``: deletions too, ignored files skipped) and commit.

        Returns the new sha, or None when there was nothing to commit.
        """
        wrepo = open_repo(worktree_path)
        op = _conflict_op(wrepo)
        if op is not None:
            if op == "rebase":
                raise RebaseInProgress("Cannot commit while a rebase is in progress in this worktree")
            raise MergeConflicts(op, f"Cannot commit while a {op.replace('_', '-')} is in progress", [])
        with self.locks.hold(worktree_path):
            index = wrepo.index
            index.add_all()
            index.write()
            tree = index.write_tree()
            parents = [] if wrepo.head_is_unborn else [wrepo.head.target]
            if parents and wrepo[parents[0]].peel(pygit2.Commit).tree_id == tree:
                return None
            sig = signature(wrepo)
            return str(wrepo.create_commit("HEAD", sig, sig, message, tree, parents))

    def commit_info(self, repo_path: str, sha: str) -> dict[str, str]:
        commit = self._commit(open_repo(repo_path), sha)
        subject = commit.message.splitlines()[0] if commit.message else ""
        return {"sha": str(commit.id), "subject": subject}

    def commit_compare(self, worktree_path: str, sha: str) -> dict[str, Any]:
        """CommitCompareResult of the worktree HEAD against ``sha``."""
        wrepo = open_repo(worktree_path)
        target = self._commit(wrepo, sha)
        if wrepo.head_is_unborn:
            raise BranchNotFound("HEAD")
        head = wrepo.head.target
        ahead, behind = wrepo.ahead_behind(head, target.id)
        return {
            "head_oid": str(head),
            "target_oid": sha,
            "ahead_from_head": int(ahead),
            "behind_from_head": int(behind),
            "is_linear": behind == 0,
        }

    def delete_file(self, worktree_path: str, file_path: str, message: str | None = None) -> str | None:
        """Delete one file from disk and the index and commit that; returns the commit sha.

        Paths with ``..``, absolute paths, paths into ``.git`` and paths that resolve outside the worktree
        through a symlinked directory are refused before anything is touched.
        """
        rel = safe_relative_path(file_path)
        wrepo = open_repo(worktree_path)
        workdir = str(wrepo.workdir)
        full = os.path.join(workdir, rel)
        if not is_within(os.path.dirname(full), workdir):
            raise InvalidPath(f"File path '{file_path}' leads outside the worktree")
        if _conflict_op(wrepo) is not None:
            raise RebaseInProgress("Cannot delete files while a conflicted operation is in progress")
        with self.locks.hold(worktree_path):
            index = wrepo.index
            tracked = rel in index
            exists = os.path.lexists(full)
            if not tracked and not exists:
                raise InvalidPath(f"File '{rel}' does not exist in the worktree")
            if os.path.isdir(full) and not os.path.islink(full):
                raise InvalidPath(f"'{rel}' is a directory, not a file")
            if exists:
                os.unlink(full)
            if not tracked:
                return None
            index.remove(rel)
            index.write()
            tree = index.write_tree()
            sig = signature(wrepo)
            parents = [] if wrepo.head_is_unborn else [wrepo.head.target]
            return str(wrepo.create_commit("HEAD", sig, sig, message or f"Delete {rel}", tree, parents))

    # -------------------------------------------------------------------------------------------- merge

    def _checkout_of(self, repo: pygit2.Repository, branch: str, linked: bool = True) -> str | None:
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
        self, repo_path: str, branch: str, target_branch: str, message: str, *, update_linked: bool = True
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
        with self.locks.hold(repo_path):
            repo = open_repo(repo_path)
            tip = self._resolve(repo, branch, local_only=True)
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
            checkout = self._checkout_of(repo, target_branch, linked=update_linked)
            if checkout is None:
                new_oid = repo.create_commit(target_ref.name, sig, sig, message, tip.tree_id, [target.id])
            else:
                new_oid = self._merge_into_checkout(repo, checkout, target, tip, sig, message, target_ref)
            branch_ref = repo.lookup_branch(branch)
            branch_ref.set_target(new_oid, f"anyon: squash merged into {target_branch}")
            log.info("squash merged %s into %s as %s", branch, target_branch, new_oid)
            return str(new_oid)

    def _merge_into_checkout(
        self,
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

    # ------------------------------------------------------------------------------------------- rebase

    def rebase(
        self,
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
        new_base, old_base = self.rebase_bases(
            repo_path, worktree_path, branch, new_base_branch, old_base_branch
        )
        with self.locks.hold(worktree_path):
            wrepo = open_repo(worktree_path)
            argv = ["rebase", "--onto", new_base, old_base]
            proc = run_git(argv, cwd=worktree_path, repo=wrepo, check=False)
            wrepo = open_repo(worktree_path)
            if proc.returncode != 0:
                if _conflict_op(wrepo) == "rebase":
                    raise rebase_conflicts(branch, new_base_branch, _conflicted_files(wrepo))
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise GitCommandFailed(
                    f"Rebase of '{branch}' onto '{new_base_branch}' failed: {detail[-1] if detail else ''}"
                )
            return str(wrepo.head.target)

    def rebase_bases(
        self,
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
        new_base = self._resolve(repo, new_base_branch)
        old_base = self._resolve(repo, old_base_branch or new_base_branch)
        wrepo = open_repo(worktree_path)
        op = _conflict_op(wrepo)
        if op == "rebase":
            raise RebaseInProgress()
        if op is not None:
            raise MergeConflicts(op, f"A {op.replace('_', '-')} is in progress; abort it first", [])
        if wrepo.head_is_detached or wrepo.head_is_unborn or wrepo.head.shorthand != branch:
            raise GitServiceError(f"The worktree at '{worktree_path}' does not have '{branch}' checked out")
        uncommitted, _ = _status_counts(wrepo)
        if uncommitted:
            raise WorktreeDirty(
                f"The worktree has {uncommitted} uncommitted change(s); commit them before rebasing"
            )
        return str(new_base.id), str(old_base.id)

    def abort_conflicts(self, worktree_path: str) -> None:
        """Abort whatever rebase, merge, cherry-pick or revert is in progress (no-op when none is)."""
        wrepo = open_repo(worktree_path)
        op = _conflict_op(wrepo)
        if op is None:
            return
        with self.locks.hold(worktree_path):
            proc = run_git(_ABORT_ARGS[op], cwd=worktree_path, repo=wrepo, check=False)
            if proc.returncode != 0 and _conflict_op(open_repo(worktree_path)) is not None:
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise GitCommandFailed(f"Aborting the {op} failed: {detail[-1] if detail else ''}")

    # ----------------------------------------------------------------------------------------- internals

    def _resolve(self, repo: pygit2.Repository, name: str, local_only: bool = False) -> pygit2.Commit:
        """The commit a branch name points at: a local branch, else a remote-tracking branch."""
        check_lookup_name(name)
        ref = repo.lookup_branch(name)
        if ref is None and not local_only:
            ref = repo.lookup_branch(name, BranchType.REMOTE)
        if ref is None:
            raise BranchNotFound(name)
        try:
            return ref.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise BranchNotFound(name) from exc

    def _commit(self, repo: pygit2.Repository, sha: str) -> pygit2.Commit:
        if not isinstance(sha, str) or not 4 <= len(sha) <= 64 or any(c not in _HEX for c in sha):
            raise CommitNotFound(f"'{sha}' is not a commit sha")
        try:
            return repo.revparse_single(sha).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise CommitNotFound(f"Commit '{sha}' not found") from exc
