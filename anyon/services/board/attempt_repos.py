"""Git work on an attempt's checkout, done where it is safe for the mode.

Local mode (:class:`SharedAttemptRepos`): the attempt is a linked worktree of the project; the server's
git (libgit2, and the CLI for rebase) works in it directly, as the user who runs the agent would.

Cloud mode (:class:`IsolatedAttemptRepos`): the worktree holds the attempt's own repository, written by an
untrusted agent (:mod:`anyon.services.git.isolation`). Everything that writes it — the commit after each
process, a retry's reset, deleting a file, rebase, abort, rename — runs with the git CLI *inside the
attempt's container* (THREAT-MODEL rule 2), and :meth:`IsolatedAttemptRepos.sync` brings its commits back to
the project as data. The server reads the checkout only through its host-owned view.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from anyon.services.git import GitService
from anyon.services.git.errors import (
    GitCommandFailed,
    GitServiceError,
    InvalidPath,
    MergeConflicts,
    RebaseInProgress,
)
from anyon.services.git.isolation import (
    EXPORT_LIMIT_BYTES,
    EXPORT_SCRIPT,
    import_objects,
    move_branch,
    objects_dir,
    parse_export,
    synced_tip,
)
from anyon.services.git.rebase import rebase_conflicts
from anyon.services.git.repo import open_repo, safe_relative_path, signature, validate_branch_name
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.runners.base import RunnerError


@dataclass(frozen=True)
class Checkout:
    """One attempt's checkout: what every operation here needs, read once from the database."""

    attempt_id: uuid.UUID
    repo_path: str
    worktree: str
    branch: str


class AttemptShell(Protocol):
    """The attempt's container, as far as git work in it goes (the Docker runner)."""

    async def ensure_container(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str: ...

    async def run_captured(
        self,
        attempt_id: str,
        argv: list[str],
        cwd: str,
        env: dict[str, str] | None = None,
        *,
        timeout: float = 300.0,
        limit: int = 64 * 1024 * 1024,
    ) -> tuple[int, bytes, bytes]: ...


class SharedAttemptRepos:
    """Local mode: the server's git works in the linked worktree itself."""

    isolated = False

    def __init__(self, git: GitService, worktrees: WorktreeManager) -> None:
        self._git = git
        self._worktrees = worktrees

    def view(self, checkout: Checkout) -> str:
        """The path the server opens the checkout at with libgit2."""
        return self._worktrees.view(checkout.repo_path, checkout.worktree)

    async def sync(self, checkout: Checkout) -> None:
        """Bring the attempt's commits to the project's branch (nothing to do: the refs are shared)."""

    async def commit_all(self, checkout: Checkout, message: str) -> str | None:
        return await asyncio.to_thread(self._git.commit_all, checkout.worktree, message)

    async def reset_hard(self, checkout: Checkout, oid: str) -> None:
        await asyncio.to_thread(self._git.reset_hard, checkout.worktree, oid)

    async def delete_file(self, checkout: Checkout, file_path: str) -> None:
        await asyncio.to_thread(self._git.delete_file, checkout.worktree, file_path)

    async def rebase(self, checkout: Checkout, new_base: str, old_base: str) -> None:
        c = checkout
        await asyncio.to_thread(self._git.rebase, c.repo_path, c.worktree, c.branch, new_base, old_base)

    async def abort_conflicts(self, checkout: Checkout) -> None:
        await asyncio.to_thread(self._git.abort_conflicts, checkout.worktree)

    async def conflict_state(self, checkout: Checkout) -> dict[str, Any]:
        return await asyncio.to_thread(self._git.conflict_state, checkout.worktree)

    async def rename_branch(self, checkout: Checkout, new_name: str) -> None:
        c = checkout
        await asyncio.to_thread(self._git.rename_branch, c.repo_path, c.branch, new_name, c.worktree)


# --- the scripts the server runs in an isolated attempt's container (argv after the script: "$@") ---

_CONFLICT_OP = r"""
g=$(git rev-parse --git-dir) || exit 90
op=
if [ -d "$g/rebase-merge" ] || [ -d "$g/rebase-apply" ]; then op=rebase
elif [ -f "$g/MERGE_HEAD" ]; then op=merge
elif [ -f "$g/CHERRY_PICK_HEAD" ]; then op=cherry_pick
elif [ -f "$g/REVERT_HEAD" ]; then op=revert
fi
"""

_CONFLICT_STATE = (
    _CONFLICT_OP
    + r"""
echo "${op:-none}"
git ls-files -u -z
"""
)

_COMMIT_ALL = (
    _CONFLICT_OP
    + r"""
[ -n "$op" ] && { echo "$op"; exit 91; }
git add -A || exit 1
git diff --cached --quiet && { echo none; exit 0; }
git commit -q --no-verify -m "$1" || exit 1
git rev-parse HEAD
"""
)

_DELETE_FILE = (
    _CONFLICT_OP
    + r"""
[ -n "$op" ] && { echo "$op"; exit 91; }
f=$1
if [ -d "$f" ] && [ ! -L "$f" ]; then echo "'$f' is a directory, not a file" >&2; exit 92; fi
if git ls-files --error-unmatch -- "$f" >/dev/null 2>&1; then
  git rm -q -f -- "$f" && git commit -q --no-verify -m "$2" -- "$f"
elif [ -e "$f" ] || [ -L "$f" ]; then rm -f -- "$f"
else echo "File '$f' does not exist in the worktree" >&2; exit 92
fi
"""
)

_ABORT = (
    _CONFLICT_OP
    + r"""
case "$op" in
  rebase) git rebase --abort ;;
  merge) git merge --abort ;;
  cherry_pick) git cherry-pick --abort ;;
  revert) git revert --abort ;;
esac
"""
)

_FOLLOW = r"""
if [ "$(git symbolic-ref -q HEAD)" = "refs/heads/$1" ]; then git reset -q --keep "$2"
else git update-ref "refs/heads/$1" "$2" "$3"
fi
"""

_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    "LC_ALL": "C",
}


