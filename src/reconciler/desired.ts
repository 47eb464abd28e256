import type { State } from '../events/types.ts';
import { ownerAlias } from '../events/names.ts';

export const FORWARD_CHAIN = 'LEDGERNET-FORWARD';
export const HOOK_COMMENT = 'ledgernet:hook';

export interface DesiredBridge {
  readonly networkId: string;
  readonly name: string;
  readonly alias: string;
  readonly mtu: number;
  /** Gateway addresses, sorted. */
  readonly addrs: readonly string[];
}

export interface DesiredVeth {
  readonly networkId: string;
  readonly endpointId: string;
  readonly name: string;
  readonly peer: string;
  readonly alias: string;
  readonly peerAlias: string;
  readonly mtu: number;
  readonly master: string;
  /** Joined: the peer is in the container, so a vanished veth cannot be recreated. */
  readonly joined: boolean;
}

export interface DesiredChain {
  readonly table: 'filter';
  readonly name: string;
  /** Rules as `iptables-save` prints them after `-A <chain> `. */
  readonly rules: readonly string[];
  /** The jump into this chain from a built-in chain, or null. */
  readonly hook: { readonly from: string; readonly rule: string } | null;
}

export interface DesiredState {
  readonly bridges: readonly DesiredBridge[];
  readonly veths: readonly DesiredVeth[];
  readonly chains: readonly DesiredChain[];
}

/** The kernel objects the folded state asks for. Pure; output sorted by name. */
export function desiredFromState(state: State): DesiredState {
  const networks = Object.values(state.networks).sort(byKey((n) => n.bridge));
  const bridges = networks.map(
    (n): DesiredBridge => ({
      networkId: n.networkId,
      name: n.bridge,
      alias: ownerAlias('network', n.networkId),
      mtu: n.mtu,
      addrs: [...n.ipv4Data, ...n.ipv6Data]
        .map((d) => d.gateway)
        .filter((g): g is string => g !== null)
        .sort(),
    }),
  );
  const veths: DesiredVeth[] = [];
  for (const ep of Object.values(state.endpoints)) {
    const net = state.networks[ep.networkId];
    if (!net || ep.lost) continue;
    veths.push({
      networkId: ep.networkId,
      endpointId: ep.endpointId,
      name: ep.veth,
      peer: ep.peer,
      alias: ownerAlias('endpoint', ep.endpointId),
      peerAlias: ownerAlias('peer', ep.endpointId),
      mtu: net.mtu,
      master: net.bridge,
      joined: ep.joined,
    });
  }
  veths.sort(byKey((v) => v.name));
  const chains: DesiredChain[] = [];
  if (networks.length > 0) {
    chains.push({
      table: 'filter',
      name: FORWARD_CHAIN,
      rules: networks.map(
        (n) => `-i ${n.bridge} -o ${n.bridge} -m comment --comment "ledgernet:network:${n.networkId}" -j ACCEPT`,
      ),
      hook: { from: 'FORWARD', rule: `-m comment --comment "${HOOK_COMMENT}" -j ${FORWARD_CHAIN}` },
    });
  }
  return { bridges, veths, chains };
}

export function byKey<T>(key: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}
