#!/usr/bin/env bash
# `npm run plugin:build [-- OUT]`: builds ledgernet as a managed (v2) Docker plugin directory,
# OUT (default build/plugin), from local files only: no image pull, no registry.
#
#   OUT/config.json   the plugin manifest (network driver, host network, CAP_NET_ADMIN, state, host-guard and docker-api mounts)
#   OUT/rootfs/       node and its libraries, ip + tc (iproute2), iptables-nft (xtables-nft-multi,
#                     its symlinks, libraries and extension modules), nft and libnftables (the
#                     nftables backend: `--firewall auto` picks it where Docker 29 uses nftables),
#                     flock, perl, the built app in /app
#
# Then, as root:
#   docker plugin create ledgernet/ledgernet:latest OUT
#   mkdir -p /var/lib/ledgernet          # the state mount's source; `docker plugin set … state.source=DIR` to move it
#   docker plugin enable ledgernet/ledgernet:latest
#   docker network create --driver ledgernet/ledgernet:latest --subnet 10.231.60.0/24 net1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly REPO=$PWD
readonly OUT=${1:-build/plugin}
readonly ROOTFS=$OUT/rootfs

die() {
  printf 'build-plugin: %s\n' "$*" >&2
  exit 1
}

# The programs the plugin runs (src/kernel runs ip, tc, iptables-save, iptables-restore).
readonly NODE_BIN=${LEDGERNET_PLUGIN_NODE:-$(command -v node)}
readonly IP_BIN=$(command -v ip || true)
readonly TC_BIN=$(command -v tc || true)
readonly XTABLES_BIN=$(command -v xtables-nft-multi || true)
readonly NFT_BIN=$(command -v nft || true)
# flock(1) takes the state-dir lock and the host guard; perl reads control.sock's peer (SO_PEERCRED).
readonly FLOCK_BIN=$(command -v flock || true)
readonly PERL_BIN=$(command -v perl || true)
[[ -x "$NODE_BIN" ]] || die "node not found"
[[ -n "$IP_BIN" ]] || die "ip not found (package iproute2)"
[[ -n "$TC_BIN" ]] || die "tc not found (package iproute2)"
[[ -n "$XTABLES_BIN" ]] || die "xtables-nft-multi not found (package iptables)"
[[ -n "$NFT_BIN" ]] || die "nft not found (package nftables)"
[[ -n "$FLOCK_BIN" ]] || die "flock not found (package util-linux)"
[[ -n "$PERL_BIN" ]] || die "perl not found (package perl-base)"
command -v ldd >/dev/null || die "ldd not found"

npm run build --silent

rm -rf "$OUT"
mkdir -p "$ROOTFS"

# Mirror the host's merged-/usr layout (bin -> usr/bin, lib -> usr/lib, …) so that library paths
# printed by ldd (/lib/x86_64-linux-gnu/…) and the dynamic loader path resolve the same way inside.
mkdir -p "$ROOTFS"/usr/{bin,sbin,lib}
for d in bin sbin lib lib64; do
  if [[ -L "/$d" ]]; then
    mkdir -p "$ROOTFS/$(readlink "/$d")"
    ln -s "$(readlink "/$d")" "$ROOTFS/$d"
  else
    mkdir -p "$ROOTFS/$d"
  fi
done

# copy SRC [DEST]: the file SRC points to (symlinks resolved), at DEST (default SRC) in the rootfs.
copy() {
  local src=$1 dest=${2:-$1}
  mkdir -p "$ROOTFS$(dirname "$dest")"
  cp -L --preserve=mode "$src" "$ROOTFS$dest"
}

# Every shared library a binary or module needs, and the dynamic loader, by absolute path.
libs_of() {
  ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}

declare -A LIBS=()
need_libs() {
  local f lib
  for f in "$@"; do
    while read -r lib; do
      [[ -n "$lib" ]] && LIBS[$lib]=1
    done < <(libs_of "$f")
  done
}

copy "$NODE_BIN" /usr/bin/node
copy "$IP_BIN" /usr/sbin/ip
copy "$TC_BIN" /usr/sbin/tc
copy "$XTABLES_BIN" /usr/sbin/xtables-nft-multi
copy "$NFT_BIN" /usr/sbin/nft
copy "$FLOCK_BIN" /usr/bin/flock
copy "$PERL_BIN" /usr/bin/perl
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -s xtables-nft-multi "$ROOTFS/usr/sbin/$name"
done

