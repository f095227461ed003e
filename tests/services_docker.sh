#!/usr/bin/env bash
# The Docker engine the deployment tests (tests/deploy/) use, and the local base image they
# build the fedweave image on. Idempotent: what is there already is left as it is.
#
#   - docker.io and debootstrap from Debian's packages, when missing;
#   - dockerd with the vfs storage driver and no bridge or iptables rules (containers use
#     the host network), when no engine answers; its log goes to $DOCKERD_LOG;
#   - the base image $FEDWEAVE_BASE_IMAGE (python3 and venv of Debian bookworm), made with
#     `debootstrap --variant=minbase` and `docker import`: no image registry is reachable,
#     so nothing is pulled. The root filesystem's tarball is kept in $FEDWEAVE_CACHE, so a
#     rerun on a fresh engine only imports it.
set -euo pipefail

BASE_IMAGE=${FEDWEAVE_BASE_IMAGE:-fedweave-base:bookworm}
CACHE=${FEDWEAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fedweave}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/fedweave-dockerd.log}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm  # its python3 is 3.11, as the wheels built on the host for the image
TARBALL=$CACHE/rootfs-$SUITE-minbase-python3.tar

say() { echo "services: $*" >&2; }
die() { say "$*"; exit 1; }

apt_install() {
  # wait for another apt run's lock rather than fail on it
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq && \
         apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null; }
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "${missing[*]} not installed and not root (apt-get install ${missing[*]})"
  say "installing ${missing[*]}"
  apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
fi

engine_up() { docker info >/dev/null 2>&1; }
if ! engine_up; then
  say "starting dockerd (vfs, host network only; log: $DOCKERD_LOG)"
  # setsid: the engine outlives this script and the make that ran it
  setsid nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  engine_up || die "dockerd did not answer in 60 s: tail $DOCKERD_LOG"
fi
say "Docker engine running ($(docker version --format '{{.Server.Version}}'))"

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE present"
  exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$root" "$TARBALL.part"' EXIT
  say "debootstrap $SUITE (minbase, python3, python3-venv) from $MIRROR: a few minutes, once"
  # python3-venv brings ensurepip's bundled pip: the image installs wheels with no network
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed: tail $CACHE/debootstrap.log"
  # a lean image: no package lists, caches, docs or manuals
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
  chmod 0755 "$root"  # mktemp made it 0700: the image's / must be open to its non-root users
  tar --numeric-owner -C "$root" -cf "$TARBALL.part" .
  mv "$TARBALL.part" "$TARBALL"
  rm -rf "$root"
  trap - EXIT
fi
say "importing $TARBALL as $BASE_IMAGE"
docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$TARBALL" "$BASE_IMAGE" >/dev/null
say "base image $BASE_IMAGE built"
