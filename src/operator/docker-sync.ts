// What ledgernet learns from Docker's own API, for the two things Docker cannot tell a remote
// driver: a network removed while ledgernet was down (Docker gives up on DeleteNetwork after
// ~15 s and removes it anyway), and `--restart always|unless-stopped` containers Docker gave up
// on because ledgernet was not there yet when dockerd restored them.
//
// And endpoints Docker abandoned after a crash (abandoned.ts), and Docker's names for networks
// and the containers of endpoints (no plugin call carries them: events/domain/names.ts).
//
// Each look lists Docker's networks and containers at most once, shared by every step.
//
// Only a positive answer from Docker acts: a network is collected when two lists, at least
// `confirmMs` apart, both lack it (a network being created is in ledgernet's log a moment before
// Docker stores it) and then Docker answers 404 when asked for that network by id (a list can
// lag a network being created on a loaded host: a network Docker does have is never collected);
// a Docker that cannot be asked changes nothing.
import type { Logger } from 'pino';
import { AbandonedEndpoints } from './abandoned.ts';
import { LeakedAddresses } from './leaked-addresses.ts';
import { DockerApiError, DockerUnavailableError, type DockerApi, type DockerContainerSummary, type DockerNetwork } from './docker-api.ts';
import { byLedgernet, lookup, short, type Cause, type Command, type EndpointName, type NetworkName, type State, type StoredEvent } from '../events/index.ts';
import { containerIdProblem, nameProblem } from '../events/domain/names.ts';

export interface DockerSyncDeps {
  readonly api: Pick<DockerApi, 'listNetworks' | 'listContainers' | 'inspectContainer' | 'startContainer' | 'inspectNetwork'>;
  readonly getState: () => State;
  readonly execute: (cmd: Command, cause: Cause) => Promise<StoredEvent[]>;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** The name Docker knows the driver by now (docker-name.ts): Docker's start errors name it. */
  readonly driverName: () => string;
  /** A network must be missing from Docker's lists this long before it is collected. */
  readonly confirmMs: number;
  /** An endpoint Docker does not hold is released once it has been missing this long (abandoned.ts). */
  readonly abandonedGraceMs: number;
  readonly now?: () => number;
}

/**
 * Networks to collect: those ledgernet held before Docker was asked (`known`), missing from
 * Docker's answer, and already missing `confirmMs` earlier. Returns the new suspect map too.
 * Pure.
 */
export function networksToCollect(
  known: readonly string[],
  docker: ReadonlySet<string>,
  suspects: ReadonlyMap<string, number>,
  now: number,
  confirmMs: number,
): { collect: string[]; suspects: Map<string, number> } {
  const next = new Map<string, number>();
  const collect: string[] = [];
  for (const id of known) {
    if (docker.has(id)) continue;
    const since = suspects.get(id) ?? now;
    if (now - since >= confirmMs) collect.push(id);
    else next.set(id, since);
  }
  return { collect, suspects: next };
}

const RESTART_POLICIES = new Set(['always', 'unless-stopped']);

/**
 * Exited containers on one of `networks` (ids): candidates to look at more closely. Not `created`
 * ones: a `docker run` that failed was seen failing by its user, who decides. Pure.
 */
export function stoppedOn(containers: readonly DockerContainerSummary[], networks: ReadonlySet<string>): string[] {
  return containers
    .filter((c) => c.State === 'exited')
    .filter((c) => Object.values(c.NetworkSettings?.Networks ?? {}).some((n) => networks.has(n.NetworkID)))
    .map((c) => c.Id);
}

/** The name Docker lists a container by: its own, not a link's alias (`/web/db`). Pure. */
function containerName(c: DockerContainerSummary): string | null {
  const own = c.Names.find((n) => n.lastIndexOf('/') === 0) ?? c.Names[0];
  return own === undefined ? null : own.replace(/^\//, '');
}

/** What Docker says of names: networks by id, and which container holds which endpoint. */
export interface SeenNames {
  readonly networks: readonly { readonly id: string; readonly name: string }[];
  readonly endpoints: readonly { readonly networkId: string; readonly endpointId: string; readonly containerId: string; readonly name: string }[];
}

/** Names as Docker's lists of networks and containers give them. Pure. */
function namesInLists(networks: readonly DockerNetwork[], containers: readonly DockerContainerSummary[]): SeenNames {
  return {
    networks: networks.map((n) => ({ id: n.Id, name: n.Name })),
    endpoints: containers.flatMap((c) => {
      const name = containerName(c);
      if (name === null) return [];
      return Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => ({ networkId: n.NetworkID, endpointId: n.EndpointID ?? '', containerId: c.Id, name }));
    }),
  };
}

/** A network as Docker's inspect shows it: its name and the containers on it, by container id. */
interface InspectedNames {
  readonly Id: string;
  readonly Name: string;
  readonly Containers?: Readonly<Record<string, { readonly Name?: string; readonly EndpointID?: string }>> | null;
}

