"""The Docker runner against a real Docker Engine and the locally built test image.

Every container a test creates carries an ``anyon.instance`` label starting with ``test-``; the fixture
removes them after each test (even a failed one) and before the module, so nothing is leaked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from anyon.config.model import DockerSettings
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.runners import ExecutableNotFound, RunnerError, RunningProcess
from tests.conftest import IN_CI, require_docker

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("ANYON_TEST_IMAGE", "anyon-test-runner:latest")
TEST_INSTANCE_PREFIX = "test-"
# as root the container runs as an unprivileged uid, so ownership and permissions are really tested
UID, GID = (1000, 1000) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def _api() -> Any:
    import docker

    return docker.APIClient(version="auto", timeout=30)


def _remove_test_containers(instances: set[str] | None = None) -> None:
    api = _api()
    try:
        for info in api.containers(all=True, filters={"label": "anyon.managed=1"}):
            instance = info["Labels"].get("anyon.instance", "")
            if instance.startswith(TEST_INSTANCE_PREFIX) and (instances is None or instance in instances):
                api.remove_container(info["Id"], force=True, v=True)
    finally:
        api.close()


@pytest.fixture(scope="module", autouse=True)
def docker_engine() -> Iterator[None]:
    require_docker()
    api = _api()
    try:
        api.inspect_image(IMAGE)
    except Exception:
        reason = f"test image {IMAGE} is missing: run `bash scripts/build-test-image.sh`"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        api.close()
    _remove_test_containers()  # leftovers of an interrupted earlier run
    yield
    _remove_test_containers()


@pytest.fixture
def make_runner(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Builds DockerRunners with test settings; removes every container they created afterwards."""
    from anyon.services.runners.docker import DockerRunner

    instances: set[str] = set()
    runners: list[DockerRunner] = []

    def make(
        instance: str | None = None, host_env: dict[str, str] | None = None, **overrides: Any
    ) -> DockerRunner:
        settings = dataclasses.replace(
            DockerSettings(
                image=IMAGE,
                user=f"{UID}:{GID}",
                network="none",
                memory=256 * 1024**2,
                memory_swap=256 * 1024**2,
                cpus=1.0,
                pids_limit=128,
                tmpfs_size=64 * 1024**2,
            ),
            **overrides,
        )
        instance = instance or f"{TEST_INSTANCE_PREFIX}{uuid.uuid4().hex[:12]}"
        instances.add(instance)
        runner = DockerRunner(settings, instance, tmp_path / "secrets", host_env=host_env)
        runners.append(runner)
        return runner

    yield make
    _remove_test_containers(instances)
    for runner in runners:
        asyncio.run(runner.close())


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", "-c", "safe.directory=*", *args], cwd=cwd, check=check, capture_output=True, text=True
    ).stdout


@pytest.fixture
def attempt_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with one commit and an isolated attempt worktree (its own repository, as in cloud)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Anyon Test")
    git(repo, "config", "user.email", "test@anyon.invalid")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    worktree = tmp_path / "worktrees" / "attempt-1"
    WorktreeManager(str(worktree.parent), isolated=True).create(
        str(repo), "anyon/attempt-1", str(worktree), "main"
    )
    if os.geteuid() == 0:
        for path in (repo, worktree):
            subprocess.run(["chown", "-R", f"{UID}:{GID}", str(path)], check=True)
    return repo, worktree


async def collect(proc: RunningProcess) -> tuple[bytes, bytes, int]:
    async def drain(stream: Any) -> bytes:
        return b"".join([chunk async for chunk in stream])

    out, err = await asyncio.gather(drain(proc.stdout), drain(proc.stderr))
    return out, err, await proc.wait()


