"""Low-level helpers shared by the git services: opening repositories, names, identities, the CLI.

Also the two lookups every operation starts from: the commit a branch name points at
(:func:`resolve_branch`) and the commit a sha from a client names (:func:`commit_by_sha`).

Everything here is deliberately strict. Branch names are validated before they reach libgit2 or the CLI,
repositories are opened without searching parent directories (so a folder that stopped being a repository
is reported as such instead of silently resolving to an enclosing one), and the git CLI is only ever run
with an argv list, a fixed environment and no shell.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pygit2
from pygit2.enums import BranchType, RepositoryOpenFlag

from .errors import (
    BranchNotFound,
    CommitNotFound,
    GitCommandFailed,
    InvalidBranchName,
    InvalidPath,
    NotARepository,
)
from .refnames import branch_name_problem

FALLBACK_NAME = "Anyon"
FALLBACK_EMAIL = "anyon@localhost"

# Characters git itself accepts in ref names but that make a branch name dangerous to paste into a shell
# or confusing in the UI. We never use a shell, but names we *create* stay boring on purpose.
_SHELL_META = re.compile(r"[\s;&|$`<>()!'\"\\*?\[\]{}#~^:]")
_HEX = frozenset("0123456789abcdefABCDEF")


def open_repo(path: str | os.PathLike[str]) -> pygit2.Repository:
    """Open the repository (or linked worktree) rooted exactly at ``path``; no upward search."""
    p = Path(path)
    if not p.is_dir():
        raise NotARepository(f"'{p}' is not a directory")
    try:
        return pygit2.Repository(str(p), RepositoryOpenFlag.NO_SEARCH)
    except (pygit2.GitError, KeyError) as exc:
        raise NotARepository(f"'{p}' is not a git repository") from exc


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """The configured identity, or ``Anyon <anyon@localhost>`` when none is configured."""
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature(FALLBACK_NAME, FALLBACK_EMAIL)


def validate_branch_name(name: str) -> str:
    """Reject names git refuses, names that look like options, and names carrying shell metacharacters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidBranchName("Branch name must not be empty")
    if name != name.strip():
        raise InvalidBranchName(f"Branch name '{name}' has leading or trailing whitespace")
    if name.startswith("-"):
        raise InvalidBranchName(f"Branch name '{name}' must not start with '-'")
    if _SHELL_META.search(name) or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidBranchName(f"Branch name '{name}' contains characters that are not allowed")
    problem = branch_name_problem(name)
    if problem is not None:
        raise InvalidBranchName(f"'{name}' is not a valid git branch name: {problem}")
    return name


def check_lookup_name(name: str) -> str:
    """A looser check for names we only look up (existing branches may predate our naming rules)."""
    problem = branch_name_problem(name)
    if problem is not None:
        raise InvalidBranchName(f"'{name}' is not a valid git branch name: {problem}")
    return name


def resolve_branch(repo: pygit2.Repository, name: str, local_only: bool = False) -> pygit2.Commit:
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


def commit_by_sha(repo: pygit2.Repository, sha: str) -> pygit2.Commit:
    """The commit ``sha`` names; anything but 4 to 64 hex digits is refused before libgit2 parses it."""
    if not isinstance(sha, str) or not 4 <= len(sha) <= 64 or any(c not in _HEX for c in sha):
        raise CommitNotFound(f"'{sha}' is not a commit sha")
    try:
        return repo.revparse_single(sha).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise CommitNotFound(f"Commit '{sha}' not found") from exc


def safe_relative_path(file_path: str) -> str:
    """A repository-relative POSIX path with no ``..``, no absolute form and no ``.git`` component."""
    if not isinstance(file_path, str) or not file_path.strip():
        raise InvalidPath("File path must not be empty")
    if "\x00" in file_path or "\\" in file_path:
        raise InvalidPath(f"File path '{file_path}' contains characters that are not allowed")
    pure = PurePosixPath(file_path)
    if pure.is_absolute() or file_path.startswith("~"):
        raise InvalidPath(f"File path '{file_path}' must be relative to the worktree")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts:
        raise InvalidPath(f"File path '{file_path}' does not name a file")
    if ".." in parts:
        raise InvalidPath(f"File path '{file_path}' must not contain '..'")
    if parts[0] == ".git":
        raise InvalidPath(f"File path '{file_path}' points into git's own metadata")
    return "/".join(parts)


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when the fully resolved ``path`` lies inside the fully resolved ``root`` (symlinks resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def rfc3339(seconds: int) -> str:
    """A git timestamp as RFC 3339 UTC with a ``Z`` suffix, the wire format of every timestamp."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_git(
    args: Sequence[str],
    cwd: str | os.PathLike[str],
    repo: pygit2.Repository | None = None,
    check: bool = True,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run the git CLI with an argv list (never a shell), no prompts, no editor, no hooks, a C locale.

    Only the repository's own configuration is read (no system or global file), so the user's global
    filters or hooks never run on the server either.

    With ``repo``, the identity libgit2 resolves for it (repository, then the user's global config, then
    the fallback) is passed with ``-c``, so configured users keep authoring their own commits.
    """
    argv = ["git"]
    if repo is not None:
        sig = signature(repo)  # the CLI reads no global config: the identity libgit2 found is passed on
        argv += ["-c", f"user.name={sig.name}", "-c", f"user.email={sig.email}"]
    argv += list(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            # no system or global configuration, hooks or prompts: only the repository's own config,
            # and the CLI only ever runs in repositories no agent can write (THREAT-MODEL rule 2)
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "core.hooksPath",
            "GIT_CONFIG_VALUE_0": os.devnull,
            "GIT_ASKPASS": "true",
            "SSH_ASKPASS": "true",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_EDITOR": "true",
            "GIT_SEQUENCE_EDITOR": "true",
            "GIT_MERGE_AUTOEDIT": "no",
            "LC_ALL": "C",
        }
    )
    try:
        proc = subprocess.run(
            argv, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitCommandFailed(f"git {args[0] if args else ''} could not run: {exc}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitCommandFailed(f"git {args[0]} failed: {detail[-1] if detail else proc.returncode}")
    return proc
