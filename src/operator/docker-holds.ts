// What Docker still holds of ledgernet's objects, read through its API: the view `ledgernet
// repair` compares with the log, and the check that keeps `ledgernet release` to what Docker no
// longer has (releasing a network or an endpoint Docker still uses takes the interfaces of
// running containers away, with Docker none the wiser).
import type { DockerApi } from './docker-api.ts';
import { short, type Command, type State } from '../events/index.ts';
import { canonicalIp, formatPrefix, parsePrefix } from '../events/domain/cidr.ts';

export interface DockerEndpoint {
  readonly endpointId: string;
  /** The endpoint's name (the container's name), what a force-disconnect takes. */
  readonly name: string;
  /** false: Docker lists it as "ep-<id>", attached to no container sandbox. */
  readonly sandbox: boolean;
}

export interface DockerView {
  /** Network id → name, for every network Docker has. */
  readonly networks: ReadonlyMap<string, string>;
  /** Network id → Docker's endpoints on it (only ledgernet's networks are read). */
  readonly endpoints: ReadonlyMap<string, readonly DockerEndpoint[]>;
  /** Every subnet a Docker network uses → the addresses Docker holds in it (endpoints, gateway, aux). */
  readonly subnets: ReadonlyMap<string, ReadonlySet<string>>;
  /** Every subnet a Docker network uses → the names of the networks that use it. */
  readonly subnetNetworks: ReadonlyMap<string, readonly string[]>;
}

interface DockerNetworkDetail {
  Id: string;
  Name: string;
  IPAM?: { Driver?: string; Config?: { Subnet?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> | null }[] | null };
  Containers?: Record<string, { Name: string; EndpointID: string; IPv4Address?: string; IPv6Address?: string }> | null;
}

/** An address as ledgernet records it (canonical, no prefix length); '' for none. */
const bare = (a: string | undefined) => canonicalIp((a ?? '').split('/')[0] ?? '') ?? '';
/**
 * A subnet as ledgernet records its pools (canonical, masked): Docker's API shows it as the user
 * typed it (`fd00:1:0:0::/64`, and an unmasked `10.1.2.3/24` before Docker 25).
 */
const canonicalSubnet = (s: string) => {
  const p = parsePrefix(s);
  return p === null ? s : formatPrefix(p);
};

/** Every network Docker has; the endpoints of those the log knows; the addresses Docker holds per subnet. */
export async function readDocker(docker: Pick<DockerApi, 'listNetworks' | 'inspectNetwork'>, state: State): Promise<DockerView> {
  const list = (await docker.listNetworks()) as DockerNetworkDetail[];
  const networks = new Map(list.map((n) => [n.Id, n.Name]));
  const endpoints = new Map<string, DockerEndpoint[]>();
  const subnets = new Map<string, Set<string>>();
  const subnetNetworks = new Map<string, string[]>();
  for (const summary of list) {
    const ours = state.networks[summary.Id] !== undefined || /ledgernet/.test(summary.IPAM?.Driver ?? '');
    const n = ours ? (await docker.inspectNetwork<DockerNetworkDetail>(summary.Id)) : summary;
    const containers = Object.entries(n.Containers ?? {});
    if (state.networks[n.Id]) {
      endpoints.set(n.Id, containers.map(([key, c]) => ({ endpointId: c.EndpointID, name: c.Name, sandbox: !key.startsWith('ep-') })));
    }
    for (const cfg of n.IPAM?.Config ?? []) {
      if (!cfg.Subnet) continue;
      const subnet = canonicalSubnet(cfg.Subnet);
      const held = subnets.get(subnet) ?? new Set<string>();
      subnets.set(subnet, held);
      subnetNetworks.set(subnet, [...(subnetNetworks.get(subnet) ?? []), n.Name]);
      for (const a of [cfg.Gateway, ...Object.values(cfg.AuxiliaryAddresses ?? {}), ...containers.flatMap(([, c]) => [c.IPv4Address, c.IPv6Address])]) {
        if (bare(a)) held.add(bare(a));
      }
    }
  }
  return { networks, endpoints, subnets, subnetNetworks };
}

/**
 * Why `release` must not take `command`'s object: Docker still has it (a network it lists, an
 * endpoint one of its networks holds, a pool a network of it uses, an address it holds), or null.
 * Pure.
 */
export function dockerHolds(command: Command, state: State, view: DockerView): string | null {
  switch (command.type) {
    case 'DeleteNetwork': {
      const name = view.networks.get(command.networkId);
      if (name === undefined) return null;
      const eps = view.endpoints.get(command.networkId) ?? [];
      const who = eps.length === 0 ? 'no container attached' : `attached: ${eps.map((e) => e.name).join(', ')}`;
      return `Docker still has network ${short(command.networkId)} (${name}; ${who}): remove it with \`docker network rm ${name}\` once its containers are gone`;
    }
    case 'DeleteEndpoint': {
      const ep = (view.endpoints.get(command.networkId) ?? []).find((e) => e.endpointId === command.endpointId);
      if (!ep) return null;
      const net = view.networks.get(command.networkId) ?? short(command.networkId);
      return ep.sandbox
        ? `Docker still holds endpoint ${short(command.endpointId)} for container ${ep.name} on network ${net}: \`docker network disconnect ${net} ${ep.name}\` removes it`
        : `Docker still holds endpoint ${short(command.endpointId)} on network ${net} with no container attached (its removal was lost): \`ledgernet repair\` force-disconnects it`;
    }
    case 'ReleasePool': {
      const pool = state.pools[command.poolId]?.pool;
      const users = pool === undefined ? undefined : view.subnetNetworks.get(pool);
      return users === undefined ? null : `Docker's network ${users.join(', ')} still uses pool ${pool}: remove it first`;
    }
    case 'ReleaseAddress': {
      const pool = state.pools[command.poolId]?.pool;
      return pool !== undefined && view.subnets.get(pool)?.has(command.address) ? `Docker still holds ${command.address} in pool ${pool} (an endpoint, gateway or auxiliary address of its network)` : null;
    }
    default:
      return null;
  }
}
