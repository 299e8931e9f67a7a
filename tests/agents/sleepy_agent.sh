#!/bin/sh
# A stand-in coding agent that keeps running (container fault tests): prints a Claude-style session, then
# sleeps with a child of its own, unless the prompt says "quick", in which case it finishes at once.
prompt=$(cat)
echo '{"type":"system","subtype":"init","session_id":"sess-sleepy-1"}'
echo '{"type":"assistant","message":{"content":[{"type":"text","text":"working"}]}}'
case "$prompt" in
  *quick*)
    echo done > quick.txt
    echo '{"type":"result","subtype":"success","is_error":false,"result":"quick"}'
    exit 0;;
esac
sleep 300 &
sleep 300
