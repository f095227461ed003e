#!/usr/bin/env bash
# A local base image made from Debian packages alone: no image registry is needed (none is
# reachable where the tests run), so nothing is pulled.
#
#   deploy/base_image.sh IMAGE NAME PACKAGE[=VERSION]...
#
# `debootstrap --variant=minbase` of bookworm with PACKAGEs (and what they depend on), then
# `docker import` as IMAGE. PACKAGE=VERSION pins a package: the build fails when the mirror
# has another version (bump the pin, or point DEBIAN_MIRROR at a snapshot.debian.org date).
# The root filesystem's tarball is kept as $FEDWEAVE_CACHE/rootfs-bookworm-minbase-NAME.tar,
# so a fresh engine only imports it. Idempotent: an IMAGE already there is left as it is.
# ROOTFS_ONLY=1 makes the tarball only (no Docker engine needed).
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 IMAGE NAME PACKAGE[=VERSION]..." >&2; exit 2; }
IMAGE=$1 NAME=$2
shift 2
case $NAME in ''|*[!A-Za-z0-9.+_-]*|.*) echo "base image: NAME must be letters, digits, . + _ - (got '$NAME')" >&2; exit 2;; esac
CACHE=${FEDWEAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fedweave}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm  # its python3 is 3.11, as the wheels built on the host for the image
# keyed by the package list too: another list never reuses this rootfs
TARBALL=$CACHE/rootfs-$SUITE-minbase-$NAME-$(printf '%s\n' "$@" | sha256sum | cut -c1-12).tar
LOG=$CACHE/debootstrap-$NAME.log

say() { echo "base image: $*" >&2; }
die() { say "$*"; exit 1; }

if [ -z "${ROOTFS_ONLY:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE present"
  exit 0
fi
names=() pins=()
for spec in "$@"; do
  names+=("${spec%%=*}")
  [ "$spec" = "${spec%%=*}" ] || pins+=("$spec")
done
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  root=$(mktemp -d "$CACHE/rootfs-$NAME.XXXXXX")
  trap 'rm -rf "$root" "$TARBALL.part"' EXIT
  say "debootstrap $SUITE (minbase, $(IFS=,; echo "${names[*]}")) from $MIRROR: minutes, once (log: $LOG)"
  t0=$SECONDS
  debootstrap --variant=minbase --include="$(IFS=,; echo "${names[*]}")" "$SUITE" "$root" "$MIRROR" \
    >"$LOG" 2>&1 || die "debootstrap failed: tail $LOG"
  for pin in "${pins[@]}"; do
    got=$(chroot "$root" dpkg-query -W -f '${Version}' "${pin%%=*}")
    [ "$got" = "${pin#*=}" ] || die "$MIRROR has ${pin%%=*} $got, the pin is ${pin#*=}: bump the pin or use a mirror of that date"
  done
  # a lean image: no package lists, caches, docs or manuals
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  find "$root"/var/log -type f -delete
  # nothing secret made at install time goes into every image (an Erlang cookie): the
  # container makes its own on its first start
  rm -f "$root"/var/lib/rabbitmq/.erlang.cookie
  chmod 0755 "$root"  # mktemp made it 0700: the image's / must be open to its non-root users
  tar --numeric-owner -C "$root" -cf "$TARBALL.part" .
  mv "$TARBALL.part" "$TARBALL"
  rm -rf "$root"
  trap - EXIT
  say "$TARBALL: $(du -m "$TARBALL" | cut -f1) MiB in $((SECONDS - t0)) s"
fi
[ -z "${ROOTFS_ONLY:-}" ] || exit 0
say "importing $TARBALL as $IMAGE"
docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$TARBALL" "$IMAGE" >/dev/null
say "$IMAGE built"
