#!/usr/bin/env bash
# Prepares this machine for ledgernet's integration and end-to-end tests:
#   1. Debian packages: docker.io iptables nftables iproute2 nats-server busybox-static procps (sysctl, for
#      the namespace tests) iperf3 (for the throughput benchmark) docker-compose (Debian's 1.29,
#      for the compose e2e test) conntrack (tests insert and list connection-tracking entries)
#   2. a running dockerd (started in the background when nothing answers; there is no systemd)
#   3. the local images ledgernet-test-busybox:latest (docker import of busybox-static; no pulls)
#      and ledgernet-test-iperf3:latest (the same plus iperf3 and the libraries ldd lists)
#   4. br_netfilter, so bridged traffic passes iptables as it does on a real docker host
# Idempotent and quiet on success; run as root. Exits non-zero with a message on failure.
set -euo pipefail

readonly PACKAGES=(docker.io iptables nftables iproute2 nats-server busybox-static procps iperf3 docker-compose conntrack)
readonly TEST_IMAGE=ledgernet-test-busybox:latest
readonly IPERF3_IMAGE=ledgernet-test-iperf3:latest
# Bump when the image recipe below changes, so existing machines rebuild the image.
readonly IMAGE_RECIPE=1
readonly IPERF3_RECIPE=1
readonly DOCKERD_LOG=/var/log/ledgernet-test-dockerd.log
readonly DOCKERD_WAIT_SECONDS=60

die() {
  printf 'test-env: %s\n' "$*" >&2
  exit 1
}
warn() { printf 'test-env: warning: %s\n' "$*" >&2; }

# Debian's client matches the 20.10 engine; /usr/local/bin/docker may be a newer CLI first in PATH.
docker_bin() {
  if [[ -x /usr/bin/docker ]]; then
    echo /usr/bin/docker
  else
    command -v docker || true
  fi
}