# iptables extensions (-m comment, -j ACCEPT, …) are loaded from libxtables' directory at run time.
XTABLES_LIB=$(libs_of "$XTABLES_BIN" | grep -m1 '/libxtables\.so' || true)
[[ -n "$XTABLES_LIB" ]] || die "cannot find libxtables for $XTABLES_BIN"
XTABLES_MODULES=$(dirname "$(readlink -f "$XTABLES_LIB")")/xtables
[[ -d "$XTABLES_MODULES" ]] || die "no iptables extension directory at $XTABLES_MODULES"
mkdir -p "$ROOTFS$XTABLES_MODULES"
cp -L --preserve=mode "$XTABLES_MODULES"/*.so "$ROOTFS$XTABLES_MODULES/"

# nft's libraries include libnftables.so.1, which the daemon also loads in-process (koffi).
need_libs "$NODE_BIN" "$IP_BIN" "$TC_BIN" "$XTABLES_BIN" "$NFT_BIN" "$FLOCK_BIN" "$PERL_BIN" "$XTABLES_MODULES"/*.so
for lib in "${!LIBS[@]}"; do
  copy "$lib"
done

# Small data files the tools read when present.
for f in /etc/protocols /etc/services /etc/ethertypes; do
  [[ -f "$f" ]] && copy "$f"
done
[[ -d /etc/iproute2 ]] && cp -rL /etc/iproute2 "$ROOTFS/etc/"

mkdir -p "$ROOTFS"/{etc,tmp,proc,sys,dev,run/docker/plugins,run/ledgernet-host,var/lib/ledgernet,root}
chmod 1777 "$ROOTFS/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"

# The app: compiled JavaScript and production dependencies only.
mkdir -p "$ROOTFS/app"
cp -r dist package.json package-lock.json "$ROOTFS/app/"
cp -r node_modules "$ROOTFS/app/"
(cd "$ROOTFS/app" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --offline --loglevel=error >/dev/null 2>&1) ||
  die "npm prune --omit=dev failed in $ROOTFS/app"
find "$ROOTFS/app/node_modules" -depth -type d -empty -delete

# The docker-api mount is the directory that holds Docker's socket, not the socket file: dockerd
# removes and makes its socket anew at each start, and a file mount would keep the old one for a
# plugin that outlives dockerd (live-restore). `bind`, not `rbind`: the host's /run holds other
# mounts (containers' netns files, ip netns), which the plugin must not copy and so keep alive.
# Read-only: connect() to a socket needs no write access to its mount.
# "env" declares every LEDGERNET_* variable serve reads (Docker refuses to set any other), except
# those README's plugin section names as left out; test/unit/plugin-env.test.ts checks both.
cat >"$OUT/config.json" <<'EOF'
{
  "description": "ledgernet: Docker network driver with a durable event log and a reconciler",
  "documentation": "https://github.com/ledgernet/ledgernet#install",
  "entrypoint": ["/usr/bin/node", "--max-semi-space-size=1", "--heap-growing-percent=20", "/app/dist/cli.js", "serve", "--socket", "/run/docker/plugins/ledgernet.sock", "--state-dir", "/var/lib/ledgernet"],
  "workdir": "/app",
  "interface": { "types": ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"], "socket": "ledgernet.sock" },
  "network": { "type": "host" },
  "linux": { "capabilities": ["CAP_NET_ADMIN"] },
  "mounts": [
    {
      "name": "state",
      "description": "the state directory on the host (event log, snapshots, lock)",
      "type": "bind",
      "source": "/var/lib/ledgernet",
      "destination": "/var/lib/ledgernet",
      "options": ["rbind", "rw"],
      "settable": ["source"]
    },
    {
      "name": "host-guard",
      "description": "the host's /run/docker/plugins, where the host-wide guard (one ledgernet per host) lives; Docker creates it before any plugin starts",
      "type": "bind",
      "source": "/run/docker/plugins",
      "destination": "/run/ledgernet-host",
      "options": ["rbind", "rw"]
    },
    {
      "name": "proc-sys-net",
      "description": "the host's /proc/sys/net, writable (Docker mounts /proc/sys read-only in a plugin): each bridge's accept_ra and route_localnet, bridge filtering for icc=false, IPv6 forwarding (LEDGERNET_IPV6_FORWARDING); LEDGERNET_PROC_SYS_NET names it",
      "type": "bind",
      "source": "/proc/sys/net",
      "destination": "/run/ledgernet-sysctl/net",
      "options": ["bind", "rw"]
    },
    {
      "name": "docker-api",
      "description": "the host's directory of Docker's API socket (docker.sock; LEDGERNET_DOCKER_SOCKET names it): networks removed while the plugin was down, endpoints Docker abandoned, the plugin's own name. The directory, not the socket file: dockerd makes a new socket each start, and with live-restore the plugin outlives it",
      "type": "bind",
      "source": "/var/run",
      "destination": "/run/ledgernet-docker",
      "options": ["bind", "ro"],
      "settable": ["source"]
    }
  ],
  "env": [
    { "name": "LEDGERNET_LOG_LEVEL", "description": "log level (trace, debug, info, warn, error)", "settable": ["value"], "value": "info" },
    { "name": "LEDGERNET_RECONCILE_INTERVAL", "description": "seconds between reconcile passes", "settable": ["value"], "value": "10" },
    { "name": "LEDGERNET_WORKER_WATCHDOG", "description": "seconds the worker's event loop may leave the supervisor's pings unanswered before it is killed and replaced (0: never)", "settable": ["value"], "value": "15" },
    { "name": "LEDGERNET_WORKER_START_TIMEOUT", "description": "the same for a worker that has not said it is ready yet (0: never)", "settable": ["value"], "value": "60" },
    { "name": "LEDGERNET_HOST", "description": "host name in event ids and NATS subjects (empty: the machine's host name)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_URL", "description": "publish the audit stream to this NATS server (empty: off)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_TOKEN", "description": "NATS token (empty: none)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_USER", "description": "NATS user (empty: none)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_PASSWORD", "description": "NATS password of LEDGERNET_NATS_USER", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_CREDS", "description": "a NATS .creds file as the plugin sees it, e.g. in the state mount: /var/lib/ledgernet/nats.creds (empty: none)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_TLS_CA", "description": "CA file to verify the NATS server, as the plugin sees it, e.g. /var/lib/ledgernet/nats-ca.pem; turns TLS on (empty: none)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_TLS_CERT", "description": "client certificate file for mutual TLS with NATS, as the plugin sees it (empty: none)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_TLS_KEY", "description": "key file of LEDGERNET_NATS_TLS_CERT, as the plugin sees it (empty: none)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_NATS_STREAM", "description": "the JetStream stream of the audit stream (empty: LEDGERNET)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_VTEP", "description": "this host's underlay address for cluster networks (empty: the source address towards the first NATS server)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_CLUSTER_HOST_TIMEOUT", "description": "a cluster host not heard of for this long has its entries removed, e.g. 60s (empty: 30s; at least 1s)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_FIREWALL", "description": "firewall backend: auto (follow Docker: nftables where Docker 29+ uses it), iptables or nftables", "settable": ["value"], "value": "auto" },
    { "name": "LEDGERNET_ALLOW_DIRECT_ROUTING", "description": "1: no direct-access protection on any network (Docker 28's --allow-direct-routing; empty or 0: protected)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_IPV6_FORWARDING", "description": "1: turn the host's IPv6 forwarding on while a network with IPv6 has a way out, as Docker's bridge driver does (empty or 0: only named)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_CONTROL_GROUP", "description": "a host group's number (the plugin cannot read the host's group names): its members may use control.sock in the state mount's source, with full control (reconcile, release, events archive, cluster forget; empty: root only)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_METRICS", "description": "HOST:PORT for Prometheus metrics (empty: off)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_ABANDONED_GRACE", "description": "seconds an endpoint no Docker container holds is kept before it is released (empty: 60)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_ARCHIVE_LOG_SIZE", "description": "archive events.log once it holds this many bytes, e.g. 256M (empty or 0: off)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_DEFAULT_POOL", "description": "IPv4 range automatic IPAM pools are carved from (empty: 10.231.0.0/16)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_DEFAULT_POOL_SIZE", "description": "prefix length of each automatic IPv4 pool (empty: 24)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_DEFAULT_POOL6", "description": "IPv6 range automatic IPAM pools are carved from (empty: fd00:231::/48)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_DEFAULT_POOL6_SIZE", "description": "prefix length of each automatic IPv6 pool (empty: 64)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_DRIVER_NAME", "description": "the name Docker knows this driver by (empty: the plugin's name, asked of Docker)", "settable": ["value"], "value": "" },
    { "name": "LEDGERNET_DOCKER_SOCKET", "description": "Docker's API socket as the plugin sees it, in the docker-api mount (empty: never ask Docker)", "settable": ["value"], "value": "/run/ledgernet-docker/docker.sock" },
    { "name": "LEDGERNET_PROC_SYS_NET", "description": "where the proc-sys-net mount puts the host's /proc/sys/net", "value": "/run/ledgernet-sysctl/net" },
    { "name": "LEDGERNET_RUN_DIR", "description": "where the host guard lives (the host-guard mount)", "value": "/run/ledgernet-host" },
    { "name": "PATH", "value": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
  ]
}
EOF

size=$(du -sh "$OUT" | cut -f1)
printf 'build-plugin: %s built (%s): docker plugin create <name>:latest %s\n' "$OUT" "$size" "$OUT"