/** Names as Docker's inspect of one network gives them; an endpoint without a container (`ep-…`) has none. Pure. */
function namesInInspect(n: InspectedNames): SeenNames {
  return {
    networks: [{ id: n.Id, name: n.Name }],
    endpoints: Object.entries(n.Containers ?? {})
      .filter(([key]) => !key.startsWith('ep-'))
      .map(([containerId, c]) => ({ networkId: n.Id, endpointId: c.EndpointID ?? '', containerId, name: c.Name ?? '' })),
  };
}

/**
 * The names Docker gives networks and endpoints ledgernet holds, where they differ from what the
 * state recorded; `skipped`: names that are not ones to record (names.ts). Pure.
 */
function namesToRecord(state: State, seen: SeenNames): { networks: NetworkName[]; endpoints: EndpointName[]; skipped: string[] } {
  const skipped: string[] = [];
  const usable = (name: string, what: string, id?: string) => {
    const problem = nameProblem(name) ?? (id === undefined ? null : containerIdProblem(id));
    if (problem !== null) skipped.push(`${what}: ${problem}`);
    return problem === null;
  };
  const named: NetworkName[] = [];
  for (const n of seen.networks) {
    const net = lookup(state.networks, n.id);
    if (net && net.name !== n.name && usable(n.name, `network ${short(n.id)}`)) named.push({ networkId: n.id, name: n.name });
  }
  const endpoints: EndpointName[] = [];
  for (const e of seen.endpoints) {
    const ep = lookup(state.endpoints, e.endpointId);
    if (!ep || ep.networkId !== e.networkId) continue;
    if (ep.container?.id === e.containerId && ep.container.name === e.name) continue;
    if (usable(e.name, `container ${short(e.containerId)}`, e.containerId)) endpoints.push({ networkId: ep.networkId, endpointId: ep.endpointId, containerId: e.containerId, name: e.name });
  }
  return { networks: named, endpoints, skipped };
}

/** Docker's lists for one look, each asked at most once. */
interface Lists {
  readonly networks: () => Promise<DockerNetwork[]>;
  /** All containers, stopped ones included. */
  readonly containers: () => Promise<DockerContainerSummary[]>;
}

export class DockerSync {
  private suspects = new Map<string, number>();
  /** Containers already started once by this process: a start that fails again is not retried. */
  private readonly started = new Set<string>();
  private unavailableLogged = false;
  private running: Promise<void> | null = null;
  private lists: Lists;
  /** Names already warned about as not recordable (once each). */
  private readonly skipped = new Set<string>();

  private readonly deps: DockerSyncDeps;
  private readonly abandoned: AbandonedEndpoints;
  private readonly leaked: LeakedAddresses;
  constructor(deps: DockerSyncDeps) {
    this.deps = deps;
    const { api, getState, execute, log } = deps;
    this.lists = this.freshLists();
    // The abandoned-endpoints step reads the look's one list of containers.
    const shared = { listContainers: () => this.lists.containers(), inspectNetwork: <T,>(id: string) => api.inspectNetwork<T>(id) };
    this.abandoned = new AbandonedEndpoints({ api: shared, getState, execute, log, graceMs: deps.abandonedGraceMs, now: deps.now ?? Date.now });
    this.leaked = new LeakedAddresses({ api, getState, execute, log, graceMs: deps.abandonedGraceMs, now: deps.now ?? Date.now });
  }

  private freshLists(): Lists {
    const once = <T,>(ask: () => Promise<T>) => {
      let p: Promise<T> | null = null;
      return () => (p ??= ask());
    };
    return { networks: once(() => this.deps.api.listNetworks()), containers: once(() => this.deps.api.listContainers(true)) };
  }

  /** Resolves once no look is in progress (for shutdown). */
  async idle(): Promise<void> {
    await this.running;
  }

  /**
   * One look at Docker: collect networks it no longer has, record its names for what ledgernet
   * holds, bring back containers it gave up on, release endpoints it abandoned and the addresses
   * whose ReleaseAddress it gave up (leaked-addresses.ts).
   */
  sync(): Promise<void> {
    return this.once(async () => {
      this.lists = this.freshLists();
      await this.collectNetworks();
      if (Object.keys(this.deps.getState().networks).length > 0) await this.recordNames(namesInLists(await this.lists.networks(), await this.lists.containers()));
      await this.restartContainers();
      await this.abandoned.step();
      await this.leaked.step();
    });
  }

  /**
   * Records Docker's names for `networkIds` and the containers on them: one inspect each, so the
   * cost follows the change, not the host (soon after a network appeared or a container joined).
   */
  nameNetworks(networkIds: Iterable<string>): Promise<void> {
    const ids = [...networkIds].filter((id) => lookup(this.deps.getState().networks, id));
    if (ids.length === 0) return Promise.resolve();
    // After a look that runs (it may have listed before these appeared), not instead of it.
    if (this.running) return this.running.then(() => this.nameNetworks(ids));
    return this.once(async () => {
      for (const id of ids) {
        const n = await this.deps.api.inspectNetwork<InspectedNames>(id).catch((e: unknown) => {
          if (e instanceof DockerApiError && e.status === 404) return null; // removed meanwhile
          throw e;
        });
        if (n) await this.recordNames(namesInInspect(n));
      }
    });
  }

