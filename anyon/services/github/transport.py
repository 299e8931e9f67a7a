"""Clone, push and fetch through libgit2, the token handed over only in a credentials callback.

The token is never part of a URL, an argv or a log line: libgit2 asks for credentials when the server
wants them and gets ``x-access-token``/token (GitHub's documented form), once — a second request means
the token was refused, and the operation stops instead of looping. No proxy is used (``proxy=None``) and
libgit2 runs no hooks, so pushing or cloning never executes anything from a repository.

Push semantics (``POST …/push`` and PR creation): a fast-forward is pushed as is. A branch that was
rewritten here (a rebase) is force-pushed *with a lease*: only when the remote branch is still exactly
what this server pushed last (``refs/remotes/origin/<branch>``); commits someone else pushed are never
overwritten, and the push is refused with a message that says so. libgit2 has no lease of its own: the
remote tip is read right before the push, which leaves a window of one round trip.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import Any

import pygit2
from pygit2.enums import CredentialType

from anyon.services.errors import ServiceError
from anyon.services.git.repo import open_repo, validate_branch_name
from anyon.services.github.remotes import RemoteRepo

log = logging.getLogger(__name__)

TOKEN_USER = "x-access-token"


class PushRejected(ServiceError):
    """The remote refused the branch, or it has commits a push would overwrite."""


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, token: str | None, what: str, deadline: float | None = None) -> None:
        super().__init__()
        self._token = token
        self._asked = 0
        self._what = what
        self._last_log = 0.0
        self._deadline = deadline
        self.rejected: dict[str, str] = {}

    def _in_time(self) -> None:
        """Stop a transfer past its deadline: libgit2 aborts when a callback raises."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise ServiceError(f"{self._what} took too long")

    def sideband_progress(self, string: str) -> None:
        self._in_time()

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        self._in_time()
        self._asked += 1
        if not self._token:
            raise ServiceError("GitHub needs a token for this repository: sign in or set a personal token")
        if self._asked > 1:
            raise ServiceError(
                "GitHub refused the token (expired, revoked or without access to this repository)"
            )
        if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise ServiceError("The remote asked for a kind of credentials other than a token")
        return pygit2.UserPass(TOKEN_USER, self._token)

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message

    def transfer_progress(self, stats: Any) -> None:
        self._in_time()
        now = time.monotonic()
        if now - self._last_log >= 2.0 and stats.total_objects:
            self._last_log = now
            log.info(
                "%s: %d/%d objects received, %d/%d indexed",
                self._what,
                stats.received_objects,
                stats.total_objects,
                stats.indexed_objects,
                stats.total_objects,
            )


def _git_message(exc: Exception, token: str | None) -> str:
    text = str(exc) or type(exc).__name__
    if token:
        text = text.replace(token, "***")
    return text


def _remote(repo: pygit2.Repository, remote: RemoteRepo, what: str = "push") -> Any:
    handle = repo.remotes.create_anonymous(remote.url)
    if handle.url != remote.url:  # url.<base>.insteadOf in the repository config rewrote it
        raise ServiceError(f"The repository's git config rewrites the remote URL; refusing to {what} there")
    return handle


def _remote_tip(handle: Any, callbacks: _Callbacks, ref: str, token: str | None) -> str | None:
    try:
        heads = handle.list_heads(callbacks=callbacks)
    except ServiceError:
        raise
    except (pygit2.GitError, OSError) as exc:
        raise ServiceError(f"Could not reach the remote: {_git_message(exc, token)}") from None
    for head in heads:
        if head.name == ref:
            return str(head.oid)
    return None


