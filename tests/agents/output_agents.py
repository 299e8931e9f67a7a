"""Stand-ins for the output-only agent CLIs (Amp, Cursor Agent, OpenCode, Copilot): ``output_agents.py KIND``.

Each prints what the real CLI prints, in its format: a session, a tool call, an answer — or, when the prompt
(read from stdin) holds a marker, the CLI's own failure:

* ``[login]``   — the CLI's not-signed-in words, then it waits (as the real ones wait for a login or retry);
* ``[network]`` — the CLI's cannot-connect words, then it waits;
* ``[silent]``  — no answer at all, exit 0.

The tool call writes ``standin.txt`` in the working directory so the attempt has a change to commit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def out(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def resumed() -> str:
    """`` (resumed: <args>)`` when the command line names a session to continue (a follow-up)."""
    args = sys.argv[2:]
    for flag in ("--resume", "--session", "continue"):
        if flag in args and args.index(flag) + 1 < len(args):
            return f" (resumed: {flag} {args[args.index(flag) + 1]})"
    return ""


def wait() -> None:
    time.sleep(120)


def amp(prompt: str) -> None:
    if "[login]" in prompt:
        print("No API key found. Starting login flow...", flush=True)
        print("When prompted, paste your code here: ", end="", flush=True)
        wait()
        return
    if "[network]" in prompt:
        print("Error: getaddrinfo ENOTFOUND ampcode.com", file=sys.stderr, flush=True)
        wait()
        return
    out({"type": "system", "subtype": "init", "session_id": "T-amp-1", "tools": [], "cwd": "."})
    if "[silent]" in prompt:
        return
    tool = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Bash",
        "input": {"command": "echo hi > standin.txt"},
    }
    out({"type": "assistant", "session_id": "T-amp-1", "message": {"content": [tool]}})
    Path("standin.txt").write_text("amp\n")
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "", "is_error": False}
    out({"type": "user", "session_id": "T-amp-1", "message": {"content": [result]}})
    text = {"type": "text", "text": f"Amp did: {prompt.strip()}{resumed()}"}
    out({"type": "assistant", "session_id": "T-amp-1", "message": {"content": [text]}})
    out(
        {"type": "result", "subtype": "success", "is_error": False, "result": "done", "session_id": "T-amp-1"}
    )


def cursor(prompt: str) -> None:
    if "[login]" in prompt:
        print("\x1b[2mPress any key to sign in...\x1b[0m", flush=True)
        wait()
        return
    if "[network]" in prompt:
        print("Error: fetch failed (ECONNREFUSED api2.cursor.sh)", flush=True)
        wait()
        return
    sid = "cursor-sess-1"
    out({"type": "system", "subtype": "init", "session_id": sid, "model": "Auto", "cwd": "."})
    if "[silent]" in prompt:
        return
    call = {"shellToolCall": {"args": {"command": "echo hi > standin.txt"}}}
    out({"type": "tool_call", "subtype": "started", "call_id": "c1", "tool_call": call, "session_id": sid})
    Path("standin.txt").write_text("cursor\n")
    done = {
        "shellToolCall": {
            "args": {"command": "echo hi > standin.txt"},
            "result": {"success": {"stdout": "ok", "exitCode": 0}},
        }
    }
    out({"type": "tool_call", "subtype": "completed", "call_id": "c1", "tool_call": done, "session_id": sid})
    for piece in ("Cursor ", "did: ", prompt.strip() + resumed()):
        message = {"role": "assistant", "content": [{"type": "text", "text": piece}]}
        out({"type": "assistant", "message": message, "session_id": sid})
    out({"type": "result", "subtype": "success", "is_error": False, "result": "done", "session_id": sid})


def opencode(prompt: str) -> None:
    sid = "ses_standin1"
    log = f"timestamp=2026-01-01T00:00:00.000Z level=INFO run=1 message=created id={sid} version=1.18.33"
    print(log, file=sys.stderr, flush=True)
    if "[login]" in prompt:
        error = {"name": "ProviderAuthError", "data": {"message": "Invalid API key · Please run /login"}}
        out({"type": "error", "sessionID": sid, "error": error})
        wait()
        return
    if "[network]" in prompt:
        line = (
            'timestamp=2026-01-01T00:00:01.000Z level=ERROR run=1 message="stream error" '
            'error.error="AI_APICallError: Cannot connect to API: Unable to connect. Is the computer able '
            'to access the url?"'
        )
        print(line, file=sys.stderr, flush=True)
        wait()
        return
    out({"type": "step_start", "sessionID": sid, "part": {"type": "step-start"}})
    if "[silent]" in prompt:
        return
    running = {
        "tool": "bash",
        "callID": "call_1",
        "state": {"status": "running", "input": {"command": "echo hi"}},
    }
    out({"type": "tool_use", "sessionID": sid, "part": running})
    Path("standin.txt").write_text("opencode\n")
    state = {"status": "completed", "input": {"command": "echo hi"}, "output": "hi\n"}
    out({"type": "tool_use", "sessionID": sid, "part": {"tool": "bash", "callID": "call_1", "state": state}})
    out(
        {
            "type": "text",
            "sessionID": sid,
            "part": {"type": "text", "text": f"OpenCode did: {prompt.strip()}{resumed()}"},
        }
    )
    out({"type": "step_finish", "sessionID": sid, "part": {"reason": "stop"}})


def copilot(prompt: str) -> None:
    if "[login]" in prompt:
        print("Error: No authentication information found.", file=sys.stderr, flush=True)
        sys.exit(1)
    if "[network]" in prompt:
        print("Error: getaddrinfo EAI_AGAIN api.githubcopilot.com", file=sys.stderr, flush=True)
        wait()
        return
    if "[silent]" in prompt:
        return
    Path("standin.txt").write_text("copilot\n")
    print("\x1b[1mCopilot did:\x1b[0m", flush=True)
    print(prompt.strip(), flush=True)
    print("", flush=True)
    print(f"Second paragraph.{resumed()}", flush=True)


def main() -> None:
    kind = sys.argv[1]
    prompt = sys.stdin.read()
    {"amp": amp, "cursor-agent": cursor, "opencode": opencode, "copilot": copilot}[kind](prompt)


if __name__ == "__main__":
    main()
