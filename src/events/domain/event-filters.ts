// `ledgernet events --network N --container C --address IP`: which events concern what the operator
// asks about ("which container had 10.231.0.7 at 03:12, and who changed it?"). Each filter given
// must hold (they combine). Endpoints are matched by what the log says of them anywhere, so every
// line of an endpoint's life shows, the ones before its container was named included. Pure.
import { DriverError } from '../../errors.ts';
import { canonicalIp } from './cidr.ts';
import type { StoredEvent } from './types.ts';

export interface EventQuery {
  /** A network id, a 12+ hex prefix of one, or a name Docker gave it. */
  readonly network?: string;
  /** A container id, a 12+ hex prefix of one, or a name Docker gave it. */
  readonly container?: string;
  /** An IPv4 or IPv6 address (any form; a `/len` is ignored). */
  readonly address?: string;
}

/** What the log says of each endpoint (local or a cluster peer's): the containers named for it, with their names, and its addresses. */
export class EndpointFacts {
  private readonly containers = new Map<string, Map<string, Set<string>>>();
  private readonly addresses = new Map<string, Set<string>>();

  /** Adds what `events` say (call it with every event before filtering, and with new ones as they come). */
  add(events: Iterable<StoredEvent>): this {
    for (const e of events) {
      const d = e.data as { endpointId?: unknown; address?: unknown; addressV6?: unknown; containerId?: unknown; name?: unknown };
      if (typeof d.endpointId !== 'string') continue;
      if (e.type === 'endpoint.named' && typeof d.containerId === 'string' && typeof d.name === 'string') {
        const of = this.containers.get(d.endpointId) ?? new Map<string, Set<string>>();
        of.set(d.containerId, (of.get(d.containerId) ?? new Set()).add(d.name));
        this.containers.set(d.endpointId, of);
      }
      if (e.type === 'endpoint.created' || e.type === 'endpoint.addressed' || e.type === 'peer.endpoint.added') {
        for (const a of [d.address, d.addressV6]) {
          const ip = typeof a === 'string' ? canonicalIp(a.split('/')[0] ?? '') : null;
          if (ip !== null) this.addresses.set(d.endpointId, (this.addresses.get(d.endpointId) ?? new Set()).add(ip));
        }
      }
    }
    return this;
  }

  /** Was endpoint `id` named for container `c` (an id, a 12+ hex prefix, or a name)? */
  heldBy(id: string, c: string, prefix: string | null): boolean {
    for (const [containerId, names] of this.containers.get(id) ?? []) {
      if ((prefix !== null && containerId.startsWith(prefix)) || names.has(c)) return true;
    }
    return false;
  }

  /** Did endpoint `id` have address `ip` (canonical)? */
  had(id: string, ip: string): boolean {
    return this.addresses.get(id)?.has(ip) === true;
  }
}

const hexPrefix = (s: string) => (/^[0-9a-f]{12,64}$/.test(s) ? s : null);

/**
 * The test each event must pass for `q`, given the network names and endpoint facts recorded so
 * far; throws naming a value that cannot match anything (empty, or not an address).
 */
export function eventFilter(q: EventQuery): (e: StoredEvent, names: ReadonlyMap<string, string>, facts: EndpointFacts) => boolean {
  if (q.network === '') throw new DriverError('LN_ERR_BAD_REQUEST', '--network needs a network id, a 12+ hex prefix or a name');
  if (q.container === '') throw new DriverError('LN_ERR_BAD_REQUEST', '--container needs a container id, a 12+ hex prefix or a name');
  const ip = q.address === undefined ? null : canonicalIp(q.address.split('/')[0] ?? '');
  if (q.address !== undefined && ip === null) throw new DriverError('LN_ERR_BAD_REQUEST', `--address ${JSON.stringify(q.address)} is not an IPv4 or IPv6 address`);
  const tests: ((e: StoredEvent, names: ReadonlyMap<string, string>, facts: EndpointFacts) => boolean)[] = [];
  const { network, container } = q;
  if (network !== undefined) {
    const prefix = hexPrefix(network);
    tests.push((e, names) => {
      const id = (e.data as { networkId?: unknown }).networkId;
      return typeof id === 'string' && ((prefix !== null && id.startsWith(prefix)) || names.get(id) === network);
    });
  }
  if (container !== undefined) {
    const prefix = hexPrefix(container);
    tests.push((e, _names, facts) => {
      const id = (e.data as { endpointId?: unknown }).endpointId;
      return typeof id === 'string' && facts.heldBy(id, container, prefix);
    });
  }
  if (ip !== null) {
    tests.push((e, _names, facts) => {
      const d = e.data as { endpointId?: unknown; address?: unknown };
      if (typeof d.endpointId === 'string' && facts.had(d.endpointId, ip)) return true;
      // IPAM's own events of the address (no endpoint).
      return (e.type === 'address.requested' || e.type === 'address.released') && typeof d.address === 'string' && canonicalIp(d.address.split('/')[0] ?? '') === ip;
    });
  }
  return (e, names, facts) => tests.every((t) => t(e, names, facts));
}

/** What `q` asked for, for the message when no event matched. */
export function describeQuery(q: EventQuery): string {
  return [
    q.network === undefined ? null : `a network with the id, id prefix or Docker name ${JSON.stringify(q.network)}`,
    q.container === undefined ? null : `a container with the id, id prefix or Docker name ${JSON.stringify(q.container)}`,
    q.address === undefined ? null : `the address ${q.address}`,
  ]
    .filter((s) => s !== null)
    .join(' and ');
}