def push_branch(
    repo_path: str, branch: str, remote: RemoteRepo, token: str | None, remote_name: str = "origin"
) -> str:
    """Push ``branch`` of the repository at ``repo_path``; returns the pushed commit id."""
    validate_branch_name(branch)
    repo = open_repo(repo_path)
    local_ref = repo.lookup_branch(branch)
    if local_ref is None:
        raise ServiceError(f"Branch '{branch}' does not exist in the project repository")
    local = local_ref.peel(pygit2.Commit).id
    ref = f"refs/heads/{branch}"
    lease_name = f"refs/remotes/{remote_name}/{branch}"
    handle = _remote(repo, remote)
    callbacks = _Callbacks(token, f"push {branch}")
    tip = _remote_tip(handle, callbacks, ref, token)
    force = False
    if tip is not None and tip != str(local):
        fast_forward = tip in repo and repo.descendant_of(local, pygit2.Oid(hex=tip))
        if not fast_forward:
            lease = repo.references.get(lease_name)
            if lease is None or str(lease.target) != tip:
                raise PushRejected(
                    f"Push of '{branch}' rejected: the remote branch has commits this attempt does not have "
                    "(non-fast-forward). Pull or rebase onto the remote branch, or push it under another "
                    "name."
                )
            force = True  # rewritten here since our last push, and nobody else pushed: lease holds
    if tip != str(local):
        callbacks = _Callbacks(token, f"push {branch}")
        # a fresh connection: the one that listed the heads is a fetch connection, and libgit2's smart
        # HTTP transport refuses to push over it ("this operation is only valid for push")
        handle = _remote(repo, remote)
        spec = f"{'+' if force else ''}{ref}:{ref}"
        try:
            handle.push([spec], callbacks=callbacks)
        except ServiceError:
            raise
        except (pygit2.GitError, OSError) as exc:
            message = _git_message(exc, token)
            if "non-fast" in message or "fastforward" in message.replace("-", ""):
                raise PushRejected(f"Push of '{branch}' rejected (non-fast-forward): {message}") from None
            raise ServiceError(f"Push of '{branch}' failed: {message}") from None
        if callbacks.rejected:
            reason = "; ".join(callbacks.rejected.values())
            raise PushRejected(f"Push of '{branch}' rejected by the remote: {reason}")
    repo.references.create(lease_name, local, force=True)
    return str(local)


def clone(remote: RemoteRepo, destination: str, token: str | None) -> None:
    """Clone into ``destination`` (which must not exist) through a temporary sibling, renamed at the end.

    A failure or an interruption leaves nothing at ``destination`` and removes the partial clone.
    """
    parent = os.path.dirname(destination)
    if os.path.lexists(destination):
        raise ServiceError(f"The folder {destination} already exists; choose another project name")
    try:
        os.makedirs(parent, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(destination)}.clone-", dir=parent)
    except OSError as exc:
        raise ServiceError(f"Cannot create the workspace folder {parent}: {exc.strerror}") from None
    target = os.path.join(scratch, "repo")
    try:
        callbacks = _Callbacks(token, f"clone {remote.owner}/{remote.name}")
        try:
            pygit2.clone_repository(remote.url, target, callbacks=callbacks)
        except ServiceError:
            raise
        except (pygit2.GitError, OSError, ValueError) as exc:
            raise ServiceError(
                f"Cloning {remote.owner}/{remote.name} failed: {_git_message(exc, token)}"
            ) from None
        try:
            os.rename(target, destination)
        except OSError as exc:
            raise ServiceError(f"Cannot move the clone to {destination}: {exc.strerror}") from None
        log.info("cloned %s/%s into %s", remote.owner, remote.name, destination)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_refs(
    repo_path: str, remote: RemoteRepo, token: str | None, refspecs: list[str], timeout: float
) -> None:
    """Fetch ``refspecs`` (``+refs/heads/<b>:<ref>``) from ``remote`` into the repository at ``repo_path``.

    Read-only towards the remote; the only writes here are the objects and the refspecs' destinations.
    Gives up (:class:`ServiceError`) once ``timeout`` seconds have passed while data still flows; a
    connection that hangs before the first byte is the caller's to stop waiting for.
    """
    repo = open_repo(repo_path)
    handle = _remote(repo, remote, "fetch")
    callbacks = _Callbacks(token, f"fetch from {remote.owner}/{remote.name}", time.monotonic() + timeout)
    try:
        handle.fetch(refspecs, message="anyon: fetch for branch status", callbacks=callbacks)
    except ServiceError:
        raise
    except (pygit2.GitError, OSError, ValueError) as exc:
        raise ServiceError(
            f"Fetching from {remote.owner}/{remote.name} failed: {_git_message(exc, token)}"
        ) from None
