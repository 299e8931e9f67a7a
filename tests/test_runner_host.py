"""The host runner with real processes: streams, exit codes, stdin, and stop of a whole process tree."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from anyon.services.runners import ExecutableNotFound, HostRunner, RunnerError, RunningProcess


async def collect(proc: RunningProcess) -> tuple[bytes, bytes, int]:
    async def drain(stream: object) -> bytes:
        return b"".join([chunk async for chunk in stream])  # type: ignore[attr-defined]

    out, err = await asyncio.gather(drain(proc.stdout), drain(proc.stderr))
    return out, err, await proc.wait()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def test_streams_are_separate_and_exit_code_is_reported(tmp_path: Path) -> None:
    async def main() -> tuple[bytes, bytes, int]:
        proc = await HostRunner().spawn(
            ["sh", "-c", 'printf "out-$FOO"; printf "err-$(pwd)" >&2; exit 3'], str(tmp_path), {"FOO": "bar"}
        )
        return await collect(proc)

    out, err, code = asyncio.run(main())
    assert out == b"out-bar"
    assert err == f"err-{tmp_path}".encode()
    assert code == 3


def test_stdin_is_written_then_closed(tmp_path: Path) -> None:
    payload = b"line one\n" + b"x" * 300_000 + b"\nlast"

    async def main() -> tuple[bytes, bytes, int]:
        proc = await HostRunner().spawn(["cat"], str(tmp_path), {}, stdin=payload)
        return await collect(proc)

    out, _, code = asyncio.run(main())
    assert out == payload
    assert code == 0


def test_no_stdin_means_empty_stdin(tmp_path: Path) -> None:
    async def main() -> tuple[bytes, bytes, int]:
        return await collect(await HostRunner().spawn(["wc", "-c"], str(tmp_path), {}))

    out, _, code = asyncio.run(main())
    assert out.strip() == b"0" and code == 0


def test_large_output_arrives_in_bounded_chunks(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int]:
        proc = await HostRunner().spawn(
            [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'a' * 5_000_000)"], str(tmp_path), {}
        )
        total = biggest = 0
        async for chunk in proc.stdout:
            total += len(chunk)
            biggest = max(biggest, len(chunk))
        async for _ in proc.stderr:
            pass
        return total, biggest, await proc.wait()

    total, biggest, code = asyncio.run(main())
    assert total == 5_000_000 and code == 0
    assert biggest <= 64 * 1024


def test_missing_executable_and_missing_cwd_are_clear_errors(tmp_path: Path) -> None:
    runner = HostRunner()
    with pytest.raises(ExecutableNotFound, match="no-such-agent-binary"):
        asyncio.run(runner.spawn(["no-such-agent-binary"], str(tmp_path), {}))
    with pytest.raises(RunnerError, match="does not exist"):
        asyncio.run(runner.spawn(["true"], str(tmp_path / "missing"), {}))


def test_stop_escalates_and_kills_a_tree_that_ignores_int_and_term(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = (
        "trap '' INT TERM; "
        f"sh -c 'trap \"\" INT TERM; echo $$ > {pidfile}; while :; do sleep 1; done' & "
        "echo started; while :; do sleep 1; done"
    )

    async def main() -> tuple[int, int, float, bool]:
        proc = await HostRunner().spawn(["sh", "-c", script], str(tmp_path), {})
        assert await proc.stdout.__anext__() == b"started\n"
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.01)
        child = int(pidfile.read_text())
        loop = asyncio.get_running_loop()
        started = loop.time()
        code = await proc.stop(escalation_seconds=0.3)
        return code, child, loop.time() - started, proc.stop_requested

    code, child, elapsed, requested = asyncio.run(main())
    assert code == 137  # SIGKILL was needed
    assert requested
    assert elapsed >= 0.6  # INT and TERM were each given their time
    assert not pid_alive(child)


def test_stop_of_a_cooperative_process_needs_only_sigint(tmp_path: Path) -> None:
    async def main() -> int:
        proc = await HostRunner().spawn(["sleep", "30"], str(tmp_path), {})
        return await proc.stop(escalation_seconds=5)

    assert asyncio.run(main()) == 130


def test_process_runs_in_its_own_process_group(tmp_path: Path) -> None:
    async def main() -> tuple[int, bytes]:
        proc = await HostRunner().spawn(["sh", "-c", "ps -o pgid= -p $$"], str(tmp_path), {})
        out, _, _ = await collect(proc)
        return proc.pid, out

    pid, out = asyncio.run(main())
    assert int(out.strip()) == pid != os.getpgid(0)


def test_an_unread_stream_blocks_the_process_instead_of_filling_memory(tmp_path: Path) -> None:
    async def main() -> tuple[int | None, int, int]:
        proc = await HostRunner().spawn(["head", "-c", "100000000", "/dev/zero"], str(tmp_path), {})
        await asyncio.sleep(0.5)
        running = proc._proc.returncode  # type: ignore[attr-defined]
        total = 0
        async for chunk in proc.stdout:
            total += len(chunk)
        return running, total, await proc.wait()

    running, total, code = asyncio.run(main())
    assert running is None  # still blocked on its full pipe after half a second
    assert (total, code) == (100_000_000, 0)


ECHO_LOOP = 'while IFS= read -r line; do echo "got:$line"; done; echo "eof"'


async def read_until(chunks: object, marker: bytes, seen: bytearray) -> bytes:
    """Read stdout chunks until ``marker`` shows up (a reply to what was written)."""
    iterator = chunks.__aiter__()  # type: ignore[attr-defined]
    while marker not in seen:
        seen += await asyncio.wait_for(iterator.__anext__(), 10)
    return bytes(seen)


def test_interactive_stdin_stays_open_for_writes_until_closed(tmp_path: Path) -> None:
    async def main() -> tuple[bytes, int, str]:
        proc = await HostRunner().spawn(
            ["sh", "-c", ECHO_LOOP], str(tmp_path), {}, stdin=b"first\n", interactive=True
        )
        seen = bytearray()
        await read_until(proc.stdout, b"got:first\n", seen)
        # the process is still running and reading: a reply comes for each write
        await proc.write(b"second\n")
        await read_until(proc.stdout, b"got:second\n", seen)
        assert proc.returncode is None
        await proc.close_stdin()
        await proc.close_stdin()  # twice is harmless
        rest = b"".join([chunk async for chunk in proc.stdout])  # type: ignore[attr-defined]
        code = await proc.wait()
        with pytest.raises(RunnerError) as excinfo:
            await proc.write(b"too late\n")
        return bytes(seen) + rest, code, str(excinfo.value)

    out, code, error = asyncio.run(main())
    assert out == b"got:first\ngot:second\neof\n"
    assert code == 0
    assert "closed" in error


def test_write_to_a_one_shot_process_is_refused(tmp_path: Path) -> None:
    async def main() -> str:
        proc = await HostRunner().spawn(["cat"], str(tmp_path), {}, stdin=b"x")
        with pytest.raises(RunnerError) as excinfo:
            await proc.write(b"more")
        await collect(proc)
        return str(excinfo.value)

    assert "not started with an open stdin" in asyncio.run(main())


def test_write_after_the_process_exited_is_a_clear_error(tmp_path: Path) -> None:
    async def main() -> str:
        proc = await HostRunner().spawn(["sh", "-c", "exit 0"], str(tmp_path), {}, interactive=True)
        await collect(proc)
        with pytest.raises(RunnerError) as excinfo:
            for _ in range(50):  # the pipe's reader is gone: a write fails (at once or after a few)
                await proc.write(b"x" * 65536)
        return str(excinfo.value)

    assert "stdin" in asyncio.run(main())
