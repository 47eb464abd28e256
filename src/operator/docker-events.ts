// Names the container of an endpoint from Docker's event stream, so that a container that lives
// less than the second after which the background inspect names it (docker-background.ts: a
// `docker run --rm` of a short job) is named too: which container had an address, and when, is
// what an audit asks.
//
// Docker's calls never name the container, and its `network connect` event names the container
// and the network but not the endpoint. It is emitted after the Join it follows was answered (so
// the endpoint is in the log by then, joined before the event's time) and before the container
// runs (so its endpoint leaves after that time). The endpoint is taken to be the event's only
// when exactly one endpoint of that network could be it: joined at the event's time, not yet
// given a container, and no endpoint of that network joined then already this container's (named
// by inspect first). Endpoints that went are kept for CANDIDATE_MS, so one whose container was
// removed before its event was read still counts. When several could be it (containers started
// together), the container is inspected: while Docker still has it, its endpoint on the network
// is Docker's word. Otherwise an ambiguous event names nothing: a wrong name is worse than none.
// The name is the one the container's `create` or `rename` event gave, or the inspect's; a
// `rename` event renames the container's endpoints at once.
//
// The same stream tells when Docker made or removed a network of another driver (`otherNetwork`):
// its bridge driver inserts its FORWARD rules at the top, above ledgernet's hook, and a bridge of a
// custom name joins Docker's isolation chains (and leaves them with its network, whose isolation
// lines ledgernet then takes out: `reconcile --dry-run` shows no change pending); the caller looks
// at the kernel then, not at the next tick.
import type { Logger } from 'pino';
import { lookup, type State, type StoredEvent } from '../events/domain/types.ts';
import { DockerApiError, type DockerApi, type DockerEvent, type DockerEventStream } from './docker-api.ts';

/** How long an endpoint that joined without being named stays a candidate once gone. */
export const CANDIDATE_MS = 60_000;
/** Events older than this when read (a stream opened again from `since`) are not used. */
const MAX_EVENT_AGE_MS = 30_000;
/** Container names kept from create and rename events. */
const NAMES_KEPT = 4_096;
const FILTERS = { type: ['container', 'network'], event: ['create', 'rename', 'connect', 'destroy'] };

/** An endpoint that joined: its network, its container once named (null: not yet), when it joined and when it left or went (null: still joined). */
export interface Joined {
  readonly networkId: string;
  readonly containerId: string | null;
  readonly joinedAt: number;
  readonly goneAt: number | null;
}

/** Clock slack (ms) between Docker's event times and the log's: always counted toward more candidates (ambiguity), never fewer. */
const SLACK_MS = 50;

/**
 * The endpoints a `network connect` event of container `containerId` to `networkId` at `at` (ms;
 * null: unknown, every endpoint counts) may stand for: those of that network joined then without
 * a container; 'named' when one joined then is this container's already. Pure.
 */
function candidatesOf(joined: ReadonlyMap<string, Joined>, networkId: string, containerId: string, at: number | null): string[] | 'named' {
  const then = [...joined].filter(([, j]) => j.networkId === networkId && (at === null || (j.joinedAt <= at + SLACK_MS && (j.goneAt === null || j.goneAt >= at - SLACK_MS))));
  if (then.some(([, j]) => j.containerId === containerId)) return 'named';
  return then.filter(([, j]) => j.containerId === null).map(([id]) => id);
}

/**
 * The endpoint such an event stands for: the one candidate, or null when there is none, more
 * than one, the container has one already, or it is no longer in the log. Pure.
 */
export function connectedEndpoint(joined: ReadonlyMap<string, Joined>, networkId: string, containerId: string, at: number | null, inLog: (endpointId: string) => boolean = () => true): string | null {
  const c = candidatesOf(joined, networkId, containerId, at);
  return c !== 'named' && c.length === 1 && c[0] !== undefined && inLog(c[0]) ? c[0] : null;
}

export interface ConnectNamerDeps {
  readonly api: DockerApi;
  readonly getState: () => State;
  /** Records one endpoint's container (docker-sync.ts recordNames: checked and logged there). */
  readonly record: (e: { networkId: string; endpointId: string; containerId: string; name: string }) => Promise<void>;
  readonly log: Logger;
  readonly now?: () => number;
  /** Docker created a network that is not ledgernet's, or removed one of its bridge driver's (its `create` or `destroy` event, once Docker's own rules are in or out). */
  readonly otherNetwork?: (networkId: string) => void;
}

