// `ledgernet status`'s cluster part: the hosts the cluster's KV bucket knows (VTEP, last seen:
// asked from the daemon, which holds the NATS connection) and, per cluster network of this host,
// its members and remote endpoints as this host's log has them (peer.* events), so it shows the
// last-known peers also while NATS is away.
import { lookup, short, type ForgottenHost, type State } from '../events/index.ts';
import { clusterOf } from '../events/domain/options.ts';
import type { ClusterView } from './cluster.ts';
import { table } from './table.ts';

export interface ClusterStatus {
  /** This host's name and VTEP (null without a daemon, or before the VTEP was resolved). */
  readonly host: string | null;
  readonly vtep: string | null;
  /** The bucket's host records; null when the daemon could not read them (see `hostsError`). */
  readonly hosts: readonly { readonly host: string; readonly vtep: string | null; readonly lastSeen: string | null; readonly self: boolean }[] | null;
  readonly hostsError: string | null;
  readonly networks: readonly ClusterNetworkStatus[];
  /** What the KV bucket holds against this host's log (a rebuild found it; the daemon logged it at error level). */
  readonly conflicts: readonly string[];
  /** Hosts an operator forgot (`ledgernet cluster forget`), from the bucket. */
  readonly forgotten: readonly ForgottenHost[];
}

interface ClusterNetworkStatus {
  readonly name: string;
  readonly networkId: string;
  readonly subnet: string | null;
  readonly vni: number | null;
  /** The hosts that have the network: this one first, then the others (from the log). */
  readonly members: readonly { readonly host: string; readonly vtep: string | null; readonly self: boolean }[];
  readonly remoteEndpoints: readonly { readonly endpointId: string; readonly host: string; readonly vtep: string; readonly address: string; readonly mac: string }[];
}

const byText = <T>(key: (t: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/** The cluster part of `status`; null when this host has no cluster network and the daemon runs without --nats. */
export function clusterStatus(state: State, view: ClusterView | null, recordedVtep: string | null): ClusterStatus | null {
  const host = view?.host ?? null;
  const vtep = view?.vtep ?? recordedVtep;
  const networks = Object.values(state.networks).flatMap((net): ClusterNetworkStatus[] => {
    const name = clusterOf(net.options);
    if (name === null) return [];
    const subnet = net.ipv4Data[0]?.pool ?? null;
    const pool = subnet === null ? undefined : lookup(state.pools, `ledgernet/${subnet}`);
    const peers = state.peers?.[name] ?? { members: {}, endpoints: {} };
    const others = Object.values(peers.members).map((m) => ({ host: m.host, vtep: m.vtep, self: false })).sort(byText((m) => m.host));
    const remoteEndpoints = Object.values(peers.endpoints).map((e) => ({ ...e })).sort(byText((e) => `${e.host} ${e.address}`));
    return [{ name, networkId: net.networkId, subnet, vni: pool?.cluster?.vni ?? null, members: [{ host: host ?? '(this host)', vtep, self: true }, ...others], remoteEndpoints }];
  });
  if (networks.length === 0 && view === null) return null;
  const hosts = view?.hosts?.map((h) => ({ ...h, self: h.host === host })) ?? null;
  return { host, vtep, hosts, hostsError: view?.error ?? null, networks: networks.sort(byText((n) => n.name)), conflicts: view?.conflicts ?? [], forgotten: view?.forgotten ?? [] };
}

function ago(at: string | null, now: number): string {
  if (at === null) return '-';
  const s = Math.round((now - Date.parse(at)) / 1000);
  return Number.isFinite(s) ? `${at} (${s} s ago)` : at;
}

/** The tables: hosts, cluster networks with their members, remote endpoints. */
export function clusterTables(c: ClusterStatus, now = Date.now()): string {
  const self = (name: string, isSelf: boolean) => (isSelf ? `${name} (this host)` : name);
  const hosts =
    c.hosts === null
      ? `cluster hosts: not known (${c.hostsError ?? 'the daemon does not answer'}); this host ${c.host ?? '?'}, VTEP ${c.vtep ?? 'not resolved yet'}\n`
      : table(['CLUSTER HOST', 'VTEP', 'LAST SEEN'], c.hosts.map((h) => [self(h.host, h.self), h.vtep ?? '-', ago(h.lastSeen, now)])) +
        c.forgotten.map((f) => `forgotten: ${f.host} (by ${f.by} at ${f.at}${f.reason === undefined ? '' : `; reason: ${f.reason}`}): refused if it comes back with its old cluster networks\n`).join('');
  const nets = table(
    ['CLUSTER', 'NETWORK', 'SUBNET', 'VNI', 'MEMBERS (HOST VTEP)'],
    c.networks.map((n) => [n.name, short(n.networkId), n.subnet ?? '-', n.vni === null ? '-' : String(n.vni), n.members.map((m) => `${self(m.host, m.self)} ${m.vtep ?? '?'}`).join(', ')]),
  );
  const eps = table(
    ['REMOTE ENDPOINT', 'CLUSTER', 'HOST', 'ADDRESS', 'MAC', 'VTEP'],
    c.networks.flatMap((n) => n.remoteEndpoints.map((e) => [short(e.endpointId), n.name, e.host, e.address, e.mac, e.vtep])),
  );
  return `${hosts}\n${nets}\n${eps}${c.conflicts.map((x) => `conflict: ${x}\n`).join('')}`;
}
