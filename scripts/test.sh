#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need (apt and pip),
# starts the services they use (PostgreSQL, the Docker Engine), then lint, type-check and pytest.
# Under CI=true nothing that a test needs may be missing: Docker and PostgreSQL tests must run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[test] %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }
APT_UPDATED=0
apt_install() {
  is_root || { log "not root: cannot install $*"; return 1; }
  if [ "$APT_UPDATED" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- system packages -------------------------------------------------------------------------
command -v git >/dev/null || apt_install git
# the deploy/ kit tests: shellcheck for bootstrap.sh, systemd-analyze for the unit
command -v shellcheck >/dev/null || apt_install shellcheck || true
command -v systemd-analyze >/dev/null || apt_install systemd || true
# the API docs page is loaded in a real headless browser (tests/test_front_door.py)
command -v chromium >/dev/null || apt_install chromium || true
# the real agent CLIs (tests/test_real_agent_clis.py) are installed with npm into /var/cache/anyon-test
command -v npm >/dev/null || apt_install nodejs npm || true

# --- python packages -------------------------------------------------------------------------
PY=${PYTHON:-python3}
log "installing the package with its dev extras"
"$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"

# --- PostgreSQL --------------------------------------------------------------------------------
pg_ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if [ -z "${ANYON_TEST_POSTGRES_URL:-}" ]; then
  if ! pg_ready && is_root; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then log "installing PostgreSQL"; apt_install postgresql; fi
    log "starting PostgreSQL"
    for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  fi
  if pg_ready; then
    PG_AUTH="postgres"
    if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && is_root; then
      # a fresh Debian cluster asks for a password on TCP: give the postgres role a test-only one
      su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'anyon-test'\"" >/dev/null
      PG_AUTH="postgres:anyon-test"
    fi
    export PGPASSWORD=${PG_AUTH#postgres:}
    [ "$PG_AUTH" = postgres ] && unset PGPASSWORD
    psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='anyon_test'" | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database anyon_test'
    export ANYON_TEST_POSTGRES_URL="postgresql://$PG_AUTH@127.0.0.1:5432/anyon_test"
  fi
fi
[ -n "${ANYON_TEST_POSTGRES_URL:-}" ] && log "PostgreSQL tests use $ANYON_TEST_POSTGRES_URL"

# --- Docker Engine -----------------------------------------------------------------------------
# The Docker tests need an engine and the locally built test image (scripts/build-test-image.sh; no
# registry is used). As root on a fresh machine: install docker.io, start dockerd without a bridge or
# iptables (test containers run with network "none"), then build the image (idempotent, fast if present).
docker_ready() { command -v docker >/dev/null && timeout 5 docker version >/dev/null 2>&1; }
if ! docker_ready && is_root; then
  command -v dockerd >/dev/null && command -v docker >/dev/null \
    || { log "installing docker.io"; apt_install docker.io; }
  if ! pgrep -x dockerd >/dev/null; then
    log "starting dockerd (no bridge, no iptables: test containers have no network)"
    mkdir -p /var/log/anyon-test
    setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
      >/var/log/anyon-test/dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do docker_ready && break; sleep 1; done
  docker_ready || { log "dockerd did not answer; its log ends with:"; tail -n 20 /var/log/anyon-test/dockerd.log >&2 || true; }
fi
export ANYON_TEST_IMAGE=${ANYON_TEST_IMAGE:-anyon-test-runner:latest}
if docker_ready; then
  log "making sure the test runner image $ANYON_TEST_IMAGE exists"
  if bash scripts/build-test-image.sh; then
    export ANYON_TEST_DOCKER=1
  else
    log "building $ANYON_TEST_IMAGE failed: Docker tests will $( [ "${CI:-}" = true ] && echo FAIL || echo 'be skipped')"
  fi
else
  log "no Docker Engine answers: Docker tests will $( [ "${CI:-}" = true ] && echo FAIL || echo 'be skipped')"
fi

# --- lint, types, tests ------------------------------------------------------------------------
log "ruff"
"$PY" -m ruff check anyon tests bench
log "mypy anyon (strict)"
"$PY" -m mypy anyon
log "pytest"
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
[ "$rc" = 5 ] && { log "pytest collected no tests"; exit 1; }
exit "$rc"