  private once(look: () => Promise<void>): Promise<void> {
    // One look at a time; one asked for while another runs is dropped (the next tick looks again).
    if (this.running) return this.running;
    this.running = (async () => {
      try {
        await look();
        this.unavailableLogged = false;
      } catch (e) {
        this.abandoned.forget();
        this.leaked.forget();
        if (!(e instanceof DockerUnavailableError)) {
          this.deps.log.error({ err: e }, 'checking Docker for removed networks and containers to restart failed');
        } else if (!this.unavailableLogged) {
          this.unavailableLogged = true;
          this.deps.log.info({ reason: e.message }, 'Docker cannot be asked now; removed networks are collected once it answers');
        }
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async collectNetworks(): Promise<void> {
    const known = Object.keys(this.deps.getState().networks);
    if (known.length === 0 && this.suspects.size === 0) return;
    const docker = new Set((await this.lists.networks()).map((n) => n.Id));
    const now = (this.deps.now ?? Date.now)();
    const { collect, suspects } = networksToCollect(known, docker, this.suspects, now, this.deps.confirmMs);
    this.suspects = suspects;
    for (const id of collect) {
      if (await this.dockerHas(id)) {
        this.suspects.delete(id);
        this.deps.log.info({ networkId: id }, `network ${short(id)} was missing from Docker's lists but Docker has it: kept`);
        continue;
      }
      const events = await this.deps.execute({
        type: 'CollectNetwork',
        networkId: id,
        reason: 'Docker no longer has this network (removed while ledgernet was not running)',
      }, byLedgernet('docker-sync'));
      if (events.length > 0) {
        this.deps.log.warn(
          { networkId: id, events: events.map((e) => `${e.type}#${e.seq}`) },
          `network ${short(id)} is gone from Docker: collected, its kernel objects are removed`,
        );
      }
    }
  }

  /** Records Docker's names for the networks and endpoints ledgernet holds, where they changed. */
  /** Records the names in `seen` that differ from the log's (each checked; one that is not a name Docker gives is logged once and skipped). */
  async recordNames(seen: SeenNames): Promise<void> {
    const names = namesToRecord(this.deps.getState(), seen);
    for (const why of names.skipped.filter((w) => !this.skipped.has(w))) {
      this.skipped.add(why);
      this.deps.log.warn({ reason: why }, `a name in Docker's API is not recorded: ${why}`);
    }
    if (names.networks.length === 0 && names.endpoints.length === 0) return;
    await this.deps.execute({ type: 'RecordNames', networks: names.networks, endpoints: names.endpoints }, byLedgernet('docker-sync'));
  }

  /** Docker's answer for one network by id: false only on a 404. */
  private async dockerHas(id: string): Promise<boolean> {
    try {
      await this.deps.api.inspectNetwork(id);
      return true;
    } catch (e) {
      if (e instanceof DockerApiError && e.status === 404) return false;
      throw e;
    }
  }

  private async restartContainers(): Promise<void> {
    const networks = new Set(Object.keys(this.deps.getState().networks));
    if (networks.size === 0) return;
    const candidates = stoppedOn(await this.lists.containers(), networks).filter((id) => !this.started.has(id));
    for (const id of candidates) {
      // Removed since the list: nothing to do.
      const c = await this.deps.api.inspectContainer(id).catch((e: unknown) => {
        if (e instanceof DockerApiError && e.status === 404) return null;
        throw e;
      });
      if (!c) continue;
      // Docker's restore sets State.Error when the start failed because the driver was not there
      // (`plugin "ledgernet" not found`, or its socket refused); a container someone stopped has
      // no error and stays stopped, one that failed for another reason is not ours to retry.
      const driver = this.deps.driverName();
      const failedOnUs = c.State.Error.includes(`"${driver}"`) || c.State.Error.includes(`/${driver}.sock`);
      if (c.State.Running || !failedOnUs || !RESTART_POLICIES.has(c.HostConfig.RestartPolicy?.Name ?? '')) continue;
      this.started.add(id);
      const name = c.Name.replace(/^\//, '');
      this.deps.log.warn({ container: name, id: short(id), dockerError: c.State.Error }, `starting container ${name}: Docker gave up on it while ledgernet was not running`);
      try {
        await this.deps.api.startContainer(id);
        this.deps.log.info({ container: name, id: short(id) }, `container ${name} started again`);
      } catch (e) {
        this.deps.log.error({ err: e, container: name, id: short(id) }, `container ${name} could not be started`);
      }
    }
  }
}
