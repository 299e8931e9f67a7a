#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu GCP VM for anyon in cloud mode, then starts the service.
# Safe to run again (idempotent): it never overwrites /etc/anyon/settings.toml, /etc/anyon/anyon.env or
# the API token once they exist, so re-running it is how an upgrade is installed (deploy/RUNBOOK.md).
#
# Usage (as root, from a checkout of the repository or an unpacked copy of it):
#   sudo deploy/gcp/bootstrap.sh            # builds a wheel from this checkout and installs it
#   sudo ANYON_PACKAGE=/tmp/anyon-0.2.0-py3-none-any.whl deploy/gcp/bootstrap.sh   # a wheel built elsewhere
#   sudo ANYON_TLS_DOMAIN=anyon.example.com deploy/gcp/bootstrap.sh   # also Caddy with a certificate
#
# Every installed wheel is kept in $ANYON_PREFIX/releases: a rollback reinstalls the previous one.
# Settings: ANYON_USER (anyon), ANYON_BASE (/var/opt/anyon), ANYON_PREFIX (/opt/anyon),
# ANYON_IMAGE (anyon-claude:latest), ANYON_PACKAGE (a wheel; default: built from this checkout),
# ANYON_TLS_DOMAIN (unset: no reverse proxy), ANYON_START (1; 0 = do not start).
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
install -d -m 0755 "$ANYON_PREFIX" "$ANYON_PREFIX/releases"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if [ -z "${ANYON_PACKAGE:-}" ]; then
  # the same wheel `python -m build` makes (pip fetches the build backend from the package index)
  log "building the wheel from $SOURCE"
  build_dir=$(mktemp -d)
  "$VENV/bin/pip" wheel -q --no-deps -w "$build_dir" "$SOURCE"
  ANYON_PACKAGE=$(find "$build_dir" -name 'anyon-*.whl' -print -quit)
  [ -n "$ANYON_PACKAGE" ] || die "building the wheel from $SOURCE failed"
fi
[ -f "$ANYON_PACKAGE" ] || die "ANYON_PACKAGE=$ANYON_PACKAGE is not a file (a wheel: anyon-X.Y.Z-py3-none-any.whl)"
cp "$ANYON_PACKAGE" "$ANYON_PREFIX/releases/"
log "installing $(basename "$ANYON_PACKAGE") into $VENV"
"$VENV/bin/pip" install -q --upgrade --force-reinstall --no-deps "$ANYON_PACKAGE"
"$VENV/bin/pip" install -q "$ANYON_PACKAGE"   # its dependencies, if any are missing
log "installed: $("$VENV/bin/anyon" --version)"
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

# --- TLS (optional): Caddy in front, with a certificate it renews itself -----------------------------
if [ -n "${ANYON_TLS_DOMAIN:-}" ]; then
  dpkg -s caddy >/dev/null 2>&1 || {
    log "installing caddy"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy
  }
  if ! grep -q "^$ANYON_TLS_DOMAIN " /etc/caddy/Caddyfile 2>/dev/null; then
    log "writing /etc/caddy/Caddyfile for $ANYON_TLS_DOMAIN (the previous one kept as Caddyfile.orig)"
    [ -e /etc/caddy/Caddyfile ] && cp -n /etc/caddy/Caddyfile /etc/caddy/Caddyfile.orig
    sed "s/anyon.example.com/$ANYON_TLS_DOMAIN/" "$DEPLOY/etc/Caddyfile" > /etc/caddy/Caddyfile
  fi
  systemctl enable caddy.service
  systemctl reload-or-restart caddy.service
  log "TLS: add \"$ANYON_TLS_DOMAIN\" to server.public_hosts and \"127.0.0.1\" to server.trusted_proxies in $ETC/settings.toml"
fi

# --- check, then start ------------------------------------------------------------------------------
# As the unit runs it: its Environment= lines, then the EnvironmentFile (which wins), read by --env-file
# with systemd's rules, so a bad override or a PostgreSQL URL set there is checked too.
as_service() {
  runuser -u "$ANYON_USER" -- env ANYON_SETTINGS_FILE="$ETC/settings.toml" ANYON_DEPLOYMENT_MODE=cloud "$@"
}
log "anyon config validate"
as_service "$VENV/bin/anyon" config validate --env-file="$ETC/anyon.env" ||
  die "fix $ETC/settings.toml or $ETC/anyon.env (see the errors above) and run again"
log "anyon doctor"
as_service "$VENV/bin/anyon" doctor --env-file="$ETC/anyon.env" || die "fix what anyon doctor reports above and run again"

systemctl enable anyon.service
if [ "$ANYON_START" = 1 ]; then
  systemctl restart anyon.service
  systemctl is-active --quiet anyon.service || die "anyon did not start: journalctl -u anyon -n 50"
  log "anyon is running: systemctl status anyon; logs: journalctl -u anyon -f"
fi
log "done. The API token is in $token (give it to the board's users; rotate by replacing it and restarting)."
