// The libnetwork remote-driver protocol (protocol.md §3). Handlers are thin: parse the body into
// a command, append it, wait for the reconciler where Docker needs the kernel ready, and answer.
// `call` turns every failure into `{"Err": "..."}`. It is what the supervisor's framed link
// reaches; plugin-http.ts serves the same calls over HTTP with fastify (--in-process, tests),
// loaded only there: a worker does not carry fastify (~14 MB of RSS; bench row 9).
import type { FastifyBaseLogger } from 'fastify';
import { BODY_LIMIT, cutOffRetryErr, DriverError } from '../errors.ts';
import { callIds, failure, requestError, type PluginCall } from './failure.ts';
import { byDocker, byLedgernet } from '../events/domain/cause.ts';
import type { ClusterPort } from '../events/domain/cluster.ts';
import type { Command, DefaultPool } from '../events/domain/commands.ts';
import { bridgeName } from '../events/domain/naming.ts';
import { short } from '../events/domain/decide.ts';
import { containerIfacePrefix } from '../events/domain/options.ts';
import { portRivals } from '../events/domain/ports.ts';
import { lookup, type PortBinding } from '../events/domain/types.ts';
import { EXTERNAL_RETRY, externalRetry, knownCalls } from './external-retry.ts';
import { JOIN_RETRY, answeredJoins, joinRetry } from './join-retry.ts';
import { RETRY_WAIT_MS, untilTold, type Wait } from './retry-wait.ts';
import { DELETE_RETRY, answerDeleteRetry } from './delete-retry.ts';
import { NETWORK_RETRY, NetworkAdopter, type DockerNetworks } from './deferred-network.ts';
import { CREATE_RETRY, answerCreateRetry, createAtJoin, learnAddresses, mayHaveV6, resumeAddressing } from './deferred-endpoint.ts';
import { applyIntent, awaitKernel, background, concernsEndpoint, concernsNetwork, concernsPorts, type IntentDeps } from './intent.ts';
import { ADDRESS_SPACES } from '../events/domain/ipam.ts';
import {
  DEFAULT_POOLS,
  EMPTY_HOST,
  checkBridgeFiltering,
  checkBridgeName,
  checkNetworkHostSubnets,
  releaseAddress,
  releasePool,
  requestAddress,
  requestPool,
  type HostView,
  type IpamDeps,
} from './ipam.ts';
import {
  gatewayIp,
  id,
  ipv6Elsewhere,
  macForAddress,
  randomMac,
  options,
  parseBody,
  sandboxKey as sandboxKeyOf,
  toEndpointSpec,
  toGwAllocCheck,
  toNetworkSpec,
  toPortmap,
  type Json,
} from './wire.ts';

export interface ApiDeps extends IntentDeps {
  readonly reconciler: IntentDeps['reconciler'] & {
    /** Why a network cannot be set up (a foreign link holds its bridge name), or null. */
    conflictOf?(networkId: string): string | null;
  };
  /** The host as IPAM and option checks need it (default: an empty host). */
  readonly host?: HostView;
  /** Where automatic pools are carved from (default DEFAULT_POOLS). */
  readonly defaultPools?: { readonly v4: DefaultPool; readonly v6: DefaultPool };
  /** The cluster's coordination (serve --nats): cluster networks need it. */
  readonly cluster?: ClusterPort | undefined;
  /** Called with each call's method name and duration (metrics). */
  readonly onCall?: (method: string, ms: number, ok: boolean) => void;
  /** How long an empty retry several endpoints could be waits for them to be told apart (default RETRY_WAIT_MS; tests shorten it). */
  readonly retryWaitMs?: number;
  /**
   * Docker's API, read to take a network whose CreateNetwork was cut off from Docker once it stored
   * it (deferred-network.ts), with the name Docker knows this driver by; absent: never asked, and
   * such a CreateNetwork's empty retry is refused.
   */
  readonly docker?: {
    readonly networks: DockerNetworks;
    readonly driverName: () => string;
    /** The id of the container whose endpoint `endpointId` is on the network, as Docker's API lists it; null when none is. */
    readonly endpointContainer?: (networkId: string, endpointId: string) => Promise<string | null>;
  };
}

