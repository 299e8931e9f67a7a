#!/bin/sh
# An ACP agent (Gemini CLI --experimental-acp, Qwen Code) with only /bin/sh (busybox), for the container
# tests: answers initialize (loadSession), session/new (session acp-sh) and session/load (replaying an old
# message first, as agents do); its turn announces a file edit and asks session/request_permission, writes
# approved.txt (followup.txt after a load) when allowed, and ends the turn; then it waits for the end of its
# input. Every line it reads is kept in protocol.jsonl.
emit() { printf '%s\n' "$1"; }
id_of() { printf '%s' "$1" | sed -n 's/^{"jsonrpc": "2.0", "id": \([0-9]*\),.*/\1/p'; }
session=acp-sh
loaded=
say() {
  emit "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"$session\",\"update\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"$1\"}}}}"
}
update() {
  emit "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"$session\",\"update\":$1}}"
}
turn() {
  name=approved.txt
  [ -n "$loaded" ] && name=followup.txt
  say "uid=$(id -u) in the container"
  call="{\"toolCallId\":\"tc-sh\",\"title\":\"Write $name\",\"kind\":\"edit\",\"status\":\"pending\"}"
  update "{\"sessionUpdate\":\"tool_call\",\"toolCallId\":\"tc-sh\",\"title\":\"Write $name\",\"kind\":\"edit\",\"status\":\"pending\"}"
  emit "{\"jsonrpc\":\"2.0\",\"id\":\"perm-sh\",\"method\":\"session/request_permission\",\"params\":{\"sessionId\":\"$session\",\"toolCall\":$call,\"options\":[{\"optionId\":\"allow\",\"name\":\"Allow\",\"kind\":\"allow_once\"},{\"optionId\":\"reject\",\"name\":\"Reject\",\"kind\":\"reject_once\"}]}}"
  verdict=
  while IFS= read -r line; do
    printf '%s\n' "$line" >> protocol.jsonl
    case "$line" in
      *'"id": "perm-sh"'*'"optionId": "allow"'*) verdict=allow; break;;
      *'"id": "perm-sh"'*) break;;
    esac
  done
  if [ "$verdict" = allow ]; then
    echo approved > "$name"
    update '{"sessionUpdate":"tool_call_update","toolCallId":"tc-sh","status":"completed"}'
    say "Approved in container"
  else
    update '{"sessionUpdate":"tool_call_update","toolCallId":"tc-sh","status":"failed"}'
    say "Denied in container"
  fi
}
while IFS= read -r line; do
  printf '%s\n' "$line" >> protocol.jsonl
  id=$(id_of "$line")
  case "$line" in
    *'"method": "initialize"'*)
      emit "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":{\"protocolVersion\":1,\"agentCapabilities\":{\"loadSession\":true}}}";;
    *'"method": "session/new"'*)
      emit "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":{\"sessionId\":\"$session\"}}";;
    *'"method": "session/load"'*)
      session=$(printf '%s' "$line" | sed -n 's/.*"sessionId": "\([^"]*\)".*/\1/p'); loaded=1
      say "OLD HISTORY"
      emit "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":null}";;
    *'"method": "session/prompt"'*)
      turn
      emit "{\"jsonrpc\":\"2.0\",\"id\":$id,\"result\":{\"stopReason\":\"end_turn\"}}";;
  esac
done
exit 0