def test_container_is_hardened_and_mounts_only_what_it_needs(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner(host_env={"LANG": "C.UTF-8", "SERVER_SECRET": "must-not-leak"})

    async def main() -> tuple[dict[str, Any], bytes]:
        cid = await runner.ensure_container("att-1", str(worktree), str(repo / ".git" / "objects"))
        inspect = await asyncio.to_thread(runner.api.inspect_container, cid)
        proc = await runner.spawn(
            [
                "sh",
                "-c",
                "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; env; touch /probe || echo ro-root",
            ],
            str(worktree),
            {},
            attempt_id="att-1",
        )
        out, _, _ = await collect(proc)
        return inspect, out

    inspect, out = asyncio.run(main())
    config, host = inspect["Config"], inspect["HostConfig"]
    assert config["User"] == f"{UID}:{GID}"
    assert config["Labels"]["anyon.managed"] == "1"
    assert config["Labels"]["anyon.instance"] == runner.instance_id
    assert config["Labels"]["anyon.attempt"] == "att-1"
    assert host["CapDrop"] == ["ALL"]
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 128
    assert host["Memory"] == 256 * 1024**2
    assert host["MemorySwap"] == 256 * 1024**2
    assert host["NanoCpus"] == 1_000_000_000
    assert set(host["Tmpfs"]) == {"/tmp", "/home/anyon"}
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert set(mounts) == {str(worktree), str(repo / ".git" / "objects"), "/tmp/anyon-secrets"}
    assert mounts[str(worktree)]["Source"] == str(worktree) and mounts[str(worktree)]["RW"]
    assert mounts[str(repo / ".git" / "objects")]["Source"] == str(repo / ".git" / "objects")
    assert not mounts[str(repo / ".git" / "objects")]["RW"]
    assert not mounts["/tmp/anyon-secrets"]["RW"]
    assert not any("docker.sock" in m["Source"] for m in inspect["Mounts"])
    text = out.decode()
    assert "CapEff:\t0000000000000000" in text
    assert "NoNewPrivs:\t1" in text
    assert "ro-root" in text
    assert "LANG=C.UTF-8" in text and "HOME=/home/anyon" in text
    assert "must-not-leak" not in text


def test_path_identity_git_status_and_commit_inside_the_container(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()
    script = (
        "set -e; echo 'from the container' > agent.txt; git status --porcelain; "
        "git add agent.txt; git commit -q -m 'agent commit'; git rev-parse HEAD"
    )

    async def main() -> tuple[bytes, bytes, int]:
        await runner.ensure_container("att-git", str(worktree), str(repo / ".git" / "objects"))
        return await collect(
            await runner.spawn(["sh", "-c", script], str(worktree), {}, attempt_id="att-git")
        )

    before = git(repo, "rev-parse", "anyon/attempt-1").strip()
    out, err, code = asyncio.run(main())
    assert code == 0, err
    lines = out.decode().split()
    assert lines[:2] == ["??", "agent.txt"]
    # the commit is the attempt's own; the project's branch moves only when the server imports it
    assert git(worktree, "log", "-1", "--format=%s").strip() == "agent commit"
    assert git(repo, "rev-parse", "anyon/attempt-1").strip() == before != lines[-1]
    assert git(repo, "cat-file", "-t", lines[-1], check=False) == ""
    assert (worktree / "agent.txt").stat().st_uid == UID
    assert (worktree / "agent.txt").stat().st_gid == GID


def test_streams_stdin_env_cwd_and_exit_code(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()
    payload = b"prompt line\n" + b"y" * 200_000 + b"\nend"
    script = (
        'printf "out:$GREETING:$(pwd)\\n"; printf "err-line\\n" >&2; cat > /tmp/in; wc -c < /tmp/in; exit 7'
    )

    async def main() -> tuple[bytes, bytes, int, int]:
        await runner.ensure_container("att-io", str(worktree), str(repo / ".git" / "objects"))
        proc = await runner.spawn(
            ["sh", "-c", script], str(worktree), {"GREETING": "hi"}, stdin=payload, attempt_id="att-io"
        )
        out, err, code = await collect(proc)
        return out, err, code, proc.pid

    out, err, code, pid = asyncio.run(main())
    assert out == f"out:hi:{worktree}\n{len(payload)}\n".encode()
    assert err == b"err-line\n"
    assert code == 7
    assert pid > 1


def test_large_output_streams_in_bounded_chunks(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> tuple[int, int, int, int]:
        await runner.ensure_container("att-big", str(worktree), str(repo / ".git" / "objects"))
        proc = await runner.spawn(
            ["sh", "-c", "head -c 20000000 /dev/zero; head -c 3000000 /dev/zero >&2"],
            str(worktree),
            {},
            attempt_id="att-big",
        )
        sizes = {"out": 0, "err": 0, "max": 0}

        async def drain(stream: Any, key: str) -> None:
            async for chunk in stream:
                sizes[key] += len(chunk)
                sizes["max"] = max(sizes["max"], len(chunk))

        await asyncio.gather(drain(proc.stdout, "out"), drain(proc.stderr, "err"))
        return sizes["out"], sizes["err"], sizes["max"], await proc.wait()

    out, err, biggest, code = asyncio.run(main())
    assert (out, err, code) == (20_000_000, 3_000_000, 0)
    assert biggest <= 64 * 1024


def test_missing_executable_or_cwd_and_unknown_attempt_are_clear_errors(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> None:
        await runner.ensure_container("att-err", str(worktree), str(repo / ".git" / "objects"))
        with pytest.raises(ExecutableNotFound, match="claude-not-installed"):
            await runner.spawn(["claude-not-installed", "-p"], str(worktree), {}, attempt_id="att-err")
        with pytest.raises(RunnerError, match="no such file or directory"):
            await runner.spawn(["true"], str(worktree / "missing"), {}, attempt_id="att-err")
        with pytest.raises(RunnerError, match="has no container"):
            await runner.spawn(["true"], str(worktree), {}, attempt_id="never-provisioned")
        with pytest.raises(RunnerError, match="needs the attempt id"):
            await runner.spawn(["true"], str(worktree), {})
        with pytest.raises(RunnerError, match="invalid attempt id"):
            await runner.ensure_container("../escape", str(worktree), str(repo / ".git" / "objects"))

    asyncio.run(main())


def test_stop_kills_a_tree_that_ignores_int_and_term_inside_the_container(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()
    agent = (
        "trap '' INT TERM; (trap '' INT TERM; exec -a stubborn-child sh -c 'while :; do sleep 1; done') & "
        "echo ready; while :; do sleep 1; done"
    )

    async def main() -> tuple[int, bool, list[str], list[str]]:
        cid = await runner.ensure_container("att-stop", str(worktree), str(repo / ".git" / "objects"))
        proc = await runner.spawn(["sh", "-c", agent], str(worktree), {}, attempt_id="att-stop")
        assert await proc.stdout.__anext__() == b"ready\n"
        before = [" ".join(p) for p in (await asyncio.to_thread(runner.api.top, cid))["Processes"]]
        code = await proc.stop(escalation_seconds=0.3)
        after = [" ".join(p) for p in (await asyncio.to_thread(runner.api.top, cid))["Processes"]]
        return code, proc.oom_killed, before, after

    code, oom, before, after = asyncio.run(main())
    assert any("trap ''" in line for line in before)
    assert code == 137
    assert not oom  # killed by us, not by the memory limit
    assert not any("trap ''" in line or "sleep 1" in line for line in after), after
    # init, the idle shell and its sleep, plus the launcher waiting for the next command
    assert len([line for line in after if "anyon-prestarted" not in line]) == 3, after


def test_cooperative_process_stops_on_sigint(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> int:
        await runner.ensure_container("att-int", str(worktree), str(repo / ".git" / "objects"))
        proc = await runner.spawn(["sleep", "60"], str(worktree), {}, attempt_id="att-int")
        return await proc.stop(escalation_seconds=5)

    assert asyncio.run(main()) == 130


def test_memory_limit_kill_is_reported_as_oom(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner(memory=48 * 1024**2, memory_swap=48 * 1024**2)

    async def main() -> tuple[int, bool, int, bool]:
        await runner.ensure_container("att-oom", str(worktree), str(repo / ".git" / "objects"))
        hog = await runner.spawn(
            ["sh", "-c", "x=aaaaaaaa; while :; do x=$x$x; done"], str(worktree), {}, attempt_id="att-oom"
        )
        _, _, code = await collect(hog)
        after = await runner.spawn(["true"], str(worktree), {}, attempt_id="att-oom")
        _, _, after_code = await collect(after)
        return code, hog.oom_killed, after_code, after.oom_killed

    code, oom, after_code, after_oom = asyncio.run(main())
    assert code == 137 and oom
    assert after_code == 0 and not after_oom  # the container survives and runs the next command


def test_secrets_directory_is_private_read_only_and_configures_git(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> tuple[bytes, bytes]:
        await runner.ensure_container("att-sec", str(worktree), str(repo / ".git" / "objects"))
        runner.write_secrets("att-sec", github_token="ghp_example", claude_credentials='{"token": "c"}')
        proc = await runner.spawn(
            [
                "sh",
                "-c",
                'git config --global --get credential.helper; echo "$GIT_CONFIG_GLOBAL $GH_TOKEN"; '
                'cat "$CLAUDE_CONFIG_PATH"; echo; echo x > /tmp/anyon-secrets/gitconfig || echo read-only',
            ],
            str(worktree),
            {},
            attempt_id="att-sec",
        )
        out, err, _ = await collect(proc)
        return out, err

    out, _ = asyncio.run(main())
    lines = out.decode().splitlines()
    assert lines[0] == "store --file=/tmp/anyon-secrets/github-credentials"
    assert lines[1] == "/tmp/anyon-secrets/gitconfig ghp_example"
    assert lines[2] == '{"token": "c"}'
    assert lines[3] == "read-only"
    secrets = runner.secrets.path("att-sec")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert (secrets / "github-credentials").read_text() == "https://x-access-token:ghp_example@github.com\n"
    for entry in secrets.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600
        assert (entry.stat().st_uid, entry.stat().st_gid) == (UID, GID)


def test_ensure_container_reuses_and_remove_tears_down(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()
    other = tmp_path / "worktrees" / "attempt-2"
    git(repo, "worktree", "add", "-q", "-b", "anyon/attempt-2", str(other))

    async def main() -> None:
        first = await runner.ensure_container("att-re", str(worktree), str(repo / ".git" / "objects"))
        assert await runner.ensure_container("att-re", str(worktree), str(repo / ".git" / "objects")) == first
        moved = await runner.ensure_container("att-re", str(other), str(repo / ".git" / "objects"))
        assert moved != first  # a different worktree needs a different mount
        assert {c["Id"] for c in await runner.containers.list("att-re")} == {moved}
        assert runner.secrets.path("att-re").is_dir()
        assert await runner.remove_container("att-re")
        assert await runner.containers.list("att-re") == []
        assert not runner.secrets.path("att-re").exists()
        assert not await runner.remove_container("att-re")  # idempotent

    asyncio.run(main())


def test_reconcile_adopts_live_attempts_and_removes_orphans(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    instance = f"{TEST_INSTANCE_PREFIX}{uuid.uuid4().hex[:12]}"
    before_restart = make_runner(instance=instance)
    bystander = make_runner()  # another server on the same daemon: never touched

    async def main() -> None:
        live = await before_restart.ensure_container("live", str(worktree), str(repo / ".git" / "objects"))
        await before_restart.ensure_container("gone", str(worktree), str(repo / ".git" / "objects"))
        before_restart.write_secrets("stale-secrets-only", "tok", None)
        foreign = await bystander.ensure_container("gone", str(worktree), str(repo / ".git" / "objects"))

        after_restart = make_runner(instance=instance)
        result = await after_restart.reconcile({"live"})
        assert result.adopted == ["live"]
        assert result.removed == ["gone", "stale-secrets-only"]
        assert [c["Id"] for c in await after_restart.containers.list()] == [live]
        assert not after_restart.secrets.path("gone").exists()
        assert [c["Id"] for c in await bystander.containers.list()] == [foreign]
        proc = await after_restart.spawn(["echo", "adopted"], str(worktree), {}, attempt_id="live")
        out, _, code = await collect(proc)
        assert (out, code) == (b"adopted\n", 0)

    asyncio.run(main())


def test_daemon_down_is_a_clear_error_and_leaves_nothing(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    from anyon.services.runners.engine_client import DockerUnavailable

    repo, worktree = attempt_repo
    runner = make_runner(host=f"unix://{tmp_path}/no-daemon.sock")

    async def main() -> None:
        with pytest.raises(DockerUnavailable, match="does not answer"):
            await runner.ping()
        with pytest.raises(DockerUnavailable, match=r"no-daemon\.sock"):
            await runner.ensure_container("att-down", str(worktree), str(repo / ".git" / "objects"))

    asyncio.run(main())
    assert not runner.secrets.path("att-down").exists()


def test_missing_image_names_it_and_how_to_build_it(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    from anyon.services.runners.engine_client import ImageMissing

    repo, worktree = attempt_repo
    runner = make_runner(image="anyon-no-such-image:never")

    async def main() -> None:
        with pytest.raises(ImageMissing, match=r"anyon-no-such-image:never.*build-test-image\.sh"):
            await runner.check_image()
        with pytest.raises(ImageMissing, match="deploy/image/Dockerfile"):
            await runner.ensure_container("att-img", str(worktree), str(repo / ".git" / "objects"))
        assert await runner.containers.list() == []

    asyncio.run(main())
    assert not runner.secrets.path("att-img").exists()


def test_an_unread_stream_blocks_the_process_instead_of_filling_memory(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> tuple[bool, int, int]:
        await runner.ensure_container("att-bp", str(worktree), str(repo / ".git" / "objects"))
        proc = await runner.spawn(
            ["head", "-c", "100000000", "/dev/zero"], str(worktree), {}, attempt_id="att-bp"
        )
        await asyncio.sleep(1.0)  # nobody reads: the pipe, the daemon and our queue fill, then it waits
        still_running = (await asyncio.to_thread(runner.api.exec_inspect, proc.id))["Running"]
        total = 0
        async for chunk in proc.stdout:
            total += len(chunk)
        async for _ in proc.stderr:
            pass
        return still_running, total, await proc.wait()

    still_running, total, code = asyncio.run(main())
    assert still_running
    assert (total, code) == (100_000_000, 0)


@pytest.mark.parametrize("prestart", [True, False], ids=["prestarted-exec", "fresh-exec"])
def test_interactive_stdin_stays_open_inside_the_container(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path], prestart: bool
) -> None:
    """An agent's protocol needs an open stdin: writes reach the process in the container while it runs."""
    repo, worktree = attempt_repo
    runner = make_runner(prestart_exec=prestart)
    script = 'while IFS= read -r line; do echo "got:$line"; done; echo eof'

    async def main() -> tuple[bytes, int, str]:
        await runner.ensure_container("att-tty", str(worktree), str(repo / ".git" / "objects"))
        waiting = ""
        if prestart:
            runner.prestart("att-tty")
            await runner.prestarts.starting["att-tty"]
            waiting = runner.prestarts.waiting["att-tty"].exec_id
        proc = await runner.spawn(
            ["sh", "-c", script], str(worktree), {}, stdin=b"first\n", attempt_id="att-tty", interactive=True
        )
        assert (proc.id == waiting) is prestart  # the waiting launcher ran it, or a fresh exec did
        chunks = proc.stdout.__aiter__()
        seen = b""
        while b"got:first\n" not in seen:
            seen += await asyncio.wait_for(chunks.__anext__(), 10)
        await proc.write(b"second\n")
        while b"got:second\n" not in seen:
            seen += await asyncio.wait_for(chunks.__anext__(), 10)
        assert proc.returncode is None
        await proc.close_stdin()
        seen += b"".join([chunk async for chunk in proc.stdout])
        code = await proc.wait()
        with pytest.raises(RunnerError) as excinfo:
            await proc.write(b"too late\n")
        return seen, code, str(excinfo.value)

    out, code, error = asyncio.run(main())
    assert out == b"got:first\ngot:second\neof\n"
    assert code == 0
    assert "closed" in error
