#!/usr/bin/env python3
"""A stand-in for an ACP agent (Gemini CLI --experimental-acp, Qwen Code): JSON-RPC 2.0 over stdin/stdout.

Every line it reads is kept in ``protocol.jsonl`` in the working directory. It answers initialize (with
``loadSession`` unless started with ``--noload``), session/new, session/load (replaying an old message
first, as agents do) and session/prompt, whose turn is chosen by words in the prompt:
  "ask"      announce a file edit and ask session/request_permission; writes approved.txt when allowed
  "silent"   end the turn without a word
  "refuse"   end the turn with stopReason "refusal"
  "hang"     wait for session/cancel, then end the turn as cancelled
otherwise it streams a message in chunks, runs a command (agent.txt, or followup.txt after a load) and
ends the turn. Started with ``--autherror`` it refuses session/new as an agent without a login does. After
the turn it waits for the end of its input, as the real agents do.
"""

import json
import os
import sys

RECORD = "protocol.jsonl"
state = {"session": "", "loaded": False}


def emit(obj):
    obj["jsonrpc"] = "2.0"
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def update(upd):
    emit({"method": "session/update", "params": {"sessionId": state["session"], "update": upd}})


def say(text, kind="agent_message_chunk"):
    update({"sessionUpdate": kind, "content": {"type": "text", "text": text}})


def read():
    line = sys.stdin.readline()
    if not line:
        return None
    with open(RECORD, "a") as handle:
        handle.write(line if line.endswith("\n") else line + "\n")
    return json.loads(line)


def wait_for(predicate):
    while True:
        msg = read()
        if msg is None or predicate(msg):
            return msg


def turn(prompt):
    """Play the turn; returns the stop reason."""
    if "silent" in prompt:
        return "end_turn"
    if "refuse" in prompt:
        return "refusal"
    say("Thinking about it", "agent_thought_chunk")
    if "hang" in prompt:
        say("Waiting...")
        wait_for(lambda m: m.get("method") == "session/cancel")
        return "cancelled"
    if "ask" in prompt:
        path = os.path.join(os.getcwd(), "approved.txt")
        call = {"toolCallId": "tc-ask", "title": "Write approved.txt", "kind": "edit", "status": "pending"}
        call["locations"] = [{"path": path}]
        update({"sessionUpdate": "tool_call", **call})
        options = [
            {"optionId": "allow", "name": "Allow", "kind": "allow_once"},
            {"optionId": "allow-all", "name": "Always allow", "kind": "allow_always"},
            {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
        ]
        emit(
            {
                "id": "perm-1",
                "method": "session/request_permission",
                "params": {"sessionId": state["session"], "toolCall": call, "options": options},
            }
        )
        answer = wait_for(lambda m: m.get("id") == "perm-1" and "method" not in m) or {}
        outcome = (answer.get("result") or {}).get("outcome") or {}
        if outcome.get("outcome") == "selected" and str(outcome.get("optionId")).startswith("allow"):
            with open(path, "w") as handle:
                handle.write("approved\n")
            update({"sessionUpdate": "tool_call_update", "toolCallId": "tc-ask", "status": "completed"})
            say("Approved and wrote")
        else:
            update({"sessionUpdate": "tool_call_update", "toolCallId": "tc-ask", "status": "failed"})
            say("Stopped: " + str(outcome.get("optionId") or outcome.get("outcome")))
        return "end_turn"
    name = "followup.txt" if state["loaded"] else "agent.txt"
    say("Working on: ")
    say(prompt)
    call = {"toolCallId": "tc-1", "title": f"echo > {name}", "kind": "execute", "status": "in_progress"}
    update({"sessionUpdate": "tool_call", **call})
    with open(name, "w") as handle:
        handle.write(prompt + "\n")
    content = [{"type": "content", "content": {"type": "text", "text": "ok"}}]
    update(
        {"sessionUpdate": "tool_call_update", "toolCallId": "tc-1", "status": "completed", "content": content}
    )
    plan = [{"content": "write the file", "status": "completed", "priority": "high"}]
    update({"sessionUpdate": "plan", "entries": plan})
    say("Done.")
    return "end_turn"


def main():
    while True:
        msg = read()
        if msg is None:
            return
        method, request_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        if method == "initialize":
            capabilities = {"loadSession": "--noload" not in sys.argv}
            emit({"id": request_id, "result": {"protocolVersion": 1, "agentCapabilities": capabilities}})
        elif method == "session/new":
            if "--autherror" in sys.argv:
                emit({"id": request_id, "error": {"code": -32000, "message": "Authentication required"}})
                continue
            state["session"] = f"acp-{os.getpid()}"
            emit({"id": request_id, "result": {"sessionId": state["session"]}})
        elif method == "session/load":
            state["session"], state["loaded"] = params["sessionId"], True
            say("OLD HISTORY")  # the previous conversation, replayed
            emit({"id": request_id, "result": None})
        elif method == "session/prompt":
            text = "".join(p.get("text", "") for p in params.get("prompt", []))
            reason = turn(text)
            emit({"id": request_id, "result": {"stopReason": reason}})


if __name__ == "__main__":
    main()