export class ConnectNamer {
  private readonly deps: ConnectNamerDeps;
  private readonly joined = new Map<string, Joined>();
  /** The endpoints of `joined` by network: an event looks at its network's only, not every endpoint of the host. */
  private readonly byNetwork = new Map<string, Set<string>>();
  private readonly names = new Map<string, string>();
  private stream: DockerEventStream | null = null;
  private stopped = false;
  private queue: Promise<void> = Promise.resolve();
  /** The last event's time (unix seconds, as `since` takes it), to open the stream again from. */
  private since: string | null = null;
  private retry: NodeJS.Timeout | undefined;
  private failing = false;
  /** When the first gone entry is due to be dropped (null: none gone). */
  private pruneAt: number | null = null;

  constructor(deps: ConnectNamerDeps) {
    this.deps = deps;
    for (const ep of Object.values(deps.getState().endpoints)) {
      // Joined before this process started: at any time before now as far as events go.
      if (ep.joined) this.put(ep.endpointId, { networkId: ep.networkId, containerId: ep.container?.id ?? null, joinedAt: 0, goneAt: null });
    }
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Opens Docker's event stream (again after it ends, from the last event read). */
  start(): void {
    if (this.stopped) return;
    this.stream = this.deps.api.events(FILTERS, this.since, (e) => this.seen(e), (why) => {
      this.stream = null;
      if (this.stopped) return;
      if (!this.failing) this.deps.log.info({ reason: why.message }, "Docker's event stream ended; opening it again (containers are named by inspect meanwhile)");
      this.failing = true;
      this.retry = setTimeout(() => this.start(), 2_000);
      this.retry.unref();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stream?.close();
  }

  /** Whatever the log recorded: joins make candidates, names give them their container, a Leave or removal ends their time. */
  onStoreEvents(events: readonly StoredEvent[]): void {
    const now = this.now();
    for (const e of events) {
      const at = Date.parse(e.at);
      const when = Number.isFinite(at) ? at : now;
      if (e.type === 'endpoint.joined') {
        const ep = lookup(this.deps.getState().endpoints, e.data.endpointId);
        this.put(e.data.endpointId, { networkId: e.data.networkId, containerId: ep?.container?.id ?? null, joinedAt: when, goneAt: null });
        continue;
      }
      if (e.type === 'endpoint.named') {
        const j = this.joined.get(e.data.endpointId);
        if (j) this.put(e.data.endpointId, { ...j, containerId: e.data.containerId });
      } else if (e.type === 'endpoint.left' || e.type === 'endpoint.deleted' || e.type === 'endpoint.rolledback') {
        const j = this.joined.get(e.data.endpointId);
        if (j && j.goneAt === null) {
          this.put(e.data.endpointId, { ...j, goneAt: when });
          this.pruneAt ??= when + CANDIDATE_MS;
        }
      }
    }
    // Store listeners run on Docker's call path: the whole map is looked at only once gone entries are due.
    if (this.pruneAt === null || now <= this.pruneAt) return;
    this.pruneAt = null;
    for (const [id, j] of this.joined) {
      if (j.goneAt === null) continue;
      if (now - j.goneAt > CANDIDATE_MS) this.drop(id);
      else this.pruneAt = Math.min(this.pruneAt ?? Infinity, j.goneAt + CANDIDATE_MS);
    }
  }

  /** Idle once every event read so far is handled (tests). */
  idle(): Promise<void> {
    return this.queue;
  }

  private seen(e: DockerEvent): void {
    this.failing = false;
    if (typeof e.timeNano === 'number') this.since = (e.timeNano / 1e9).toFixed(9);
    const id = e.Actor?.ID ?? '';
    const attrs = e.Actor?.Attributes ?? {};
    if (e.Type === 'container' && (e.Action === 'create' || e.Action === 'rename') && attrs['name']) {
      this.names.delete(id);
      this.names.set(id, attrs['name']);
      if (this.names.size > NAMES_KEPT) this.names.delete(this.names.keys().next().value ?? '');
      // A `docker rename`: its endpoints take the new name now, not at the next repair tick.
      if (e.Action === 'rename') this.enqueue(() => this.renamed(id, attrs['name'] ?? ''), { container: id });
      return;
    }
    if (e.Type === 'network' && e.Action === 'create') {
      if (!lookup(this.deps.getState().networks, id)) this.deps.otherNetwork?.(id);
      return;
    }
    // (Only Docker's bridge driver writes the isolation lines ledgernet mirrors; ledgernet's own
    // network is out of the state by its destroy event, so the driver is what tells them apart.)
    if (e.Type === 'network' && e.Action === 'destroy') {
      if (attrs['type'] === 'bridge') this.deps.otherNetwork?.(id);
      return;
    }
    if (e.Type !== 'network' || e.Action !== 'connect' || !lookup(this.deps.getState().networks, id)) return;
    const containerId = attrs['container'] ?? '';
    const at = typeof e.timeNano === 'number' ? e.timeNano / 1e6 : null;
    if (at !== null && this.now() - at > MAX_EVENT_AGE_MS) return;
    this.enqueue(() => this.connected(id, containerId, at), { network: id, container: containerId });
  }

  /** One event at a time: a name recorded takes its endpoint out of the candidates of the next. */
  private enqueue(handle: () => Promise<void>, what: object): void {
    this.queue = this.queue.then(handle).catch((err: unknown) => {
      this.deps.log.warn({ err, ...what }, "could not name a container from Docker's event stream");
    });
  }

  private async renamed(containerId: string, name: string): Promise<void> {
    for (const ep of Object.values(this.deps.getState().endpoints)) {
      if (ep.container?.id === containerId && ep.container.name !== name) await this.deps.record({ networkId: ep.networkId, endpointId: ep.endpointId, containerId, name });
    }
  }

  private async connected(networkId: string, containerId: string, at: number | null): Promise<void> {
    const inLog = (endpointId: string) => lookup(this.deps.getState().endpoints, endpointId) !== undefined;
    const candidates = candidatesOf(this.ofNetwork(networkId), networkId, containerId, at);
    if (candidates === 'named' || candidates.length === 0) return;
    let endpointId = connectedEndpoint(this.ofNetwork(networkId), networkId, containerId, at, inLog);
    let name = endpointId === null ? null : (this.names.get(containerId) ?? null);
    if (name === null) {
      // Several could be it (containers started together), or the name is not known: Docker's
      // inspect of the container says both, while it is still there (it waits for the start to end).
      const c = await this.inspect(containerId);
      if (c === null) return;
      name = c.name;
      // Docker's own word, where it still has it, over the candidates' count.
      const own = c.endpoints.get(networkId);
      if (own !== undefined) endpointId = candidates.includes(own) ? own : null;
    }
    // Asked again: the log may have changed during the inspect.
    const still = candidatesOf(this.ofNetwork(networkId), networkId, containerId, at);
    if (endpointId === null || still === 'named' || !still.includes(endpointId) || !inLog(endpointId)) return;
    const j = this.joined.get(endpointId);
    if (j) this.put(endpointId, { ...j, containerId });
    await this.deps.record({ networkId, endpointId, containerId, name });
  }

  private put(id: string, j: Joined): void {
    const was = this.joined.get(id);
    if (was && was.networkId !== j.networkId) this.byNetwork.get(was.networkId)?.delete(id);
    this.joined.set(id, j);
    const of = this.byNetwork.get(j.networkId) ?? new Set<string>();
    this.byNetwork.set(j.networkId, of.add(id));
  }

  private drop(id: string): void {
    const j = this.joined.get(id);
    if (!j) return;
    this.joined.delete(id);
    const of = this.byNetwork.get(j.networkId);
    of?.delete(id);
    if (of?.size === 0) this.byNetwork.delete(j.networkId);
  }

  /** The endpoints of `joined` on `networkId`. */
  private ofNetwork(networkId: string): Map<string, Joined> {
    const out = new Map<string, Joined>();
    for (const id of this.byNetwork.get(networkId) ?? []) {
      const j = this.joined.get(id);
      if (j) out.set(id, j);
    }
    return out;
  }

  /** The container's name and its endpoint on each network (by network id), by inspect; null when it is gone already. */
  private async inspect(containerId: string): Promise<{ name: string; endpoints: Map<string, string> } | null> {
    try {
      const c = await this.deps.api.inspectContainer(containerId);
      const endpoints = new Map(Object.values(c.NetworkSettings?.Networks ?? {}).flatMap((n) => (n.EndpointID ? [[n.NetworkID, n.EndpointID] as const] : [])));
      return { name: c.Name.replace(/^\//, ''), endpoints };
    } catch (e) {
      if (e instanceof DockerApiError && e.status === 404) return null;
      throw e;
    }
  }
}
