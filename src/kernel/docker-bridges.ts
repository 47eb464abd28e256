// Docker's bridges that its name patterns (docker0, br-<id>, docker_gwbridge) do not cover: a
// network made with `-o com.docker.network.bridge.name=…`, or the daemon's `"bridge": …`. Each
// firewall backend isolates ledgernet's networks from Docker's bridges by those patterns; a bridge
// of another name would otherwise be taken for the outside (ledgernet's containers reached its
// containers). Docker's own chains that hold rules for its bridges only name every bridge of its
// bridge networks, so they are read from the observed tables: no call to Docker's API, and the
// list is as current as the kernel read. Up to Docker 27 those are DOCKER-ISOLATION-STAGE-1 and
// -2 (an --internal network's drops included); from Docker 28 on DOCKER-BRIDGE and DOCKER-CT (one
// rule per bridge that is not internal) and DOCKER-INTERNAL (the internal ones). Never DOCKER-USER
// (the operator's) or DOCKER (host interfaces may stand there).
import type { KernelSnapshot } from './types.ts';

const BRIDGE_CHAINS = ['DOCKER-ISOLATION-STAGE-1', 'DOCKER-ISOLATION-STAGE-2', 'DOCKER-BRIDGE', 'DOCKER-CT', 'DOCKER-INTERNAL'];
/** The prefix of the bridges of Docker's user networks (`br-<id>`). */
const USER_NETWORK_PREFIX = 'br-';

/**
 * Docker's own bridges by name, as a backend spells them (iptables' wildcard is `+`, nftables'
 * `*`): the default one, user networks (`br-<id>`), the swarm gateway bridge.
 */
export function dockerBridgePatterns(wildcard: '+' | '*'): string[] {
  return ['docker0', `${USER_NETWORK_PREFIX}${wildcard}`, 'docker_gwbridge'];
}

/** A name the patterns cover already. */
const covered = (name: string) => name.startsWith(USER_NETWORK_PREFIX) || dockerBridgePatterns('*').includes(name);
/** An interface name as the kernel allows it, without a wildcard or anything a rule could misread. */
const PLAIN_NAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

/**
 * The bridges Docker's bridge-only chains name, other than those its patterns cover and
 * ledgernet's own (names starting with `ownPrefix`); sorted, each once. Empty when Docker writes
 * no iptables rules (`"iptables": false`, or its own nftables backend).
 */
export function dockerBridgesOf(snapshot: KernelSnapshot, ownPrefix: string): string[] {
  const out = new Set<string>();
  for (const table of [snapshot.filter, snapshot.filter6]) {
    for (const chain of BRIDGE_CHAINS) {
      for (const rule of table?.chains[chain]?.rules ?? []) {
        for (const m of rule.matchAll(/(?:^|\s)-[io] (\S+)/g)) {
          const name = m[1] ?? '';
          if (PLAIN_NAME.test(name) && !covered(name) && !name.startsWith(ownPrefix)) out.add(name);
        }
      }
    }
  }
  return [...out].sort();
}
