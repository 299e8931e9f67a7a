"""An attempt's own repository (cloud mode) and bringing its commits back to the project as data.

Why: a container that could write the project's ``.git`` could plant configuration (``filter.*.smudge``,
``core.fsmonitor``, hooks, ``include.path``…) that the server's git later runs on the host, and could move
other attempts' branches (THREAT-MODEL rule 1). So an isolated attempt's worktree holds a repository of its
own: its own config, refs, index and objects, borrowing the project's objects through
``objects/info/alternates`` (mounted read-only in the container at the same path).

The server never opens that repository. It reads the attempt through the linked worktree's metadata in
``<project>/.git/worktrees/<name>`` (host-owned; the *view*), and learns of the agent's commits only through
an export the container prints (:data:`EXPORT_SCRIPT`): the tip of the branch and the new objects, which
:func:`import_objects` writes into the project's object store with libgit2, checking that every object hashes
to its id, parses, and that nothing it points at is missing, before it moves ``refs/heads/<branch>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

import pygit2
from pygit2.enums import ObjectType

from .errors import GitServiceError
from .repo import open_repo, signature

log = logging.getLogger(__name__)

#: Host-owned file in the view: the attempt tip the server last agreed with (imported or pushed).
SYNC_MARK = "anyon-synced"

#: Largest export the server accepts from one attempt in one go (objects are held in memory meanwhile).
EXPORT_LIMIT_BYTES = 512 * 1024 * 1024

_GITLINK_MODE = 0o160000
_TYPES = {
    "commit": ObjectType.COMMIT,
    "tree": ObjectType.TREE,
    "blob": ObjectType.BLOB,
    "tag": ObjectType.TAG,
}

#: Runs inside the attempt's container (``sh -c SCRIPT export <branch> <known sha>...``): prints the
#: branch tip, then ``git cat-file --batch`` records of the objects the known commits do not reach.
#: Known shas the attempt's repository cannot see (its alternates were removed) are left out.
EXPORT_SCRIPT = r"""
b=$1; shift
tip=$(git rev-parse -q --verify "refs/heads/$b^{commit}") || { echo none; exit 0; }
echo "$tip"
set --
for k in $KNOWN; do git cat-file -e "$k^{commit}" 2>/dev/null && set -- "$@" "$k"; done
git rev-list --objects "$tip" --not "$@" -- | cut -c1-40 | git cat-file --batch
"""

_CONFIG = """[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = true
"""


class ImportRefused(GitServiceError):
    """The attempt's export is not a valid set of git objects for its branch."""


def view_dir(repo: pygit2.Repository, name: str) -> str:
    return os.path.join(repo.path, "worktrees", name)


def objects_dir(repo_path: str) -> str:
    """The project's object store, resolved: what an isolated attempt borrows (and its container mounts)."""
    try:
        return os.path.realpath(os.path.join(pygit2.Repository(repo_path).path, "objects"))
    except pygit2.GitError as exc:
        raise GitServiceError(f"{repo_path} is not a git repository: {exc}") from None


def isolate_checkout(repo: pygit2.Repository, name: str, worktree: str, branch: str) -> None:
    """Replace the linked worktree's ``.git`` pointer file with a repository of the attempt's own.

    Runs right after ``git worktree add`` (nothing runs in the attempt yet) or on an older worktree being
    migrated (where an agent may still be running). The new ``.git`` is built in a fresh directory
    (``mkdtemp``), held open and written only relative to that descriptor with ``O_NOFOLLOW``, so no link
    swapped in meanwhile can redirect a write; it is then renamed into place. Its index is the host view's,
    so ``git status`` in the container starts clean without rereading every file.
    """
    ref = repo.lookup_branch(branch)
    if ref is None:
        raise GitServiceError(f"Branch '{branch}' does not exist")
    tip = str(ref.target)
    view = view_dir(repo, name)
    dotgit = os.path.join(worktree, ".git")
    tmp = tempfile.mkdtemp(prefix=".anyon-git-", dir=worktree)
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.chmod(fd, os.stat(worktree).st_mode & 0o777)
            for sub in ("objects/info", "objects/pack", "refs/tags", f"refs/heads/{branch}/.."):
                os.close(_open_dirs(fd, os.path.normpath(sub)))
            _write_at(fd, "HEAD", f"ref: refs/heads/{branch}\n".encode())
            _write_at(fd, "config", (_CONFIG + _identity_section(repo)).encode())
            _write_at(fd, "objects/info/alternates", (objects_dir(str(repo.path)) + "\n").encode())
            _write_at(fd, f"refs/heads/{branch}", (tip + "\n").encode())
            index = os.path.join(view, "index")
            if os.path.isfile(index) and not os.path.islink(index):
                with open(index, "rb") as fh:
                    _write_at(fd, "index", fh.read())
        finally:
            os.close(fd)
        if os.path.islink(dotgit) or os.path.isfile(dotgit):
            os.unlink(dotgit)
        os.rename(tmp, dotgit)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mark_synced(view, tip)


def _open_dirs(root: int, rel: str) -> int:
    """Create and open ``rel`` under the directory ``root``, never through a link; the caller closes it."""
    fd = os.dup(root)
    for part in [p for p in rel.split("/") if p not in ("", ".")]:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=fd)
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _write_at(root: int, rel: str, data: bytes) -> None:
    parent, _, leaf = rel.rpartition("/")
    dfd = _open_dirs(root, parent)
    try:
        out = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
        with os.fdopen(out, "wb") as fh:
            fh.write(data)
    finally:
        os.close(dfd)