class IsolatedAttemptRepos(SharedAttemptRepos):
    """Cloud mode: git writes run in the attempt's container; its commits are imported as data."""

    isolated = True

    def __init__(self, git: GitService, worktrees: WorktreeManager, shell: AttemptShell) -> None:
        super().__init__(git, worktrees)
        self._shell = shell
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    def _lock(self, attempt_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(attempt_id, asyncio.Lock())

    async def _run(
        self, checkout: Checkout, script: str, *args: str, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        identity = await asyncio.to_thread(self._identity, checkout.repo_path)
        code, out, err = await self._in_container(
            checkout, script, args, {**identity, **(env or {})}, limit=1 << 20
        )
        return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    async def _in_container(
        self, checkout: Checkout, script: str, args: tuple[str, ...], env: dict[str, str], *, limit: int
    ) -> tuple[int, bytes, bytes]:
        """Run ``script`` with git in the attempt's container (provisioned if it is gone)."""
        c = checkout
        try:
            shared = await asyncio.to_thread(objects_dir, c.repo_path)
            await self._shell.ensure_container(str(c.attempt_id), c.worktree, shared)
            return await self._shell.run_captured(
                str(c.attempt_id),
                ["/bin/sh", "-c", script, "anyon-git", *args],
                c.worktree,
                {**_GIT_ENV, **env},
                limit=limit,
            )
        except RunnerError as exc:
            raise GitServiceError(f"The attempt's container cannot run git: {exc}") from exc

    @staticmethod
    def _identity(repo_path: str) -> dict[str, str]:
        """The project's identity (read by the host from the project's config) for commits in the attempt."""
        sig = signature(open_repo(repo_path))
        return {
            "GIT_AUTHOR_NAME": sig.name,
            "GIT_AUTHOR_EMAIL": sig.email,
            "GIT_COMMITTER_NAME": sig.name,
            "GIT_COMMITTER_EMAIL": sig.email,
        }

    @staticmethod
    def _failed(what: str, err: str) -> GitCommandFailed:
        lines = err.strip().splitlines()
        return GitCommandFailed(f"{what} failed: {lines[-1] if lines else 'git exited with an error'}")

    # -- bringing commits back -------------------------------------------------------------------
    async def sync(self, checkout: Checkout) -> None:
        """Import the attempt's new commits into the project and move its branch there.

        When the agent committed nothing since the last sync but the project's branch moved (a merge
        into it, or the squash merge of the attempt itself), the attempt's repository follows instead.
        """
        async with self._lock(checkout.attempt_id):
            await self._sync(checkout)

    async def _sync(self, checkout: Checkout) -> None:
        c = checkout
        view = await asyncio.to_thread(self.view, c)
        marked = await asyncio.to_thread(synced_tip, view)
        project_tip = await asyncio.to_thread(self._project_tip, c)
        known = " ".join(sorted({k for k in (marked, project_tip) if k}))
        status, raw, raw_err = await self._shell_export(c, known)
        if status != 0:
            raise self._failed("Reading the attempt's commits", raw_err.decode("utf-8", "replace"))
        export = parse_export(raw)
        if export.tip is None:
            return  # the branch is gone from the attempt's repository: leave the project's alone
        if export.tip == marked:
            if project_tip and project_tip != export.tip:
                code, _, err = await self._run(c, _FOLLOW, c.branch, project_tip, export.tip)
                if code != 0:
                    raise self._failed("Updating the attempt's branch", err)
                await asyncio.to_thread(move_branch, c.repo_path, view, c.branch, project_tip)
            return
        tip = await asyncio.to_thread(import_objects, c.repo_path, export)
        if tip is not None:
            await asyncio.to_thread(move_branch, c.repo_path, view, c.branch, tip)

    async def _shell_export(self, checkout: Checkout, known: str) -> tuple[int, bytes, bytes]:
        args, env = (checkout.branch,), {"KNOWN": known}
        return await self._in_container(checkout, EXPORT_SCRIPT, args, env, limit=EXPORT_LIMIT_BYTES)

    def _project_tip(self, checkout: Checkout) -> str | None:
        ref = open_repo(checkout.repo_path).lookup_branch(checkout.branch)
        return str(ref.target) if ref is not None else None

    # -- writes, in the container ----------------------------------------------------------------
    async def commit_all(self, checkout: Checkout, message: str) -> str | None:
        async with self._lock(checkout.attempt_id):
            code, out, err = await self._run(checkout, _COMMIT_ALL, message)
            if code == 91:
                raise _in_progress(out.strip(), "commit")
            if code != 0:
                raise self._failed("Committing the attempt's changes", err)
            sha = out.strip().splitlines()[-1] if out.strip() else "none"
            await self._sync(checkout)
        return None if sha == "none" else sha

    async def reset_hard(self, checkout: Checkout, oid: str) -> None:
        async with self._lock(checkout.attempt_id):
            code, _, err = await self._run(checkout, 'git reset -q --hard "$1"', oid)
            if code != 0:
                raise self._failed(f"Resetting the attempt to {oid[:12]}", err)
            await self._sync(checkout)

    async def delete_file(self, checkout: Checkout, file_path: str) -> None:
        rel = safe_relative_path(file_path)
        async with self._lock(checkout.attempt_id):
            code, out, err = await self._run(checkout, _DELETE_FILE, rel, f"Delete {rel}")
            if code == 91:
                raise _in_progress(out.strip(), "delete files")
            if code == 92:
                raise InvalidPath(err.strip() or f"Cannot delete '{rel}'")
            if code != 0:
                raise self._failed(f"Deleting {rel}", err)
            await self._sync(checkout)

    async def rebase(self, checkout: Checkout, new_base: str, old_base: str) -> None:
        c = checkout
        async with self._lock(c.attempt_id):
            await self._sync(c)
            state = await self._conflict_state(c)
            if state["conflict_op"] is not None:
                raise _in_progress(state["conflict_op"], "rebase")
            view = await asyncio.to_thread(self.view, c)
            new_oid, old_oid = await asyncio.to_thread(
                self._git.rebase_bases, c.repo_path, view, c.branch, new_base, old_base
            )
            code, _, err = await self._run(c, 'git rebase -q --onto "$1" "$2"', new_oid, old_oid)
            if code != 0:
                state = await self._conflict_state(c)
                if state["conflict_op"] == "rebase":
                    raise rebase_conflicts(c.branch, new_base, state["conflicted_files"])
                raise self._failed(f"Rebase of '{c.branch}' onto '{new_base}'", err)
            await self._sync(c)

    async def abort_conflicts(self, checkout: Checkout) -> None:
        async with self._lock(checkout.attempt_id):
            code, _, err = await self._run(checkout, _ABORT)
            if code != 0:
                raise self._failed("Aborting the operation in progress", err)

    async def conflict_state(self, checkout: Checkout) -> dict[str, Any]:
        async with self._lock(checkout.attempt_id):
            return await self._conflict_state(checkout)

    async def _conflict_state(self, checkout: Checkout) -> dict[str, Any]:
        code, out, err = await self._run(checkout, _CONFLICT_STATE)
        if code != 0:
            raise self._failed("Reading the attempt's git state", err)
        first, _, rest = out.partition("\n")
        found = first.strip()
        op = found if found in ("rebase", "merge", "cherry_pick", "revert") else None
        # `git ls-files -u` (the index only: no filter or hook of the agent's config runs) lists each
        # unmerged stage as "<mode> <sha> <stage>\t<path>"
        files = sorted({entry.partition("\t")[2] for entry in rest.split("\0") if "\t" in entry})
        return {"is_rebase_in_progress": op == "rebase", "conflict_op": op, "conflicted_files": files}

    async def rename_branch(self, checkout: Checkout, new_name: str) -> None:
        c = checkout
        validate_branch_name(new_name)
        async with self._lock(c.attempt_id):
            if (await self._conflict_state(c))["is_rebase_in_progress"]:
                raise RebaseInProgress("Cannot rename the branch while a rebase is in progress")
            await self._sync(c)
            code, _, err = await self._run(c, 'git branch -m "$1" "$2"', c.branch, new_name)
            if code != 0:
                raise self._failed(f"Renaming '{c.branch}'", err)
            try:
                view = await asyncio.to_thread(self.view, c)
                await asyncio.to_thread(self._git.rename_branch, c.repo_path, c.branch, new_name, view)
            except BaseException:
                await self._run(c, 'git branch -m "$1" "$2"', new_name, c.branch)
                raise


def _in_progress(op: str, doing: str) -> GitServiceError:
    if op == "rebase":
        return RebaseInProgress(f"Cannot {doing} while a rebase is in progress in this worktree")
    name = op.replace("_", "-")
    return MergeConflicts(op, f"Cannot {doing} while a {name} is in progress", [])


AttemptRepos = SharedAttemptRepos
"""The type callers depend on; :class:`IsolatedAttemptRepos` is the cloud mode's."""