pkg_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == 'install ok installed' ]]
}

ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  # Without systemd, cgroups may not be mounted; Debian's helper mounts them for dockerd.
  if ! grep -q cgroup /proc/mounts && ! command -v cgroupfs-mount >/dev/null; then
    pkg_installed cgroupfs-mount || missing+=(cgroupfs-mount)
  fi
  # dockerd cannot start containers on an AppArmor kernel without apparmor_parser.
  if [[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" == Y ]] && ! command -v apparmor_parser >/dev/null; then
    pkg_installed apparmor || missing+=(apparmor)
  fi
  ((${#missing[@]} == 0)) && return 0

  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them"
  local out policy=/usr/sbin/policy-rc.d
  out="$(mktemp)"
  APT_OUT="$out"
  # Keep maintainer scripts from starting services (dockerd, nats-server): this script starts
  # dockerd itself, and invoke-rc.d without an init system can fail the install.
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    MADE_POLICY="$policy"
  fi
  # A fresh machine depends on the mirror: each download is retried (Acquire::Retries), and the
  # whole update + install up to twice more, APT_RETRY_PAUSE seconds apart (default 15), after an
  # index changed under the update or a mirror's brief outage.
  local rc attempt
  for attempt in 1 2 3; do
    rc=0
    {
      export DEBIAN_FRONTEND=noninteractive
      apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -q update &&
        apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -q -y --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
          install "${missing[@]}"
    } </dev/null >>"$out" 2>&1 || rc=$?
    ((rc == 0)) && break
    if ((attempt < 3)); then
      warn "apt-get failed (exit $rc, attempt $attempt of 3); trying again in ${APT_RETRY_PAUSE:-15}s"
      sleep "${APT_RETRY_PAUSE:-15}"
    fi
  done
  if ((rc != 0)); then
    cat "$out" >&2
    die "apt-get could not install: ${missing[*]} (exit $rc, 3 attempts)"
  fi
  for p in "${missing[@]}"; do
    pkg_installed "$p" || die "package $p is still not installed after apt-get"
  done
}

ensure_cgroups() {
  grep -q cgroup /proc/mounts && return 0
  if command -v cgroupfs-mount >/dev/null; then
    cgroupfs-mount >/dev/null 2>&1 || warn "cgroupfs-mount failed; dockerd may not start"
  fi
}

docker_answers() {
  timeout 10 "$DOCKER" info >/dev/null 2>&1
}

# procps (pgrep) may be missing on a fresh machine; /proc is always there.
dockerd_running() {
  local comm name
  for comm in /proc/[0-9]*/comm; do
    { read -r name <"$comm"; } 2>/dev/null || continue
    [[ "$name" == dockerd ]] && return 0
  done
  return 1
}

# Starts dockerd in the background unless one runs (starting, or a previous run of this script).
spawn_dockerd() {
  command -v dockerd >/dev/null || die "dockerd is not installed (package docker.io)"
  if ! dockerd_running; then
    ensure_cgroups
    # dockerd outlives this script: it must not inherit our descriptors (a caller's flock on the
    # test lock would otherwise be held by dockerd forever).
    (
      cd /
      for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        ((fd > 2)) && eval "exec $fd>&-"
      done
      # shellcheck disable=SC2086 # flags for one start, word by word (e.g. --live-restore)
      exec setsid dockerd ${LEDGERNET_TEST_DOCKERD_FLAGS:-} >>"$DOCKERD_LOG" 2>&1 </dev/null
    ) &
    disown
  fi
}

ensure_dockerd() {
  docker_answers && return 0
  spawn_dockerd
  local i
  for ((i = 0; i < DOCKERD_WAIT_SECONDS; i++)); do
    docker_answers && return 0
    sleep 1
  done
  echo "--- last lines of $DOCKERD_LOG ---" >&2
  tail -n 40 "$DOCKERD_LOG" >&2 2>/dev/null || true
  die "dockerd did not answer '$DOCKER info' within ${DOCKERD_WAIT_SECONDS}s"
}

ensure_br_netfilter() {
  # The sysctl directory exists once br_netfilter is active, loaded or built in.
  [[ -d /proc/sys/net/bridge ]] && return 0
  if command -v modprobe >/dev/null; then
    modprobe br_netfilter >/dev/null 2>&1 || true
  fi
  [[ -d /proc/sys/net/bridge ]] ||
    warn "br_netfilter is not active (no modprobe or module); bridged traffic will bypass iptables"
}

image_recipe() {
  "$DOCKER" image inspect -f '{{ index .Config.Labels "io.ledgernet.test-image.recipe" }}' \
    "$1" 2>/dev/null || true
}

# A root file system with busybox-static as /bin/* in BUILD_ROOT (a new temp dir).
make_busybox_root() {
  local busybox
  busybox="$(dpkg -L busybox-static 2>/dev/null | grep -m1 -E '/bin/busybox$' || true)"
  [[ -n "$busybox" && -x "$busybox" ]] || busybox="$(command -v busybox || true)"
  [[ -n "$busybox" ]] || die "no busybox binary found (package busybox-static)"

  local root
  root="$(mktemp -d)"
  BUILD_ROOT="$root"
  mkdir -p "$root"/{bin,etc,tmp,root,var/www,dev,proc,sys,usr}
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  chmod 0755 "$root/bin/busybox"
  local applet
  while read -r applet; do
    [[ -n "$applet" && "$applet" != busybox && ! -e "$root/bin/$applet" ]] || continue
    ln -s busybox "$root/bin/$applet"
  done < <("$busybox" --list)
  # One flat /bin; the usual other paths point at it, so /sbin/ip and /usr/bin/env work too.
  ln -s bin "$root/sbin"
  ln -s ../bin "$root/usr/bin"
  ln -s ../bin "$root/usr/sbin"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  echo 'ledgernet test page' >"$root/var/www/index.html"
}

# docker import of BUILD_ROOT as image $1 with recipe label $2; removes BUILD_ROOT.
import_root() {
  tar -C "$BUILD_ROOT" --numeric-owner --owner=0 --group=0 -cf - . |
    "$DOCKER" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["sh"]' \
      --change "LABEL io.ledgernet.test-image.recipe=$2" \
      - "$1" >/dev/null ||
    die "docker import of $1 failed"
  rm -rf "$BUILD_ROOT"
  BUILD_ROOT=
}

ensure_image() {
  [[ "$(image_recipe "$TEST_IMAGE")" == "$IMAGE_RECIPE" ]] && return 0
  make_busybox_root
  import_root "$TEST_IMAGE" "$IMAGE_RECIPE"
}

# The busybox root plus Debian's iperf3 and every library ldd lists for it, at the same paths
# (the loader included), so the benchmark measures the same binary on both drivers.
ensure_iperf3_image() {
  [[ "$(image_recipe "$IPERF3_IMAGE")" == "$IPERF3_RECIPE" ]] && return 0
  local iperf3 lib
  iperf3="$(command -v iperf3 || true)"
  [[ -n "$iperf3" ]] || die "no iperf3 binary found (package iperf3)"
  make_busybox_root
  # /usr/bin is a link to /bin in this root.
  cp "$iperf3" "$BUILD_ROOT/bin/iperf3"
  while read -r lib; do
    mkdir -p "$BUILD_ROOT$(dirname "$lib")"
    cp -L "$lib" "$BUILD_ROOT$lib"
  done < <(ldd "$iperf3" | grep -oE '/[^ ]+' | sort -u)
  import_root "$IPERF3_IMAGE" "$IPERF3_RECIPE"
}

# Every applet the tests rely on must exist and work; nothing here needs a network.
readonly SELFTEST='
set -e
for a in sh true sleep ping nc wget httpd ip timeout; do
  command -v "$a" >/dev/null || { echo "missing applet: $a"; exit 1; }
done
ping -c1 -W2 127.0.0.1 >/dev/null
ip -o link show lo >/dev/null
httpd -p 127.0.0.1:8080 -h /var/www
# This wget has no -T (it segfaults on it); bound it with timeout instead.
timeout 5 wget -q -O - http://127.0.0.1:8080/index.html | grep -q "ledgernet test page"
echo hello-nc | timeout 5 nc -l -p 9000 >/dev/null &
sleep 0.2
timeout 5 nc 127.0.0.1 9000 </dev/null | grep -q hello-nc
'

selftest_image() {
  local out
  if ! out="$("$DOCKER" run --rm --network none "$TEST_IMAGE" true 2>&1)"; then
    die "self-test: 'docker run --rm --network none $TEST_IMAGE true' failed: $out"
  fi
  if ! out="$("$DOCKER" run --rm --network none "$TEST_IMAGE" sh -c "$SELFTEST" 2>&1)"; then
    die "self-test of $TEST_IMAGE failed: $out"
  fi
}

selftest_iperf3_image() {
  local out
  if ! out="$("$DOCKER" run --rm --network none "$IPERF3_IMAGE" iperf3 --version 2>&1)"; then
    die "self-test: 'docker run --rm --network none $IPERF3_IMAGE iperf3 --version' failed: $out"
  fi
}

# Temporary things to remove however the script ends.
BUILD_ROOT='' APT_OUT='' MADE_POLICY=''
cleanup() {
  [[ -z "$BUILD_ROOT" ]] || rm -rf "$BUILD_ROOT"
  [[ -z "$APT_OUT" ]] || rm -f "$APT_OUT"
  [[ -z "$MADE_POLICY" ]] || rm -f "$MADE_POLICY"
}
trap cleanup EXIT

main() {
  ((EUID == 0)) || die "must run as root (it installs packages, starts dockerd, loads modules)"
  ensure_packages
  DOCKER="$(docker_bin)"
  [[ -n "$DOCKER" ]] || die "no docker client found"
  readonly DOCKER
  ensure_dockerd
  ensure_br_netfilter
  # The plugin socket lives here; dockerd scans it for <name>.sock.
  mkdir -p /run/docker/plugins
  ensure_image
  selftest_image
  ensure_iperf3_image
  selftest_iperf3_image
}

# `test-env.sh dockerd`: only make sure dockerd runs and answers (tests that restart dockerd
# start it again this way); `test-env.sh dockerd-spawn`: only start it, without waiting.
# LEDGERNET_TEST_DOCKERD_FLAGS: flags for a dockerd this call starts (none otherwise).
case "${1:-}" in
  dockerd | dockerd-spawn)
    ((EUID == 0)) || die "must run as root"
    DOCKER="$(docker_bin)"
    readonly DOCKER
    if [[ "$1" == dockerd ]]; then ensure_dockerd; else spawn_dockerd; fi
    ;;
  *) main "$@" ;;
esac
