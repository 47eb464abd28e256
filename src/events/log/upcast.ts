import { isDeepStrictEqual } from 'node:util';
import { DriverError } from '../../errors.ts';
import { capturesHost, formatAddrLen, formatPrefix, parseLegacyAddrLen, parsePrefix } from '../domain/cidr.ts';
import { short } from '../domain/naming.ts';
import { legacyOptions, newerOptions } from '../domain/options.ts';
import {
  EventVersions,
  type EndpointState,
  type EventType,
  type IpamData,
  type NetworkState,
  type PoolState,
  type State,
  type StoredEvent,
} from '../domain/types.ts';

/**
 * A file (the log, an archive, the snapshot) holds what only a newer ledgernet writes: never
 * called damage (restoring a backup would lose the events it holds).
 */
export function newerError(file: string, what: string): DriverError {
  return new DriverError('LN_ERR_LOG_NEWER', `${file} was written by a newer ledgernet (${what}); run that version or a newer one; nothing was changed`);
}

/**
 * What makes a record one that a newer ledgernet wrote, or null: a type this version does not
 * know (a name, as every type is) or a known type at a version above the one it reads. Only a
 * record that is otherwise intact (seq, chain, its own hash: read.ts) is taken for that.
 */
export function newerRecord(raw: unknown): string | null {
  if (raw === null || typeof raw !== 'object') return null;
  const rec = raw as { type?: unknown; v?: unknown };
  const v = typeof rec.v === 'number' && Number.isInteger(rec.v) && rec.v >= 1 ? rec.v : null;
  if (typeof rec.type !== 'string' || !/^[a-z][a-z0-9_.-]*$/.test(rec.type) || v === null) return null;
  if (!Object.hasOwn(EventVersions, rec.type)) return `event type ${rec.type} version ${v}, a type this ledgernet does not know`;
  const current = EventVersions[rec.type as EventType];
  if (v > current) return `event type ${rec.type} version ${v}; this ledgernet reads it up to version ${current}`;
  if (rec.type === 'network.created') return newerNetwork((raw as { data?: unknown }).data);
  return null;
}

/**
 * A recorded network (a `network.created` event's data, or a network of a snapshot's state) with
 * a `ledgernet.*` option no version of this one's line accepted (options.ts newerOptions): a
 * newer ledgernet recorded it; run without the option, the network would not be what was asked.
 */
export function newerNetwork(data: unknown): string | null {
  const d = data as { networkId?: unknown; options?: unknown } | null;
  if (d === null || typeof d !== 'object' || d.options === null || typeof d.options !== 'object' || Array.isArray(d.options)) return null;
  const keys = newerOptions(d.options as Record<string, string>);
  if (keys.length === 0) return null;
  return `network ${String(d.networkId)} with option${keys.length > 1 ? 's' : ''} ${keys.join(', ')}, a network option this ledgernet does not know`;
}

/**
 * Brings a record read from the log up to the current version of its type. When a shape
 * changes, bump EventVersions and add a step here (vN -> vN+1). `offset`: where the record starts
 * in its file (named in the message). No step yet: `endpoint.external.programmed` v2 holds its
 * ports as runs (port-runs.ts), and a v1 portmap (one binding a port) is a v2 one with no counts.
 */
export function upcast(raw: unknown, offset: number): StoredEvent {
  if (raw === null || typeof raw !== 'object') {
    throw new DriverError('LN_ERR_LOG_CORRUPT', `event log record at offset ${offset} is not an object`);
  }
  const newer = newerRecord(raw);
  if (newer !== null) throw new DriverError('LN_ERR_LOG_NEWER', `event log record at byte offset ${offset} was written by a newer ledgernet (${newer})`);
  const rec = raw as { type?: unknown; v?: unknown; seq?: unknown };
  if (typeof rec.type !== 'string' || !Object.hasOwn(EventVersions, rec.type)) {
    throw new DriverError('LN_ERR_LOG_CORRUPT', `event log record at offset ${offset} has unknown type ${String(rec.type)}`);
  }
  const current = EventVersions[rec.type as EventType];
  if (typeof rec.v !== 'number' || rec.v < 1 || rec.v > current) {
    throw new DriverError(
      'LN_ERR_LOG_CORRUPT',
      `event log record at offset ${offset} (${rec.type}) has version ${String(rec.v)}; this ledgernet reads up to v${current}`,
    );
  }
  return raw as StoredEvent;
}