def _identity_section(repo: pygit2.Repository) -> str:
    """The project's commit identity, so commits the agent makes itself are authored as the project's."""
    sig = signature(repo)

    def quoted(value: str) -> str:
        clean = "".join(c for c in value if c >= " " and c != "\x7f")
        return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"[user]\n\tname = {quoted(sig.name)}\n\temail = {quoted(sig.email)}\n"


def synced_tip(view: str) -> str | None:
    try:
        with open(os.path.join(view, SYNC_MARK), encoding="ascii") as fh:
            text = fh.read(100).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _is_sha(text) else None


def mark_synced(view: str, tip: str) -> None:
    path = os.path.join(view, SYNC_MARK)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(tip + "\n")
    os.replace(tmp, path)


def _is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class Export:
    """What the container printed: the branch tip (None when the branch is gone) and raw object records."""

    tip: str | None
    records: list[tuple[str, str, bytes]]


def parse_export(data: bytes) -> Export:
    """Parse :data:`EXPORT_SCRIPT` output; anything malformed is refused, nothing is trusted."""
    head, sep, rest = data.partition(b"\n")
    first = head.decode("ascii", "replace").strip()
    if first == "none":
        return Export(None, [])
    if not sep or not _is_sha(first):
        raise ImportRefused("The attempt's repository did not report its branch tip")
    records: list[tuple[str, str, bytes]] = []
    pos = 0
    while pos < len(rest):
        end = rest.find(b"\n", pos)
        if end < 0:
            raise ImportRefused("The attempt's export ends in the middle of a record")
        fields = rest[pos:end].decode("ascii", "replace").split(" ")
        if len(fields) == 2 and fields[1] == "missing":
            raise ImportRefused(f"The attempt's repository lacks object {fields[0][:40]}")
        if len(fields) != 3 or not _is_sha(fields[0]) or fields[1] not in _TYPES or not fields[2].isdigit():
            raise ImportRefused("The attempt's export has a malformed object header")
        size = int(fields[2])
        start, stop = end + 1, end + 1 + size
        if stop + 1 > len(rest) or rest[stop : stop + 1] != b"\n":
            raise ImportRefused(f"Object {fields[0]} in the attempt's export is truncated")
        records.append((fields[0], fields[1], rest[start:stop]))
        pos = stop + 1
    return Export(first, records)


def import_objects(repo_path: str, export: Export) -> str | None:
    """Write the export's objects into the project's store and check them; returns the verified tip.

    Every object must hash to the id it was sent under and parse; every commit's tree and parents, every
    tree's entries (submodule links aside) and every tag's target must then be in the store. Nothing moves
    a ref here: the caller does, once this returned.
    """
    if export.tip is None:
        return None
    repo = open_repo(repo_path)
    odb = repo.odb
    written: list[pygit2.Oid] = []
    for sha, kind, data in export.records:
        oid = odb.write(_TYPES[kind], data)
        if str(oid) != sha:
            raise ImportRefused(f"Object {sha} in the attempt's export does not match its content")
        written.append(oid)
    for oid in written:
        try:
            obj = repo[oid]
            _check_links(odb, obj)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise ImportRefused(f"Object {oid} from the attempt does not parse: {exc}") from None
    try:
        tip = repo[export.tip].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise ImportRefused(f"The attempt's branch tip {export.tip} is not a commit: {exc}") from None
    if str(tip.id) != export.tip:
        raise ImportRefused(f"The attempt's branch tip {export.tip} is not a commit")
    _check_links(odb, tip)
    return export.tip


def _check_links(odb: pygit2.Odb, obj: pygit2.Object | pygit2.Commit) -> None:
    missing: list[pygit2.Oid] = []
    if isinstance(obj, pygit2.Commit):
        missing = [o for o in (obj.tree_id, *obj.parent_ids) if o not in odb]
    elif isinstance(obj, pygit2.Tree):
        missing = [e.id for e in obj if e.filemode != _GITLINK_MODE and e.id not in odb]
    elif isinstance(obj, pygit2.Tag):
        missing = [obj.target] if obj.target not in odb else []
    if missing:
        raise ImportRefused(f"Object {obj.id} from the attempt points at missing object {missing[0]}")


def move_branch(repo_path: str, view: str, branch: str, tip: str) -> None:
    """Point the project's ``refs/heads/<branch>`` at ``tip`` and reset the view's index to its tree.

    The index is the server's own (in the view); resetting it keeps "uncommitted changes" meaning
    changes since the tip the agent committed.
    """
    repo = open_repo(repo_path)
    commit = repo[tip].peel(pygit2.Commit)
    repo.references.create(f"refs/heads/{branch}", commit.id, force=True)
    try:
        vrepo = open_repo(view)
        index = vrepo.index
        index.read_tree(commit.tree)
        index.write()
    except (GitServiceError, pygit2.GitError, OSError) as exc:
        log.warning("could not refresh the index of %s: %s", view, exc)
    mark_synced(view, tip)
