// The addresses and MAC Docker gave a container's interface, read inside its sandbox (the network
// namespace its Join named). Used only for an endpoint created at its Join after a crash lost its
// CreateEndpoint body (src/api/plugin.ts): nothing else told ledgernet its addresses.
import { readFile } from 'node:fs/promises';
import { createRunner, failOnExit } from './runner.ts';

export interface SandboxIface {
  /** The interface's name in the container (eth0, eth1, …). */
  readonly name: string;
  /** CIDR of its first global IPv4 address, or null. */
  readonly address: string | null;
  /** CIDR of its first global IPv6 address, or null. */
  readonly addressV6: string | null;
  readonly mac: string;
}

interface AddrInfo {
  readonly family?: string;
  readonly local?: string;
  readonly prefixlen?: number;
  readonly scope?: string;
}

interface IpAddrEntry {
  readonly ifindex?: number;
  readonly link_index?: number;
  readonly ifname?: string;
  readonly address?: string;
  readonly addr_info?: readonly AddrInfo[];
}

/**
 * The interface of `ip -j addr show` (run in the sandbox) whose veth peer is the host's interface
 * `hostIndex`, or null when there is none (not moved in yet, or another namespace).
 */
export function parseSandboxIface(json: string, hostIndex: number): SandboxIface | null {
  const entries = JSON.parse(json) as readonly IpAddrEntry[];
  const e = entries.find((x) => x.link_index === hostIndex);
  if (!e || typeof e.ifname !== 'string' || typeof e.address !== 'string') return null;
  const first = (family: string) => {
    const a = (e.addr_info ?? []).find((i) => i.family === family && i.scope === 'global' && typeof i.local === 'string' && typeof i.prefixlen === 'number');
    return a ? `${a.local}/${a.prefixlen}` : null;
  };
  return { name: e.ifname, address: first('inet'), addressV6: first('inet6'), mac: e.address.toLowerCase() };
}

const run = createRunner(5_000, undefined);

/**
 * Reads the interface of the sandbox `sandboxKey` (a namespace file such as
 * /var/run/docker/netns/4b2d8b7d3322) whose peer is the host's `hostVeth`: one `nsenter … ip`
 * process. Null when the veth or the interface is not (yet) there.
 */
export async function readSandboxIface(sandboxKey: string, hostVeth: string): Promise<SandboxIface | null> {
  let index: number;
  try {
    index = Number((await readFile(`/sys/class/net/${hostVeth}/ifindex`, 'utf8')).trim());
  } catch {
    return null;
  }
  const o = await run(`read the interface of ${hostVeth} in the container's namespace ${sandboxKey}`, 'nsenter', [`--net=${sandboxKey}`, 'ip', '-j', 'addr', 'show']);
  failOnExit(o);
  return parseSandboxIface(o.stdout, index);
}
