#!/usr/bin/env python3
"""A stand-in coding agent speaking Claude Code's stream-json: reads the prompt on stdin, edits the worktree.

Behaviour is chosen by words in the prompt so tests can drive it:
  "fail"    exit 3 after printing an error on stderr
  "sleep"   print, then sleep for a long time (ignoring SIGINT and SIGTERM when "stubborn" is also there)
  "noop"    change nothing
otherwise it writes agent.txt (the prompt) and prints a stream-json transcript. Images the prompt links
(``![alt](/abs/.vibe-images/x.png)``) are read, and their SHA-256 written to seen.txt.
"""

import hashlib
import json
import os
import re
import signal
import sys
import time


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    raw = sys.stdin.read()
    try:
        prompt = json.loads(raw.splitlines()[0])["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        prompt = raw
    resume = sys.argv[sys.argv.index("--resume") + 1] if "--resume" in sys.argv else None
    session = resume or "sess-" + str(os.getpid())
    emit({"type": "system", "subtype": "init", "session_id": session, "cwd": os.getcwd(), "model": "fake"})
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "Working on: " + prompt}]}})
    if "stubborn" in prompt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "sleep" in prompt:
        time.sleep(600)
    if "fail" in prompt:
        sys.stderr.write("something went wrong\n")
        sys.exit(3)
    seen = []
    for path in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", prompt):
        if os.path.isfile(path):
            with open(path, "rb") as image:
                seen.append(hashlib.sha256(image.read()).hexdigest() + "  " + path)
    if seen:
        with open("seen.txt", "w") as handle:
            handle.write("\n".join(seen) + "\n")
    if "noop" not in prompt:
        name = "followup.txt" if resume else "agent.txt"
        with open(name, "w") as handle:
            handle.write(prompt + "\n")
        emit(
            {
                "type": "assistant",
                "message": {
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "Write",
                            "input": {"file_path": os.path.join(os.getcwd(), name), "content": prompt},
                        }
                    ]
                },
            }
        )
        emit(
            {
                "type": "user",
                "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
            }
        )
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "Done: " + prompt}]}})
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "Done: " + prompt,
            "session_id": session,
        }
    )


if __name__ == "__main__":
    main()
