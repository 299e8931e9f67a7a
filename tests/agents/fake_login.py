"""A stand-in for an agent CLI's interactive login: prompts on its terminal, reads a code, stores a login.

It records its pid (``$HOME/login.pid``) so a test can tell it was ended, says whether its stdin is a
terminal, and writes ``$HOME/.claude/.credentials.json`` as the Claude Code CLI does.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

home = Path(os.environ["HOME"])
(home / "login.pid").write_text(str(os.getpid()))
print(f"isatty={sys.stdin.isatty()} size={os.get_terminal_size(0).columns}x{os.get_terminal_size(0).lines}")
print("Paste code here: ", end="", flush=True)
code = sys.stdin.readline().strip()
if not code:
    print("No code given.", flush=True)
    sys.exit(1)
(home / ".claude").mkdir(exist_ok=True)
credentials = home / ".claude" / ".credentials.json"
credentials.write_text(json.dumps({"claudeAiOauth": {"accessToken": f"token-from-{len(code)}-chars"}}))
credentials.chmod(0o600)
print("Login successful.", flush=True)
time.sleep(60)  # like the real CLI, it stays open until the terminal goes away
