#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu GCP VM for anyon in cloud mode, then starts the service.
# Safe to run again (idempotent): it never overwrites /etc/anyon/settings.toml, /etc/anyon/anyon.env or
# the API token once they exist, so re-running it is how an upgrade is installed (deploy/RUNBOOK.md).
#
# Usage (as root, from a checkout of the repository or an unpacked release):
#   sudo deploy/gcp/bootstrap.sh                    # installs the package from this checkout
#   sudo ANYON_PACKAGE=anyon==0.2.0 deploy/gcp/bootstrap.sh
#
# Settings: ANYON_USER (anyon), ANYON_BASE (/var/opt/anyon), ANYON_PREFIX (/opt/anyon),
# ANYON_IMAGE (anyon-claude:latest), ANYON_PACKAGE (this checkout), ANYON_START (1; 0 = do not start).
set -euo pipefail

ANYON_USER=${ANYON_USER:-anyon}
ANYON_BASE=${ANYON_BASE:-/var/opt/anyon}
ANYON_PREFIX=${ANYON_PREFIX:-/opt/anyon}
ANYON_IMAGE=${ANYON_IMAGE:-anyon-claude:latest}
ANYON_START=${ANYON_START:-1}
METADATA_ADDRESS=169.254.169.254
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(dirname "$HERE")
SOURCE=$(dirname "$DEPLOY")
ANYON_PACKAGE=${ANYON_PACKAGE:-$SOURCE}
ETC=/etc/anyon
VENV=$ANYON_PREFIX/venv

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"
command -v apt-get >/dev/null || die "this script supports Debian and Ubuntu (apt-get not found)"

# --- packages ---------------------------------------------------------------------------------------
missing=()
for pkg in docker.io git python3-venv iptables ca-certificates; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
systemctl enable --now docker.service

# --- the service user -------------------------------------------------------------------------------
if ! id -u "$ANYON_USER" >/dev/null 2>&1; then
  log "creating the system user $ANYON_USER"
  useradd --system --user-group --home-dir /var/lib/anyon --shell /usr/sbin/nologin "$ANYON_USER"
fi
# Containers are started through the Docker socket; the group grants it (checked again at start-up).
usermod -aG docker "$ANYON_USER"

# --- directories (the seed's layout) ----------------------------------------------------------------
for dir in "$ANYON_BASE" "$ANYON_BASE/data" "$ANYON_BASE/worktrees" "$ANYON_BASE/workspace" \
           "$ANYON_BASE/tmp" "$ANYON_BASE/logs" /var/log/anyon /var/lib/anyon; do
  install -d -o "$ANYON_USER" -g "$ANYON_USER" -m 0750 "$dir"
done
install -d -o root -g root -m 0755 "$ETC"
install -d -o root -g "$ANYON_USER" -m 0750 "$ETC/secrets"

# --- the API token (generated once, never printed) --------------------------------------------------
token="$ETC/secrets/api-token"
if [ ! -s "$token" ]; then
  log "generating the API token in $token"
  (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$token")
fi
chown "$ANYON_USER:$ANYON_USER" "$token"
chmod 0600 "$token"

# --- block the metadata server for the task network -------------------------------------------------
# Agents must not read the VM's service-account token. DOCKER-USER is evaluated for every container
# packet; a oneshot unit re-applies the rule whenever Docker (re)creates its chains.
cat > /etc/systemd/system/anyon-metadata-block.service <<UNIT
[Unit]
Description=Block the metadata server ($METADATA_ADDRESS) for Docker containers
After=docker.service
Requires=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'iptables -C DOCKER-USER -d $METADATA_ADDRESS -j DROP 2>/dev/null || iptables -I DOCKER-USER -d $METADATA_ADDRESS -j DROP'

[Install]
WantedBy=docker.service
UNIT
systemctl daemon-reload
systemctl enable --now anyon-metadata-block.service

# --- the package ------------------------------------------------------------------------------------
install -d -m 0755 "$ANYON_PREFIX"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
log "installing $ANYON_PACKAGE into $VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q --upgrade "$ANYON_PACKAGE"
rm -rf "$ANYON_PREFIX/deploy"
cp -r "$DEPLOY" "$ANYON_PREFIX/deploy"

# --- the runner image -------------------------------------------------------------------------------
if ! docker image inspect "$ANYON_IMAGE" >/dev/null 2>&1 || [ "${ANYON_REBUILD_IMAGE:-0}" = 1 ]; then
  log "building the runner image $ANYON_IMAGE (deploy/image/Dockerfile)"
  docker build -q -t "$ANYON_IMAGE" "$DEPLOY/image"
fi

# --- configuration (never overwritten) --------------------------------------------------------------
if [ ! -e "$ETC/settings.toml" ]; then
  install -o root -g "$ANYON_USER" -m 0640 "$DEPLOY/etc/settings.toml" "$ETC/settings.toml"
  sed -i "s/^user = \"anyon\"/user = \"$ANYON_USER\"/" "$ETC/settings.toml"
fi
if [ ! -e "$ETC/anyon.env" ]; then
  install -o root -g "$ANYON_USER" -m 0640 "$DEPLOY/etc/anyon.env.example" "$ETC/anyon.env"
fi

# --- the unit ---------------------------------------------------------------------------------------
unit=/etc/systemd/system/anyon.service
sed -e "s#/opt/anyon/venv#$VENV#g" -e "s#^User=anyon#User=$ANYON_USER#" -e "s#^Group=anyon#Group=$ANYON_USER#" \
    -e "s#^ReadWritePaths=/var/opt/anyon#ReadWritePaths=$ANYON_BASE#" \
    "$DEPLOY/systemd/anyon.service" > "$unit.new"
mv "$unit.new" "$unit"
chmod 0644 "$unit"
systemctl daemon-reload

# --- check, then start ------------------------------------------------------------------------------
as_service() {
  runuser -u "$ANYON_USER" -- env ANYON_SETTINGS_FILE="$ETC/settings.toml" ANYON_DEPLOYMENT_MODE=cloud "$@"
}
log "anyon config validate"
as_service "$VENV/bin/anyon" config validate || die "fix $ETC/settings.toml (see the errors above) and run again"
log "anyon doctor"
as_service "$VENV/bin/anyon" doctor || die "fix what anyon doctor reports above and run again"

systemctl enable anyon.service
if [ "$ANYON_START" = 1 ]; then
  systemctl restart anyon.service
  systemctl is-active --quiet anyon.service || die "anyon did not start: journalctl -u anyon -n 50"
  log "anyon is running: systemctl status anyon; logs: journalctl -u anyon -f"
fi
log "done. The API token is in $token (give it to the board's users; rotate by replacing it and restarting)."
