#!/usr/bin/env python3
"""A stand-in for Claude Code speaking stream-json and its control protocol over stdin/stdout.

It reads stdin line by line: ``control_request`` messages from the server (initialize, set_permission_mode,
interrupt) are answered and recorded in ``protocol.jsonl`` in the working directory; the first ``user``
message is the prompt. With ``--resume S`` it continues session S. Behaviour is chosen by words in the
prompt so tests can drive it:
  "fail"     exit 3 after printing an error on stderr
  "sleep"    print, then sleep for a long time (ignoring SIGINT and SIGTERM when "stubborn" is also there)
  "noop"     change nothing
  "silent"   print only the init line and a result without text (no answer at all)
  "errorresult"  end with an error result (exit 0)
  "ask"      use Bash, asking first (hook_callback, then can_use_tool); writes approved.txt when allowed
  "plan"     present a plan with ExitPlanMode, asking first; on approval expect bypassPermissions
  "abrupt"   (with ask) die without a word while the question is open
  "wait"     (with ask) keep waiting for the answer whatever comes (an interrupt is recorded)
  "withdraw" (with ask) once withdraw.now exists in the working directory, cancel the open question with
             control_cancel_request and end the turn (what it reads afterwards is recorded)
otherwise it writes agent.txt (the prompt) and prints a stream-json transcript. In the interactive mode
(after an initialize) it waits for the end of its input after the result, as the real CLI does.
Images the prompt links (``![alt](/abs/.vibe-images/x.png)``) are read, and their SHA-256 written to seen.txt.
"""

import hashlib
import json
import os
import re
import signal
import sys
import time

RECORD = "protocol.jsonl"
state = {"interactive": False, "hooks": {}, "mode": None, "n": 0}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def record(obj):
    with open(RECORD, "a") as handle:
        handle.write(json.dumps(obj) + "\n")


def handle_control(msg):
    """A control request from the server: answer it as the CLI would."""
    record(msg)
    request = msg.get("request") or {}
    subtype = request.get("subtype")
    if subtype == "initialize":
        state["interactive"] = True
        state["hooks"] = request.get("hooks") or {}
    elif subtype == "set_permission_mode":
        state["mode"] = request.get("mode")
    emit(
        {"type": "control_response", "response": {"subtype": "success", "request_id": msg.get("request_id")}}
    )


def next_message(controls=False):
    """The next JSON line from stdin, or None at the end; control requests are handled on the way (and
    returned too with ``controls``)."""
    while True:
        line = sys.stdin.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg.get("type") == "control_request":
            handle_control(msg)
            if controls or msg["request"].get("subtype") == "interrupt":
                return msg
            continue
        return msg


def ask_server(request):
    """Send a control request and wait for its control_response (other messages are recorded)."""
    state["n"] += 1
    request_id = f"req-{state['n']}"
    emit({"type": "control_request", "request_id": request_id, "request": request})
    while True:
        msg = next_message()
        if msg is None:
            return None
        if msg.get("type") == "control_response" and msg["response"].get("request_id") == request_id:
            record(msg)
            return msg["response"]
        if msg.get("type") == "control_request" and "wait" not in PROMPT:  # an interrupt while waiting
            return None


def may_use(tool, tool_input, tool_use_id):
    """The CLI's permission flow: PreToolUse hooks first, then the permission prompt over stdio."""
    for matcher in state["hooks"].get("PreToolUse", []):
        if re.search(matcher["matcher"], tool):
            for callback_id in matcher.get("hookCallbackIds", []):
                answer = ask_server(
                    {"subtype": "hook_callback", "callback_id": callback_id, "input": {"tool_name": tool}}
                )
                if answer is None:
                    return None
                decision = answer["response"]["hookSpecificOutput"]["permissionDecision"]
                if decision == "allow":
                    return {"behavior": "allow", "updatedInput": tool_input}
    if "abrupt" in PROMPT:
        emit(
            {
                "type": "control_request",
                "request_id": "req-abrupt",
                "request": {"subtype": "can_use_tool", "tool_name": tool, "input": tool_input},
            }
        )
        time.sleep(0.5)
        os._exit(9)
    if "withdraw" in PROMPT:
        request = {
            "subtype": "can_use_tool",
            "tool_name": tool,
            "input": tool_input,
            "tool_use_id": tool_use_id,
        }
        emit({"type": "control_request", "request_id": "req-withdraw", "request": request})
        deadline = time.monotonic() + 30
        while not os.path.exists("withdraw.now") and time.monotonic() < deadline:
            time.sleep(0.05)
        emit({"type": "control_cancel_request", "request_id": "req-withdraw"})
        say("Question withdrawn")
        finish(state.get("session"), "Question withdrawn")
    answer = ask_server(
        {"subtype": "can_use_tool", "tool_name": tool, "input": tool_input, "tool_use_id": tool_use_id}
    )
    return None if answer is None else answer["response"]