/**
 * Brings a folded state (from an old snapshot or an old log) in line with what this version
 * records, without failing: CIDRs that older versions let in non-canonical (`10.77.0.0/0024`,
 * `fd00:77::%eth0/64`) are canonicalised; subnets, pools and addresses that cannot be read, or
 * subnets that would capture the host's traffic (`0.0.0.0/0`), are dropped from the state; a
 * ledgernet option whose Docker alias disagrees keeps ours (the old rule). Each change is
 * returned as a warning to log. The log itself is never rewritten.
 */
export function upcastState(state: State): { state: State; warnings: string[] } {
  const warnings: string[] = [];
  const networks: Record<string, NetworkState> = {};
  for (const [id, n] of Object.entries(state.networks)) {
    const data = (list: readonly IpamData[], family: 4 | 6): IpamData[] =>
      list.flatMap((d) => {
        const pool = parseLegacyAddrLen(d.pool);
        const why = !pool || pool.family !== family ? 'it cannot be read' : capturesHost(pool.prefix);
        if (!pool || why) {
          warnings.push(`network ${short(id)}: subnet ${JSON.stringify(d.pool)} is ignored (${why}); remove the network and create it again`);
          return [];
        }
        const gw = d.gateway === null ? null : parseLegacyAddrLen(d.gateway);
        const aux = Object.entries(d.aux).flatMap(([k, a]) => {
          const p = parseLegacyAddrLen(a);
          return p && p.family === family ? [[k, formatAddrLen(p)] as const] : [];
        });
        const next: IpamData = {
          pool: formatPrefix(pool.prefix),
          gateway: gw && gw.family === family ? formatAddrLen(gw) : null,
          aux: Object.fromEntries(aux),
          ...(d.addressSpace === undefined ? {} : { addressSpace: d.addressSpace }),
        };
        if (!isDeepStrictEqual(next, d)) warnings.push(`network ${short(id)}: subnet ${JSON.stringify(d)} read as ${JSON.stringify(next)}`);
        return [next];
      });
    const { options, dropped } = legacyOptions(n.options);
    if (dropped.length > 0) warnings.push(`network ${short(id)}: options ${dropped.join(', ')} disagree with ledgernet's own and are ignored`);
    networks[id] = { ...n, ipv4Data: data(n.ipv4Data, 4), ipv6Data: data(n.ipv6Data, 6), options };
  }
  const endpoints: Record<string, EndpointState> = {};
  for (const [id, ep] of Object.entries(state.endpoints)) {
    const addr = (a: string | null, family: 4 | 6): string | null => {
      if (a === null) return null;
      const p = parseLegacyAddrLen(a);
      const text = p && p.family === family ? formatAddrLen(p) : null;
      if (text !== a) warnings.push(`endpoint ${short(id)}: address ${JSON.stringify(a)} read as ${JSON.stringify(text)}`);
      return text;
    };
    endpoints[id] = { ...ep, address: addr(ep.address, 4), addressV6: addr(ep.addressV6, 6) };
  }
  const pools: Record<string, PoolState> = {};
  for (const [id, p] of Object.entries(state.pools)) {
    const prefix = parsePrefix(p.pool);
    const why = prefix ? capturesHost(prefix) : 'it cannot be read';
    if (why) {
      warnings.push(`IPAM pool ${JSON.stringify(p.pool)} is ignored (${why}); its network cannot get addresses: remove it`);
      continue;
    }
    pools[id] = p;
  }
  if (warnings.length === 0) return { state, warnings };
  return { state: { ...state, networks, endpoints, pools }, warnings };
}
