// Docker's empty-body retry (moby#39331) of a CreateNetwork cut off by a whole-daemon SIGKILL
// before its body was journaled (RELIABILITY.md, "CreateNetwork cut off in the window"). The body
// held the network's id, options and subnets, and nothing else recorded them; but `{}` is the
// answer of every CreateNetwork that succeeds, and once Docker has it, Docker stores the network
// and lists it in its API with the same id, options and subnets. So:
//
// - the retry is answered `{}` after a durable `network.deferred` marker;
// - in the background (never while Docker waits on one of ledgernet's answers to read its API:
//   protocol.md §7, pitfall 2), Docker's network list is read until a network of this driver that
//   ledgernet does not know, created around the cut-off call, is there; its CreateNetwork body is
//   rebuilt from the list (`createNetworkBody`) and done as Docker's own would be (the same checks,
//   the bridge set up), using one marker;
// - a CreateEndpoint naming a network ledgernet does not know, while a marker is pending, waits
//   for that (a `docker run` right after the `docker network create`).
//
// What cannot be rebuilt is refused with a message that names it (the CreateEndpoint that waits
// gets it): a gateway Docker's API does not show and no rule gives (a third-party IPAM driver's,
// or `--ip-range` without `--gateway` on an engine other than 20.10). A marker no network uses
// (the docker command failed for another reason, or the CreateNetwork had been done and only its
// reply was lost) expires after DEFERRED_MS.
import { DriverError } from '../errors.ts';
import { bits, formatIp, parseIp, parsePrefix, type Prefix } from '../events/domain/cidr.ts';
import { byDocker } from '../events/domain/cause.ts';
import { short } from '../events/domain/decide.ts';
import { lookup, pendingDeferredNetworks, type State } from '../events/domain/types.ts';
import type { IntentDeps } from './intent.ts';
import { ADDRESS_SPACES } from '../events/domain/ipam.ts';
import type { Json } from './wire.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const NETWORK_RETRY = 'Ledgernet.NetworkRetry';

/** One IPAM config entry of a network in Docker's API. */
interface DockerIpamConfig {
  readonly Subnet?: string;
  readonly IPRange?: string;
  readonly Gateway?: string;
  readonly AuxiliaryAddresses?: Readonly<Record<string, string>> | null;
}

/** A network as Docker's API lists it (`GET /networks`): what a CreateNetwork body is rebuilt from. */
export interface DockerNetworkView {
  readonly Id: string;
  readonly Driver: string;
  readonly Created?: string;
  readonly EnableIPv6?: boolean;
  /** Docker 28+. */
  readonly EnableIPv4?: boolean;
  readonly Internal?: boolean;
  /** The `-o` options (CreateNetwork's `com.docker.network.generic`). */
  readonly Options?: Readonly<Record<string, string>> | null;
  readonly IPAM?: { readonly Driver?: string; readonly Config?: readonly DockerIpamConfig[] | null } | null;
}

/** Docker's API as the adoption reads it (main.ts: operator/docker-api.ts). */
export interface DockerNetworks {
  list(): Promise<readonly DockerNetworkView[]>;
  /** The engine's version (`GET /version`), e.g. `20.10.24+dfsg1`. */
  version(): Promise<string>;
}

/**
 * How long before its empty retry a cut-off CreateNetwork can have been made: Docker's retries
 * end 30 s after the first attempt (supervisor/retry-match.ts RETRY_WINDOW_MS), and the network's
 * `Created` is stamped before its IPAM calls.
 */
const LOOK_BACK_MS = 40_000;

/** What `createNetworkBody` needs besides the network: ledgernet's names in Docker and its IPAM pools. */
export interface BodyContext {
  /** The names Docker knows this driver (and its IPAM driver) by. */
  readonly names: ReadonlySet<string>;
  readonly state: State;
  /** The engine's version, asked only when a rule depends on it. */
  readonly version: () => Promise<string>;
}

/**
 * The CreateNetwork body Docker sent for `n` (protocol.md §3), rebuilt from its API's view, or
 * the reason it cannot be. Docker's API shows the gateway only when one was asked for (or no
 * subnet was): otherwise it is ledgernet's own IPAM's gateway allocation, or, with Docker's
 * default IPAM, the address it always picks (observed on 20.10: the first address after the
 * subnet's base; with `--ip-range`, the range's first address unless that is the subnet's base).
 */
