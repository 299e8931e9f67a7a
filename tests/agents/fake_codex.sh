#!/bin/sh
# `codex app-server` with only /bin/sh (busybox), for the container tests: answers the JSON-RPC requests of
# the conversation API, asks execCommandApproval before its one command (approved.txt when approved),
# completes the turn and waits for the end of its input. Every line it reads is kept in protocol.jsonl.
emit() { printf '%s\n' "$1"; }
event() { emit "{\"method\":\"codex/event/$1\",\"params\":{\"id\":\"0\",\"msg\":{\"type\":\"$1\"$2}}}"; }
id_of() { printf '%s' "$1" | sed -n 's/^{"id": \([0-9]*\),.*/\1/p'; }
path_of() { printf '%s' "$1" | sed -n 's/.*"path": "\([^"]*\)".*/\1/p'; }
turn() {
  event agent_message ",\"message\":\"uid=$(id -u) in the container\""
  emit '{"id":"srv-1","method":"execCommandApproval","params":{"conversationId":"conv-sh","callId":"call-sh","command":["sh","-c","echo approved > approved.txt"],"cwd":"."}}'
  decision=denied
  while IFS= read -r line; do
    printf '%s\n' "$line" >> protocol.jsonl
    case "$line" in
      *'"id": "srv-1"'*'"decision": "approved"'*) decision=approved; break;;
      *'"id": "srv-1"'*) break;;
    esac
  done
  if [ "$decision" = approved ]; then
    event exec_command_begin ',"call_id":"call-sh","command":["sh","-c","echo approved > approved.txt"],"cwd":"."'
    echo approved > approved.txt
    event exec_command_end ',"call_id":"call-sh","exit_code":0,"aggregated_output":""'
    event agent_message ',"message":"Approved in container"'
  else
    event agent_message ',"message":"Denied in container"'
  fi
  event task_complete ',"last_agent_message":null'
}
rollout=/tmp/rollout-sh.jsonl
while IFS= read -r line; do
  printf '%s\n' "$line" >> protocol.jsonl
  id=$(id_of "$line")
  case "$line" in
    *'"method": "initialize"'*) emit "{\"id\":$id,\"result\":{\"userAgent\":\"sh-codex\"}}";;
    *'"method": "newConversation"'*|*'"method": "resumeConversation"'*)
      given=$(path_of "$line"); [ -n "$given" ] && rollout=$given
      emit "{\"id\":$id,\"result\":{\"conversationId\":\"conv-sh\",\"model\":\"sh-codex\",\"rolloutPath\":\"$rollout\"}}"
      event session_configured ",\"session_id\":\"conv-sh\",\"model\":\"sh-codex\",\"rollout_path\":\"$rollout\"";;
    *'"method": "addConversationListener"'*) emit "{\"id\":$id,\"result\":{\"subscriptionId\":\"sub\"}}";;
    *'"method": "sendUserMessage"'*) emit "{\"id\":$id,\"result\":{}}"; turn;;
  esac
done
exit 0