type Handler = (body: Json, method: string) => Promise<unknown>;

/** The largest request body accepted (errors.ts: the supervisor's limit too). */
export { BODY_LIMIT };

/**
 * Per-app state: endpoints whose veth a pass in this process has confirmed (Join need not wait),
 * the reads of deferred endpoints' addresses under way (deferred-endpoint.ts), and the reads of
 * Docker's network list for networks whose CreateNetwork was cut off (deferred-network.ts; null
 * without Docker's API).
 */
type Ctx = ApiDeps & { readonly ready: Set<string>; readonly addressing: Map<string, Promise<void>>; readonly adopter: NetworkAdopter | null };

/** The plugin: its calls, and the methods Docker may make (served over HTTP by plugin-http.ts). */
export interface Plugin {
  /** Any call: Docker's, and the supervisor's internal ones (its framed link). */
  readonly call: PluginCall;
  /** The methods Docker may call (not the supervisor's internal ones). */
  readonly methods: readonly string[];
  readonly log: FastifyBaseLogger;
}

/** The plugin's routes, callable through `call` (one state for the process). */
export function createPlugin(apiDeps: ApiDeps): Plugin {
  let adopter: NetworkAdopter | null = null;
  const deps: Ctx = {
    ...apiDeps,
    ready: new Set<string>(),
    addressing: new Map(),
    get adopter() {
      return adopter;
    },
  };
  const docker = apiDeps.docker;
  if (docker) {
    adopter = new NetworkAdopter({ ...apiDeps, docker: docker.networks, driverName: docker.driverName, create: (b) => createNetwork(deps, b, 'NetworkDriver.CreateNetwork', true) });
  }
  // Endpoints created at their Join whose addresses a previous process had not read yet, and
  // networks answered without their body that a previous process had not taken from Docker yet.
  resumeAddressing(deps);
  void adopter?.kick();
  const apiLog = deps.log.child({ component: 'api' }) as FastifyBaseLogger;
  const ipam: IpamDeps = { store: deps.store, host: deps.host ?? EMPTY_HOST, defaultPools: deps.defaultPools ?? DEFAULT_POOLS, cluster: deps.cluster };
  const routes: Record<string, { needsBody: boolean; handler: Handler }> = {
    'Plugin.Activate': { needsBody: false, handler: async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }) },
    'IpamDriver.GetCapabilities': {
      needsBody: false,
      handler: async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    },
    'IpamDriver.GetDefaultAddressSpaces': { needsBody: false, handler: async () => ADDRESS_SPACES },
    'IpamDriver.RequestPool': { needsBody: true, handler: (b, m) => requestPool(ipam, b, m) },
    'IpamDriver.ReleasePool': { needsBody: true, handler: (b, m) => releasePool(ipam, b, m) },
    'IpamDriver.RequestAddress': { needsBody: true, handler: (b, m) => requestAddress(ipam, b, m) },
    'IpamDriver.ReleaseAddress': { needsBody: true, handler: (b, m) => releaseAddress(ipam, b, m) },
    'NetworkDriver.GetCapabilities': {
      needsBody: false,
      // GwAllocChecker: Docker 28+ asks GwAllocCheck before IPAM whether to reserve gateway addresses.
      handler: async () => ({ Scope: 'local', ConnectivityScope: 'local', GwAllocChecker: true }),
    },
    'NetworkDriver.GwAllocCheck': { needsBody: true, handler: async (b, m) => toGwAllocCheck(m, b) },
    'NetworkDriver.CreateNetwork': { needsBody: true, handler: (b, m) => createNetwork(deps, b, m) },
    'NetworkDriver.DeleteNetwork': { needsBody: true, handler: (b, m) => deleteNetwork(deps, b, m) },
    'NetworkDriver.CreateEndpoint': { needsBody: true, handler: (b, m) => createEndpoint(deps, b, m) },
    'NetworkDriver.EndpointOperInfo': { needsBody: true, handler: (b, m) => endpointOperInfo(deps, b, m) },
    'NetworkDriver.DeleteEndpoint': { needsBody: true, handler: (b, m) => deleteEndpoint(deps, b, m) },
    'NetworkDriver.Join': { needsBody: true, handler: (b, m) => join(deps, b, m) },
    'NetworkDriver.Leave': { needsBody: true, handler: (b, m) => leave(deps, b, m) },
    'NetworkDriver.ProgramExternalConnectivity': { needsBody: true, handler: (b, m) => program(deps, b, m) },
    'NetworkDriver.RevokeExternalConnectivity': { needsBody: true, handler: (b, m) => revoke(deps, b, m) },
    'NetworkDriver.DiscoverNew': { needsBody: false, handler: async () => ({}) },
    'NetworkDriver.DiscoverDelete': { needsBody: false, handler: async () => ({}) },
    'NetworkDriver.AllocateNetwork': {
      needsBody: false,
      handler: async (_b, m) => {
        throw new DriverError('LN_ERR_BAD_REQUEST', `${m}: ledgernet is a local-scope driver; swarm networks are not supported`);
      },
    },
    'NetworkDriver.FreeNetwork': { needsBody: false, handler: async () => ({}) },
  };

  // Calls only the supervisor makes (over the worker link, never served on a socket Docker reaches).
  const internal: Record<string, { needsBody: boolean; handler: Handler }> = {
    [EXTERNAL_RETRY]: { needsBody: true, handler: (b) => answerExternalRetry(deps, b) },
    [JOIN_RETRY]: { needsBody: false, handler: (b) => answerJoinRetry(deps, b) },
    [CREATE_RETRY]: { needsBody: false, handler: () => answerCreateRetry(deps) },
    [DELETE_RETRY]: { needsBody: false, handler: () => answerDeleteRetry(deps) },
    [NETWORK_RETRY]: {
      needsBody: false,
      handler: async () => {
        if (adopter) return adopter.answerRetry();
        throw new DriverError('LN_ERR_BAD_REQUEST', `NetworkDriver.CreateNetwork: ${cutOffRetryErr(", and ledgernet does not read Docker's API (--docker-socket ''), where it would find the network once Docker stored it")}`);
      },
    },
  };
  const call: PluginCall = async (method, raw) => {
    const route = lookup(routes, method) ?? lookup(internal, method);
    if (!route) return { status: 404, body: JSON.stringify({ Err: `ledgernet does not implement POST /${method}` }) };
    const t0 = performance.now();
    let ok = false;
    try {
      if (Buffer.byteLength(raw) > BODY_LIMIT) {
        const tooLarge = Object.assign(new Error('body too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 });
        const f = failure(tooLarge, `/${method}`, apiLog, requestError(tooLarge, `/${method}`, String(Buffer.byteLength(raw)), BODY_LIMIT));
        return { status: f.status, body: JSON.stringify(f.body) };
      }
      const res = await route.handler(parseBody(method, raw, route.needsBody), method);
      ok = true;
      return { status: 200, body: JSON.stringify(res ?? {}) };
    } catch (err) {
      const f = failure(err, `/${method}`, apiLog, null, callIds(raw));
      return { status: f.status, body: JSON.stringify(f.body) };
    } finally {
      deps.onCall?.(method, performance.now() - t0, ok);
    }
  };
  return { call, methods: Object.keys(routes), log: apiLog };
}

async function createNetwork(deps: ApiDeps, body: Json, method: string, adopted = false): Promise<unknown> {
  const spec = { ...toNetworkSpec(method, body), ...(adopted ? { adopted: true as const } : {}) };
  await checkBridgeName(deps.host ?? EMPTY_HOST, spec.bridge, spec.bridge === bridgeName(spec.networkId), method);
  await checkBridgeFiltering(deps.host ?? EMPTY_HOST, spec, method);
  await checkNetworkHostSubnets(deps.host ?? EMPTY_HOST, deps.store.state, spec);
  await applyIntent(deps, { type: 'CreateNetwork', spec }, {
    trigger: method,
    concerns: concernsNetwork(spec.networkId),
    what: `could not set up bridge ${spec.bridge}`,
    compensate: (reason) => ({ type: 'RollbackNetwork', networkId: spec.networkId, reason }),
    // Taken from Docker's API (src/api/deferred-network.ts), not from Docker's call.
    ...(adopted ? { cause: byLedgernet('network-adopter') } : {}),
  });
  if (spec.ipv6Data.length > 0 && !spec.internal) await deps.host?.forwardIpv6?.(spec.networkId);
  return {};
}

async function deleteNetwork(deps: Ctx, body: Json, method: string): Promise<unknown> {
  const networkId = id(method, body, 'NetworkID');
  deps.adopter?.removing(networkId);
  const events = await deps.store.execute({ type: 'DeleteNetwork', networkId }, byDocker(method));
  // Deleting a bridge takes ~45 ms in the kernel; the intent is durable, so answer now and converge.
  if (events.length > 0) background(deps, method);
  return {};
}

async function createEndpoint(deps: Ctx, body: Json, method: string): Promise<unknown> {
  const { spec, requestedMac } = toEndpointSpec(method, body);
  // A network whose CreateNetwork was cut off: Docker has it, ledgernet takes it from Docker's API.
  if (deps.adopter && !lookup(deps.store.state.networks, spec.networkId)) await deps.adopter.whenKnown(spec.networkId, method, deps.retryWaitMs ?? RETRY_WAIT_MS);
  // Given none: derived from the IPv4 address as Docker's bridge driver does, unless another endpoint
  // was given that MAC (ledgernet.mac), then a random one; decide chooses, against every decided endpoint.
  const given = spec.mac ?? requestedMac;
  const macChoice = given === null && spec.address ? { derived: macForAddress(spec.address), fallback: randomMac() } : null;
  const command: Command = {
    type: 'CreateEndpoint',
    spec: { ...spec, mac: given },
    ...(requestedMac !== null ? { requestedMac: true } : {}),
    ...(macChoice === null ? {} : { macChoice }),
  };
  const events = await applyIntent(deps, command, {
    trigger: method,
    concerns: concernsEndpoint(spec.networkId, spec.endpointId),
    what: `could not create veth ${spec.veth}`,
    compensate: (reason) => ({ type: 'RollbackEndpoint', networkId: spec.networkId, endpointId: spec.endpointId, reason }),
  });
  deps.ready.add(spec.endpointId);
  // The MAC recorded (a repeat of the call records nothing: the endpoint's). Only fields Docker
  // left empty may be returned, or it rolls the endpoint back.
  const created = events.find((e) => e.type === 'endpoint.created');
  const mac = created ? created.data.mac : (lookup(deps.store.state.endpoints, spec.endpointId)?.mac ?? null);
  return spec.mac === null && mac !== null ? { Interface: { MacAddress: mac } } : {};
}

async function endpointOperInfo(deps: ApiDeps, body: Json, method: string): Promise<unknown> {
  id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  const ep = lookup(deps.store.state.endpoints, endpointId);
  return { Value: ep ? { hostVeth: ep.veth } : {} };
}

async function deleteEndpoint(deps: Ctx, body: Json, method: string): Promise<unknown> {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  deps.ready.delete(endpointId);
  const events = await deps.store.execute({ type: 'DeleteEndpoint', networkId, endpointId }, byDocker(method));
  if (events.length > 0) background(deps, method);
  return {};
}

async function join(deps: Ctx, body: Json, method: string): Promise<unknown> {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  const sandboxKey = sandboxKeyOf(method, body);
  const net = lookup(deps.store.state.networks, networkId);
  if (!net) throw new DriverError('LN_ERR_UNKNOWN_NETWORK', `${method}: network ${short(networkId)} is not known to ledgernet`);
  // Unknown: its CreateEndpoint may have been answered without its body after a crash.
  const ep = lookup(deps.store.state.endpoints, endpointId) ?? (await createAtJoin(deps, networkId, endpointId, method));
  if (!ep || ep.networkId !== networkId) {
    throw new DriverError('LN_ERR_UNKNOWN_ENDPOINT', `${method}: endpoint ${short(endpointId)} is not known to ledgernet on network ${short(networkId)}`);
  }
  // SrcName must exist in the host namespace when Docker reads the reply. CreateEndpoint's pass
  // confirmed it moments ago; otherwise (e.g. after a restart, or the network is in conflict
  // since) run a pass to make sure.
  if (!deps.ready.has(endpointId) || deps.reconciler.conflictOf?.(networkId)) {
    await awaitKernel(deps, { trigger: method, concerns: concernsEndpoint(networkId, endpointId), what: `${method}: veth ${ep.veth} is not ready`, compensate: null });
  }
  await deps.store.execute({ type: 'Join', networkId, endpointId, sandboxKey }, byDocker(method));
  // Created at this Join: its addresses are Docker's, read once Docker has configured the container.
  if (ep.deferred && sandboxKey !== '') void learnAddresses(deps, endpointId);
  // DstName: the name the container asked for (Docker 28+'s ifname; engines with moby#52866 apply it).
  const res: Json = { InterfaceName: { SrcName: ep.peer, DstPrefix: containerIfacePrefix(net.options), ...(ep.ifname === undefined ? {} : { DstName: ep.ifname }) } };
  if (!net.internal) {
    const gw4 = gatewayIp(net.ipv4Data, ep.address);
    const gw6 = mayHaveV6(ep) ? gatewayIp(net.ipv6Data, ep.addressV6) : null;
    if (gw4) res['Gateway'] = gw4;
    if (gw6) res['GatewayIPv6'] = gw6;
  }
  return res;
}

async function leave(deps: ApiDeps, body: Json, method: string): Promise<unknown> {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  await deps.store.execute({ type: 'Leave', networkId, endpointId }, byDocker(method));
  return {};
}

async function program(deps: ApiDeps, body: Json, method: string): Promise<unknown> {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  const opts = options(method, body);
  const portmap = toPortmap(method, opts);
  const had = lookup(deps.store.state.endpoints, endpointId)?.portmap.length ?? 0;
  // A host port a program on the host listens on is refused (Docker's bridge driver cannot bind it either).
  const hostListeners = portmap.length === 0 ? [] : await (deps.host ?? EMPTY_HOST).listeners();
  const containerId = await rivalContainer(deps, networkId, endpointId, portmap);
  const command: Command = { type: 'ProgramExternal', networkId, endpointId, portmap, ipv6Elsewhere: ipv6Elsewhere(method, opts), hostListeners, ...(containerId === null ? {} : { containerId }) };
  const events = await deps.store.execute(command, byDocker(method));
  if (events.length === 0) return {};
  // No ports now: nothing in the kernel depends on this call, unless ports were published before.
  if (portmap.length === 0) {
    if (had > 0) background(deps, method);
    return {};
  }
  // Published ports should work once `docker run` returns: wait for the pass that writes them;
  // if the kernel refuses them, compensate and tell Docker.
  // Compensate on failure: Docker will not use ports it was told failed, so the log must not keep them.
  await awaitKernel(deps, {
    trigger: method,
    concerns: concernsPorts(endpointId),
    what: `${method}: could not publish the ports of endpoint ${short(endpointId)}`,
    compensate: () => ({ type: 'RevokeExternal', networkId, endpointId }),
  });
  return {};
}

/**
 * The endpoint's container, asked of Docker's API only when another endpoint of the network whose
 * container is known holds a host port the call asks for (decide releases that one if it is the
 * same container's older endpoint); null without Docker's API or when it cannot answer: the port
 * is then refused as taken, as before.
 */
async function rivalContainer(deps: ApiDeps, networkId: string, endpointId: string, portmap: readonly PortBinding[]): Promise<string | null> {
  const ask = deps.docker?.endpointContainer;
  if (ask === undefined || portRivals(portmap, deps.store.state, { networkId, endpointId }).length === 0) return null;
  return ask(networkId, endpointId).catch(() => null);
}

/**
 * The supervisor's question for Docker's empty-body retry of a ProgramExternalConnectivity that no
 * journal entry matches (external-retry.ts has the rule and the body).
 */
async function answerExternalRetry(deps: ApiDeps, body: Json): Promise<unknown> {
  const method = 'NetworkDriver.ProgramExternalConnectivity';
  const known = knownCalls(body);
  const now = Date.now();
  const r = await retryVerdict(deps, method, (among) => externalRetry(deps.store.state, now, known.joins, known.teardowns, among));
  if (r.kind === 'nothing') {
    deps.log.warn({ method, candidates: r.candidates }, 'empty-body retry of a call cut off before it was recorded: every endpoint it can repeat publishes no port, so there is nothing to program; answered as done');
    return {};
  }
  deps.log.warn({ method, endpoint: short(r.body.EndpointID) }, 'empty-body retry of a call cut off before it was recorded: one endpoint can be its target; programmed with the Options of its Join');
  return program(deps, r.body as unknown as Json, method);
}

/** The supervisor's question for Docker's empty-body retry of a Join that no journal entry matches (join-retry.ts has the rule). */
async function answerJoinRetry(deps: Ctx, body: Json): Promise<unknown> {
  const method = 'NetworkDriver.Join';
  const now = Date.now();
  const answered = answeredJoins(body);
  const r = await retryVerdict(deps, method, (among) => joinRetry(deps.store.state, now, among, answered));
  deps.log.warn({ method, endpoint: short(r.body.EndpointID) }, r.body.SandboxKey === '' ? 'empty-body retry of a call cut off before it was recorded: one endpoint can be its target; joined (its sandbox key unknown)' : 'empty-body retry after a crash: the Join answered just before it is the one endpoint it can be; answered again from its own body');
  return join(deps, r.body as unknown as Json, method);
}

type Refuse = { readonly kind: 'refuse'; readonly reason: string };

/**
 * An empty retry's rule, asked at once and, while it waits for several candidates to be told
 * apart, again among those (retry-wait.ts); a refusal, or a wait that ran out, is the Err.
 */
async function retryVerdict<R extends { readonly kind: string }>(deps: ApiDeps, method: string, rule: (among?: ReadonlySet<string>) => R | Refuse | Wait): Promise<Exclude<R, Refuse | Wait>> {
  let r = rule();
  if (r.kind === 'wait') {
    const { candidates } = r as Wait;
    const among = new Set(candidates);
    const waitMs = deps.retryWaitMs ?? RETRY_WAIT_MS;
    deps.log.warn({ method, candidates: candidates.map(short), waitMs }, 'empty-body retry of a call cut off before it was recorded: several endpoints can be its target; waiting for their own calls to tell them apart');
    r = await untilTold(() => rule(among), waitMs);
    if (r.kind === 'wait') r = { kind: 'refuse', reason: `${(r as Wait).reason} (no call told them apart within ${waitMs / 1000} s)` };
  }
  if (r.kind === 'refuse') {
    const { reason } = r as Refuse;
    deps.log.error({ method, reason }, 'an empty-body retry after a supervisor crash matches no journaled call; refused');
    throw new DriverError('LN_ERR_BAD_REQUEST', cutOffErr(reason));
  }
  return r as Exclude<R, Refuse | Wait>;
}

/** The Err of an empty-body retry that neither the journal nor the model can match. */
function cutOffErr(reason: string): string {
  return cutOffRetryErr(`, and ${reason}`, { recorded: false });
}

async function revoke(deps: ApiDeps, body: Json, method: string): Promise<unknown> {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  const had = lookup(deps.store.state.endpoints, endpointId)?.portmap.length ?? 0;
  const events = await deps.store.execute({ type: 'RevokeExternal', networkId, endpointId }, byDocker(method));
  // Only published ports have rules to remove.
  if (events.length > 0 && had > 0) background(deps, method);
  return {};
}
