#!/bin/sh
# GitHub Copilot CLI with only /bin/sh (busybox), for the container tests: reads the prompt from stdin and
# answers in plain text. Like the real CLI, it keeps its sessions under $HOME/.copilot/session-state/<id>:
# "--session-id ID" starts session ID, "--resume ID" continues it (an unknown one is an error).
state="$HOME/.copilot/session-state"
new=; resume=
while [ $# -gt 0 ]; do
  case "$1" in
    --session-id) new=$2; shift;;
    --resume) resume=$2; shift;;
  esac
  shift
done
prompt=$(cat)
if [ -n "$resume" ]; then
  if [ ! -d "$state/$resume" ]; then
    echo "Error: No session found with ID $resume" >&2
    exit 1
  fi
  turns=$(cat "$state/$resume/turns")
  echo $((turns + 1)) > "$state/$resume/turns"
  echo "Resumed $resume after $turns turn(s): $prompt"
  exit 0
fi
mkdir -p "$state/$new" && echo 1 > "$state/$new/turns"
echo copilot > standin.txt
echo "Copilot in the container: $prompt"
echo
echo "Session ${new:-none}"
