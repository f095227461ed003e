#!/usr/bin/env bash
# The Docker engine the deployment tests (tests/deploy/) use, and the local base images they
# build the fedweave image on. Idempotent: what is there already is left as it is.
#
#   - docker.io and debootstrap from Debian's packages, when missing;
#   - dockerd with the vfs storage driver and no bridge or iptables rules (containers use
#     the host network), when no engine answers; its log goes to $DOCKERD_LOG;
#   - the base images, made by deploy/base_image.sh (`debootstrap --variant=minbase` and
#     `docker import`: no image registry is reachable, so nothing is pulled; the root
#     filesystems' tarballs are kept in $FEDWEAVE_CACHE, so a rerun on a fresh engine only
#     imports them): $FEDWEAVE_BASE_IMAGE (python3 and venv of Debian bookworm) and
#     $FEDWEAVE_SPARK_BASE_IMAGE (the same and a Java runtime, for the Spark workers).
#     The bundled broker's image is `make broker-image` (tests/deploy/conftest.py runs it).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE_IMAGE=${FEDWEAVE_BASE_IMAGE:-fedweave-base:bookworm}
SPARK_BASE_IMAGE=${FEDWEAVE_SPARK_BASE_IMAGE:-fedweave-base:bookworm-jre}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/fedweave-dockerd.log}

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

# python3-venv brings ensurepip's bundled pip: the image installs wheels with no network
bash "$HERE/../deploy/base_image.sh" "$BASE_IMAGE" python3 python3 python3-venv ca-certificates
bash "$HERE/../deploy/base_image.sh" "$SPARK_BASE_IMAGE" python3-jre \
  python3 python3-venv ca-certificates openjdk-17-jre-headless
