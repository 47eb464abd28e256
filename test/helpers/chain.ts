import { eventHash } from '../../src/events/log/hash.ts';
import { EventVersions, GENESIS_HASH, type NewEvent, type StoredEvent } from '../../src/events/domain/types.ts';
import { EP_1, NET_A, endpointSpec, networkSpec } from './events.ts';

/** Stamps events the way EventLog.append does (seq, id, time, hash chain), without a file. */
export function stamp(host: string, events: readonly NewEvent[], from: { seq: number; hash: string } = { seq: 0, hash: GENESIS_HASH }): StoredEvent[] {
  let { seq, hash } = from;
  return events.map((e, i) => {
    seq += 1;
    const base = {
      seq,
      id: `${host}:${seq}`,
      host,
      type: e.type,
      v: EventVersions[e.type],
      at: new Date(Date.UTC(2026, 10, 23, 13, 2, 11 + i, 123)).toISOString(),
      data: e.data,
      prevhash: hash,
    };
    hash = eventHash(base as Omit<StoredEvent, 'hash'>);
    return { ...base, hash } as StoredEvent;
  });
}

/** A short realistic history: network, endpoint, join, ports, leave, delete. */
export function sampleHistory(host = 'host1'): StoredEvent[] {
  return stamp(host, [
    { type: 'network.created', data: networkSpec(NET_A) },
    { type: 'endpoint.created', data: endpointSpec(NET_A, EP_1) },
    { type: 'endpoint.joined', data: { networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/abc' } },
    {
      type: 'endpoint.external.programmed',
      data: { networkId: NET_A, endpointId: EP_1, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }] },
    },
    { type: 'endpoint.left', data: { networkId: NET_A, endpointId: EP_1 } },
    { type: 'network.deleted', data: { networkId: NET_A } },
  ]);
}