export async function createNetworkBody(n: DockerNetworkView, ctx: BodyContext): Promise<{ body: Json } | { problem: string }> {
  const ipamDriver = n.IPAM?.Driver || 'default';
  const ours = ctx.names.has(ipamDriver);
  const data: Record<4 | 6, Json[]> = { 4: [], 6: [] };
  for (const [i, c] of (n.IPAM?.Config ?? []).entries()) {
    const subnet = parsePrefix(c.Subnet ?? '');
    if (!subnet) return { problem: `IPAM.Config[${i}].Subnet ${JSON.stringify(c.Subnet ?? null)} is not a subnet` };
    const gateway = await gatewayOf(c, subnet, ipamDriver, ours, ctx);
    if (typeof gateway === 'object' && gateway !== null) return gateway;
    const withLen = (ip: string) => `${ip}/${subnet.len}`;
    data[subnet.family].push({
      AddressSpace: ours ? ADDRESS_SPACES.LocalDefaultAddressSpace : 'LocalDefault',
      Pool: `${formatIp(subnet.family, subnet.base)}/${subnet.len}`,
      ...(gateway === null ? {} : { Gateway: withLen(gateway) }),
      ...(c.AuxiliaryAddresses && Object.keys(c.AuxiliaryAddresses).length > 0
        ? { AuxAddresses: Object.fromEntries(Object.entries(c.AuxiliaryAddresses).map(([k, ip]) => [k, withLen(ip)])) }
        : {}),
    });
  }
  const options: Json = {
    'com.docker.network.enable_ipv6': n.EnableIPv6 === true,
    'com.docker.network.generic': { ...(n.Options ?? {}) },
    ...(n.EnableIPv4 === undefined ? {} : { 'com.docker.network.enable_ipv4': n.EnableIPv4 }),
    ...(n.Internal ? { 'com.docker.network.internal': true } : {}),
  };
  return { body: { NetworkID: n.Id, Options: options, IPv4Data: data[4], IPv6Data: data[6] } };
}

/** The gateway (an address, no prefix length) of one IPAM entry, null for none, or the problem. */
async function gatewayOf(c: DockerIpamConfig, subnet: Prefix, ipamDriver: string, ours: boolean, ctx: BodyContext): Promise<string | null | { problem: string }> {
  const what = `subnet ${c.Subnet}`;
  if (c.Gateway) return parseIp(c.Gateway)?.family === subnet.family ? c.Gateway : { problem: `${what}: Docker's API shows the gateway ${JSON.stringify(c.Gateway)}, not an address of the subnet's family` };
  if (ours) {
    // Ledgernet's IPAM gave it: the gateway allocation of the pool not yet used by a network.
    const pool = `${formatIp(subnet.family, subnet.base)}/${subnet.len}`;
    const used = new Set(Object.values(ctx.state.networks).flatMap((net) => [...net.ipv4Data, ...net.ipv6Data].map((d) => d.pool)));
    const gateways = new Set(
      Object.values(ctx.state.pools)
        .filter((p) => p.pool === pool && !used.has(p.pool))
        .flatMap((p) => Object.entries(p.allocated).filter(([, a]) => a.kind === 'gateway').map(([ip]) => ip)),
    );
    if (gateways.size > 1) return { problem: `${what}: ledgernet's IPAM holds ${gateways.size} gateway addresses in that pool (${[...gateways].join(', ')}), and Docker's API does not show which is this network's` };
    return [...gateways][0] ?? null;
  }
  if (ipamDriver !== 'default') return { problem: `${what}: Docker's API does not show the gateway IPAM driver ${ipamDriver} gave it` };
  const first = subnet.base + (subnet.len >= bits(subnet.family) - 1 ? 0n : 1n);
  if (!c.IPRange) return formatIp(subnet.family, first);
  const range = parsePrefix(c.IPRange);
  if (!range || range.family !== subnet.family) return { problem: `${what}: IPRange ${JSON.stringify(c.IPRange)} is not a range of the subnet's family` };
  const version = await ctx.version();
  if (!version.startsWith('20.10.')) {
    return { problem: `${what}: Docker's API does not show the gateway its IPAM picked in --ip-range ${c.IPRange}, and on Docker ${version} ledgernet does not know the rule it picks by (pass --gateway)` };
  }
  return formatIp(subnet.family, range.base === subnet.base ? first : range.base);
}

export interface AdopterDeps extends IntentDeps {
  readonly docker: DockerNetworks;
  /** The name Docker knows this driver by when it knows no network of it yet (operator/docker-name.ts: the socket's base name, the managed plugin's name, or LEDGERNET_DRIVER_NAME). */
  readonly driverName: () => string;
  /** Does a rebuilt CreateNetwork as Docker's own would be done, marked as taken from Docker's API. */
  readonly create: (body: Json) => Promise<unknown>;
  readonly now?: () => number;
}

