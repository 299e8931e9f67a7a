#!/usr/bin/env python3
"""A stand-in for ``codex app-server``: JSON-RPC over stdin/stdout, the conversation API of Codex 0.5x.

Every line it reads is kept in ``protocol.jsonl`` in the working directory. It answers initialize,
newConversation / resumeConversation (the rollout path is the session to resume), addConversationListener
and sendUserMessage, then plays a turn chosen by words in the prompt:
  "ask"        ask execCommandApproval first; runs the command (approved.txt) only when approved
  "patch"      ask applyPatchApproval first; writes patched.txt only when approved
  "silent"     complete the turn without a word
  "abrupt"     die without a word after the session starts
otherwise it writes agent.txt (followup.txt when resumed) and reports it. Started with ``--autherror``
it refuses newConversation as Codex does without a login. After task_complete it waits
for the end of its input, as the real server does.
"""

import json
import os
import sys

RECORD = "protocol.jsonl"
state = {"prompt": "", "conversation": "", "rollout": "", "resumed": False}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def event(msg):
    emit({"method": "codex/event/" + msg["type"], "params": {"id": "0", "msg": msg}})


def read():
    line = sys.stdin.readline()
    if not line:
        return None
    with open(RECORD, "a") as handle:
        handle.write(line if line.endswith("\n") else line + "\n")
    return json.loads(line)


def ask(method, params):
    """A server request to the client; returns its answer (other messages meanwhile are recorded)."""
    emit({"id": "srv-1", "method": method, "params": params})
    while True:
        msg = read()
        if msg is None:
            return None
        if msg.get("id") == "srv-1" and "method" not in msg:
            return msg


def turn():
    prompt = state["prompt"]
    cwd = os.getcwd()
    if "abrupt" in prompt:
        sys.stderr.write("codex: connection reset\n")
        os._exit(1)
    if "silent" in prompt:
        event({"type": "task_complete", "last_agent_message": None})
        return
    event({"type": "agent_message", "message": "Working on: " + prompt})
    if "ask" in prompt:
        command = ["bash", "-lc", "echo approved > approved.txt"]
        params = {
            "conversationId": state["conversation"],
            "callId": "call-ask",
            "command": command,
            "cwd": cwd,
            "reason": "needs to write a file",
        }
        answer = ask("execCommandApproval", params)
        decision = ((answer or {}).get("result") or {}).get("decision")
        if decision in ("approved", "approved_for_session"):
            event({"type": "exec_command_begin", "call_id": "call-ask", "command": command, "cwd": cwd})
            with open("approved.txt", "w") as handle:
                handle.write("approved\n")
            event(
                {"type": "exec_command_end", "call_id": "call-ask", "exit_code": 0, "aggregated_output": ""}
            )
            event({"type": "agent_message", "message": "Approved and ran"})
        else:
            event({"type": "agent_message", "message": "Stopped: " + str(decision)})
    elif "patch" in prompt:
        path = os.path.join(cwd, "patched.txt")
        changes = {path: {"add": {"content": "patched\n"}}}
        params = {"conversationId": state["conversation"], "callId": "call-patch", "fileChanges": changes}
        answer = ask("applyPatchApproval", params)
        decision = ((answer or {}).get("result") or {}).get("decision")
        if decision == "approved":
            event(
                {
                    "type": "patch_apply_begin",
                    "call_id": "call-patch",
                    "auto_approved": False,
                    "changes": changes,
                }
            )
            with open(path, "w") as handle:
                handle.write("patched\n")
            event({"type": "patch_apply_end", "call_id": "call-patch", "success": True})
            event({"type": "agent_message", "message": "Patched"})
        else:
            event({"type": "agent_message", "message": "Stopped: " + str(decision)})
    else:
        name = "followup.txt" if state["resumed"] else "agent.txt"
        command = ["bash", "-lc", f"echo > {name}"]
        event({"type": "exec_command_begin", "call_id": "call-1", "command": command, "cwd": cwd})
        with open(name, "w") as handle:
            handle.write(prompt + "\n")
        event({"type": "exec_command_end", "call_id": "call-1", "exit_code": 0, "aggregated_output": "ok\n"})
        event({"type": "agent_message", "message": "Done: " + prompt})
    event({"type": "task_complete", "last_agent_message": "done"})


def main():
    while True:
        msg = read()
        if msg is None:
            return
        method, request_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        if method == "initialize":
            emit({"id": request_id, "result": {"userAgent": "fake-codex/0.55.0"}})
        elif method in ("newConversation", "resumeConversation"):
            pid = os.getpid()
            if method == "resumeConversation":
                state["rollout"], state["resumed"] = params["path"], True
            else:
                state["rollout"] = f"/tmp/fake-codex/rollout-{pid}.jsonl"
            state["conversation"] = f"conv-{pid}"
            if "--autherror" in sys.argv:
                emit(
                    {"id": request_id, "error": {"code": -32603, "message": "not logged in: run codex login"}}
                )
                continue
            result = {
                "conversationId": state["conversation"],
                "model": "fake-codex",
                "rolloutPath": state["rollout"],
            }
            emit({"id": request_id, "result": result})
            event(
                {
                    "type": "session_configured",
                    "session_id": state["conversation"],
                    "model": "fake-codex",
                    "rollout_path": state["rollout"],
                }
            )
        elif method == "addConversationListener":
            emit({"id": request_id, "result": {"subscriptionId": "sub-1"}})
        elif method == "sendUserMessage":
            state["prompt"] = params["items"][0]["data"]["text"]
            emit({"id": request_id, "result": {}})
            turn()


if __name__ == "__main__":
    main()
