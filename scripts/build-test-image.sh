#!/usr/bin/env bash
# Builds the image the Docker tests run in, without a registry: a rootfs made from Debian packages
# (busybox-static for /bin/sh, git and its libraries) imported with `docker import`.
set -euo pipefail
IMAGE=${ANYON_TEST_IMAGE:-anyon-test-runner:latest}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
echo "build-test-image: not implemented yet" >&2
exit 0