/** Takes networks whose CreateNetwork was answered without its body from Docker's API (see the top of this file). */
export class NetworkAdopter {
  private readonly deps: AdopterDeps;
  private running: Promise<void> | null = null;
  /** Networks that could not be taken, with the reason (a CreateEndpoint naming one gets it). */
  private readonly refused = new Map<string, string>();
  /** Networks Docker removed (DeleteNetwork came): Docker lists one until that call returns. */
  private readonly removed = new Set<string>();
  constructor(deps: AdopterDeps) {
    this.deps = deps;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private pending(): readonly string[] {
    return pendingDeferredNetworks(this.deps.store.state, this.now());
  }

  /** Answers the retry: `{}` once the marker is durable; the network is looked for from then on. */
  async answerRetry(): Promise<unknown> {
    await this.deps.store.execute({ type: 'DeferNetwork', reason: 'the empty-body retry of a CreateNetwork cut off before it was journaled' }, byDocker('NetworkDriver.CreateNetwork'));
    this.deps.log.warn(
      { method: 'NetworkDriver.CreateNetwork' },
      "empty-body retry of a call cut off before it was recorded: answered as done; the network Docker stores next is taken from Docker's API",
    );
    void this.kick();
    return {};
  }

  /** Looks in Docker's API until every pending marker is used or expired (one loop at a time). */
  kick(): Promise<void> {
    if (this.pending().length === 0) return Promise.resolve();
    this.running ??= this.loop().finally(() => (this.running = null));
    return this.running;
  }

  /** Docker is removing `networkId` (its DeleteNetwork came): never take it, though Docker still lists it for a moment. */
  removing(networkId: string): void {
    if (this.pending().length > 0) this.removed.add(networkId);
  }

  private async loop(): Promise<void> {
    let delay = 50;
    while (this.pending().length > 0) {
      try {
        await this.look();
      } catch (e) {
        this.deps.log.warn({ err: e }, "could not read Docker's networks to take one whose CreateNetwork was cut off; trying again");
      }
      if (this.pending().length === 0) return;
      // Unref'd: a loop still looking keeps no process alive (the daemon's server does that).
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 1_000);
    }
  }

  /** One read of Docker's networks; takes each new one of this driver, at most one per pending marker. */
  private async look(): Promise<void> {
    const markers = this.pending();
    if (markers.length === 0) return;
    const nets = await this.deps.docker.list();
    const state = this.deps.store.state;
    const names = new Set([this.deps.driverName(), ...nets.filter((n) => lookup(state.networks, n.Id)).map((n) => n.Driver)]);
    const from = Date.parse(markers[0] ?? '') - LOOK_BACK_MS;
    const to = Date.parse(markers[markers.length - 1] ?? '') + 1_000;
    const created = (n: DockerNetworkView) => Date.parse(n.Created ?? '');
    const candidates = nets
      .filter((n) => names.has(n.Driver) && !lookup(state.networks, n.Id) && !this.refused.has(n.Id) && !this.removed.has(n.Id) && created(n) >= from && created(n) <= to)
      .sort((a, b) => created(a) - created(b))
      .slice(0, markers.length);
    let version: Promise<string> | null = null;
    const ctx: BodyContext = { names, state, version: () => (version ??= this.deps.docker.version()) };
    for (const n of candidates) {
      const r = await createNetworkBody(n, ctx);
      try {
        if ('problem' in r) throw new DriverError('LN_ERR_INVALID_OPTION', r.problem);
        await this.deps.create(r.body);
        this.deps.log.warn({ network: short(n.Id) }, "network taken from Docker's API: its CreateNetwork was cut off by a crash before it was recorded");
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        this.refused.set(n.Id, why);
        this.deps.log.error({ network: short(n.Id), err: e }, "a network whose CreateNetwork was cut off by a crash cannot be taken from Docker's API; remove it and create it again");
      }
    }
  }

  /**
   * For a call naming a network ledgernet does not know: while a marker is pending, waits (at most
   * `ms`) for that network to be taken from Docker's API; refuses with the reason when it could
   * not be. Returns at once when no marker is pending.
   */
  async whenKnown(networkId: string, method: string, ms: number): Promise<void> {
    const known = () => lookup(this.deps.store.state.networks, networkId) !== undefined;
    const deadline = this.now() + ms;
    while (!known() && !this.refused.has(networkId) && this.pending().length > 0 && this.now() < deadline) {
      void this.kick();
      await new Promise((r) => setTimeout(r, 20));
    }
    const why = this.refused.get(networkId);
    if (why !== undefined && !known()) {
      throw new DriverError(
        'LN_ERR_UNKNOWN_NETWORK',
        `${method}: network ${short(networkId)} was created while ledgernet was being restarted (its CreateNetwork was cut off), and ledgernet cannot take it from Docker's API: ${why}; remove it (docker network rm) and create it again`,
      );
    }
  }
}
