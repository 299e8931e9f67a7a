#!/bin/sh
# Claude Code's control protocol with only /bin/sh (busybox), for the container tests: answers the
# server's control requests, takes the first user message as the prompt, asks to use Bash through a
# can_use_tool request and acts on the answer (approved.txt when allowed), then waits for the end of its
# input after the result, as the real CLI does. Every line it reads is kept in protocol.jsonl.
# With "--resume S" it continues session S.
session=sess-sh-ctl
while [ $# -gt 0 ]; do
  [ "$1" = --resume ] && session=$2
  shift
done
emit() { printf '%s\n' "$1"; }
field() { printf '%s' "$1" | sed -n "s/.*\"$2\": \"\\([^\"]*\\)\".*/\\1/p"; }
answer_control() {
  emit "{\"type\":\"control_response\",\"response\":{\"subtype\":\"success\",\"request_id\":\"$(field "$1" request_id)\"}}"
}
prompt=
while IFS= read -r line; do
  printf '%s\n' "$line" >> protocol.jsonl
  case "$line" in
    *'"type": "control_request"'*) answer_control "$line";;
    *'"type": "user"'*) prompt=$(field "$line" content); break;;
  esac
done
emit "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"$session\",\"model\":\"sh\"}"
emit "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"uid=$(id -u) prompt=$prompt\"}]}}"
emit '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t-sh","name":"Bash","input":{"command":"echo approved"}}]}}'
emit '{"type":"control_request","request_id":"req-sh-1","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"echo approved"},"tool_use_id":"t-sh"}}'
verdict=
while IFS= read -r line; do
  printf '%s\n' "$line" >> protocol.jsonl
  case "$line" in
    *'"request_id": "req-sh-1"'*'"behavior": "allow"'*) verdict=allow; break;;
    *'"request_id": "req-sh-1"'*) verdict=deny; break;;
    *'"type": "control_request"'*) answer_control "$line";;
  esac
done
if [ "$verdict" = allow ]; then
  echo approved > approved.txt
  emit '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t-sh","content":"ok"}]}}'
  text="Approved in container"
else
  emit '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t-sh","content":"denied","is_error":true}]}}'
  text="Denied in container"
fi
emit "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"$text\"}]}}"
emit "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"$text\",\"session_id\":\"$session\"}"
while IFS= read -r line; do printf '%s\n' "$line" >> protocol.jsonl; done
exit 0
