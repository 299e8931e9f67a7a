#!/bin/sh
# A stand-in agent for the agent-home test: reports, as Claude-style stream-json, whether the deployment's
# login is in its HOME and whether it can change the shared copy.
cat > /dev/null
token=$(cat "$HOME/.claude/.credentials.json" 2>/dev/null | tr -d '"{}: ' )
if touch /opt/anyon/agent-home/planted 2>/dev/null; then shared=writable; else shared=read-only; fi
if echo changed > "$HOME/.claude/.credentials.json" 2>/dev/null; then own=writable; else own=read-only; fi
echo '{"type":"system","subtype":"init","session_id":"probe-1"}'
echo "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"login=$token shared=$shared own=$own\"}]}}"
echo '{"type":"result","subtype":"success","is_error":false,"result":"probed"}'
