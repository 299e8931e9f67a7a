#!/usr/bin/env bash
# Builds the image the Docker tests run in, without a registry: a root filesystem made from Debian
# packages (busybox-static for /bin/sh and the usual tools, git and the libraries its binary links)
# imported with `docker import`. Idempotent: exits at once when the image already exists
# (set ANYON_TEST_IMAGE_REBUILD=1 to rebuild). The production runner image is deploy/image/Dockerfile.
set -euo pipefail
IMAGE=${ANYON_TEST_IMAGE:-anyon-test-runner:latest}
log() { printf '[build-test-image] %s\n' "$*" >&2; }

if [ "${ANYON_TEST_IMAGE_REBUILD:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null || { log "apt-get is needed to fetch the Debian packages"; exit 1; }
command -v dpkg >/dev/null || { log "dpkg is needed to unpack the Debian packages"; exit 1; }

# git's own binary links only libc, pcre2 and zlib; the remote helpers (curl, expat, perl) are left out
# because test containers have no network anyway.
PACKAGES=(busybox-static git libc6 libpcre2-8-0 zlib1g)

WORK=$(mktemp -d /tmp/anyon-test-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
mkdir -p "$WORK/debs" "$WORK/rootfs"
chmod 777 "$WORK/debs"  # apt's download sandbox user must be able to write here

download() { (cd "$WORK/debs" && apt-get download -qq "${PACKAGES[@]}" >/dev/null 2>"$WORK/apt.err"); }
if ! download; then
  log "refreshing the package lists"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  download || { cat "$WORK/apt.err" >&2; log "could not download ${PACKAGES[*]}"; exit 1; }
fi

ROOTFS=$WORK/rootfs
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$ROOTFS"; done
rm -rf "$ROOTFS"/usr/share/{doc,man,info,locale,lintian,bug,perl5} "$ROOTFS"/usr/share/git-core/templates/hooks

# busybox applets as symlinks, without shadowing anything a package installed (git, ld.so, ...)
"$ROOTFS/bin/busybox" --list-full | while read -r applet; do
  [ -e "$ROOTFS/$applet" ] || [ -L "$ROOTFS/$applet" ] && continue
  mkdir -p "$ROOTFS/$(dirname "$applet")"
  ln -s /bin/busybox "$ROOTFS/$applet"
done

mkdir -p "$ROOTFS"/{etc,tmp,proc,sys,dev,home,root,run,var/tmp}
chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"

# the image must run git, not just contain it
"$ROOTFS/bin/busybox" true
log "importing $IMAGE"
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
  --change 'CMD ["/bin/sh"]' \
  - "$IMAGE" >/dev/null
docker run --rm --network none "$IMAGE" git --version >/dev/null \
  || { log "$IMAGE was built but git does not run inside it"; exit 1; }
log "built $IMAGE"