def tool_use(tool_use_id, name, tool_input):
    emit(
        {
            "type": "assistant",
            "message": {
                "content": [{"type": "tool_use", "id": tool_use_id, "name": name, "input": tool_input}]
            },
        }
    )


def tool_result(tool_use_id, content, is_error=False):
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}
    emit({"type": "user", "message": {"content": [block]}})


def say(text):
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}})


def finish(session, text, is_error=False):
    result = {"type": "result", "subtype": "success", "is_error": is_error, "session_id": session}
    if text is not None:
        result["result"] = text
    emit(result)
    if state["interactive"]:
        while (msg := next_message()) is not None:  # the real CLI exits at the end of its input
            if "withdraw" in PROMPT and msg.get("type") != "control_request":
                record(msg)
    sys.exit(0)


def main():
    global PROMPT
    first = next_message()
    content = (first or {}).get("message", {}).get("content") if isinstance(first, dict) else None
    PROMPT = content if isinstance(content, str) else ""
    prompt = PROMPT
    resume = sys.argv[sys.argv.index("--resume") + 1] if "--resume" in sys.argv else None
    if resume:
        record({"resumed": resume, "forked": "--fork-session" in sys.argv})
    session = resume or "sess-" + str(os.getpid())
    state["session"] = session
    emit({"type": "system", "subtype": "init", "session_id": session, "cwd": os.getcwd(), "model": "fake"})
    if "silent" in prompt:
        finish(session, None)
    emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "Working on: " + prompt}]}})
    if "errorresult" in prompt:
        finish(session, "the model refused", is_error=True)
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
    if "plan" in prompt:
        plan = {"plan": "1. write plan.txt"}
        tool_use("t-plan", "ExitPlanMode", plan)
        answer = may_use("ExitPlanMode", plan, "t-plan")
        if answer is None:
            sys.exit(4)
        if answer.get("behavior") != "allow":
            tool_result("t-plan", answer.get("message", "denied"), is_error=True)
            say("Plan rejected: " + answer.get("message", ""))
            finish(session, "Plan rejected")
        tool_result("t-plan", "User has approved your plan")
        # the server switches this process to bypassPermissions: wait for that request
        while state["mode"] != "bypassPermissions":
            if next_message(controls=True) is None:
                break
        with open("plan.txt", "w") as handle:
            updated = json.dumps(answer.get("updatedPermissions"))
            handle.write(f"mode={state['mode']} updated={updated}\n")
        # in bypassPermissions nothing is asked any more
        say("Plan carried out in mode " + str(state["mode"]))
        finish(session, "Plan carried out")
    if "ask" in prompt:
        command = {"command": "echo approved > approved.txt"}
        tool_use("t-bash", "Bash", command)
        answer = may_use("Bash", command, "t-bash")
        if answer is None:
            sys.exit(4)
        if answer.get("behavior") == "allow":
            with open("approved.txt", "w") as handle:
                handle.write("approved\n")
            tool_result("t-bash", "ok")
            say("Approved and ran")
            finish(session, "Approved and ran")
        tool_result("t-bash", answer.get("message", "denied"), is_error=True)
        say("Stopped: " + answer.get("message", ""))
        finish(session, "Stopped: " + answer.get("message", ""))
    if "noop" not in prompt:
        name = "followup.txt" if resume else "agent.txt"
        with open(name, "w") as handle:
            handle.write(prompt + "\n")
        tool_use("t1", "Write", {"file_path": os.path.join(os.getcwd(), name), "content": prompt})
        tool_result("t1", "ok")
    say("Done: " + prompt)
    finish(session, "Done: " + prompt)


PROMPT = ""

if __name__ == "__main__":
    main()
