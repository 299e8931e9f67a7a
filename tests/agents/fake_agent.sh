#!/bin/sh
# A stand-in coding agent for the container tests: needs only /bin/sh (busybox). Reads the prompt on stdin,
# records who and where it ran, edits the worktree and prints Claude-style stream-json lines.
prompt=$(cat)
echo '{"type":"system","subtype":"init","session_id":"sess-sh-1"}'
echo "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"uid=$(id -u) host=$(hostname)\"}]}}"
printf '%s\n' "$prompt" > agent.txt
id -u > whoami.txt
# images the prompt links (![alt](/abs/.vibe-images/x.png)): read them, as an agent would
for f in $(printf '%s\n' "$prompt" | grep -o '](/[^)]*/\.vibe-images/[^)]*)' | sed -e 's/^](//' -e 's/)$//'); do
  sha256sum "$f" >> seen.txt
done
echo '{"type":"assistant","message":{"content":[{"type":"text","text":"Done in container"}]}}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"Done in container"}'
