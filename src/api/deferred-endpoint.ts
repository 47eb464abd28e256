// Docker's empty-body retry (moby#39331) of a CreateEndpoint cut off by a whole-daemon SIGKILL
// before its body was journaled (RELIABILITY.md, "CreateEndpoint cut off in the window"). The body
// named the endpoint, its network and its addresses, and nothing else recorded them; but Docker's
// next call for that endpoint, its Join, names the endpoint and the network, and once Docker has
// moved the interface into the container and configured it, the addresses and the MAC are there
// to be read. So the retry is answered `{}` (an answer that fits any CreateEndpoint: Docker keeps
// the interface's own MAC when the answer names none) after a durable `endpoint.deferred` marker,
// and:
//
// - the next Join of an endpoint ledgernet does not know, within DEFERRED_MS of a marker, creates
//   it (its veth, named from its id as always) before it is joined, using one marker;
// - after the Join the container's interface is read in the sandbox the Join named, once Docker
//   has moved it there (`endpoint.addressed`); the endpoint's published ports are forwarded, and
//   the cluster publishes it, from then on (Docker configures the container only after
//   ProgramExternalConnectivity was answered, so that call cannot wait for it).
//
// No pick between calls is made: each endpoint is created from its own Join, so two cut-off
// CreateEndpoints cannot cross. A marker no Join uses (the docker command failed for another
// reason, or the CreateEndpoint had been done and only its reply was lost) expires.
import { byDocker, byLedgernet } from '../events/domain/cause.ts';
import { short } from '../events/domain/decide.ts';
import { peerName, vethName } from '../events/domain/naming.ts';
import { lookup, pendingDeferred, type EndpointSpec, type EndpointState } from '../events/domain/types.ts';
import { applyIntent, background, concernsEndpoint, type IntentDeps } from './intent.ts';
import type { HostView } from './ipam.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const CREATE_RETRY = 'Ledgernet.CreateRetry';

export interface DeferDeps extends IntentDeps {
  readonly host?: HostView;
  /** Endpoints whose veth a pass in this process has confirmed. */
  readonly ready: Set<string>;
  /** Reads of deferred endpoints' interfaces under way, by endpoint id. */
  readonly addressing: Map<string, Promise<void>>;
}

/** Answers the retry: `{}` once the marker is durable. */
export async function answerCreateRetry(deps: IntentDeps): Promise<unknown> {
  await deps.store.execute({ type: 'DeferEndpoint', reason: 'the empty-body retry of a CreateEndpoint cut off before it was journaled' }, byDocker('NetworkDriver.CreateEndpoint'));
  deps.log.warn(
    { method: 'NetworkDriver.CreateEndpoint' },
    'empty-body retry of a call cut off before it was recorded: answered as done; the endpoint its Join names next is created then, and its addresses read from the container',
  );
  return {};
}

/**
 * At a Join of an endpoint ledgernet does not know: creates it if a deferred CreateEndpoint is
 * pending (its veth ready when this returns), else returns undefined.
 */
export async function createAtJoin(deps: DeferDeps, networkId: string, endpointId: string, method: string): Promise<EndpointState | undefined> {
  if (pendingDeferred(deps.store.state, Date.now()) === 0) return undefined;
  const spec: EndpointSpec = { networkId, endpointId, veth: vethName(endpointId), peer: peerName(endpointId), address: null, addressV6: null, mac: null, deferred: true };
  await applyIntent(deps, { type: 'CreateEndpoint', spec }, {
    trigger: method,
    concerns: concernsEndpoint(networkId, endpointId),
    what: `could not create veth ${spec.veth}`,
    compensate: (reason) => ({ type: 'RollbackEndpoint', networkId, endpointId, reason }),
  });
  deps.ready.add(endpointId);
  deps.log.warn(
    { method, endpoint: short(endpointId), network: short(networkId) },
    "endpoint created at its Join: its CreateEndpoint was cut off by a crash before it was recorded; its addresses are read from the container once Docker has configured it",
  );
  return lookup(deps.store.state.endpoints, endpointId);
}

/** A deferred endpoint whose addresses are not known yet, in a sandbox that can be read. */
function unaddressed(ep: EndpointState | undefined): ep is EndpointState & { sandboxKey: string } {
  return ep !== undefined && ep.deferred === true && ep.address === null && ep.addressV6 === null && ep.joined && !!ep.sandboxKey;
}

/**
 * How long the container's interface is looked for. Docker 20.10 moves it into the container and
 * configures it only when the container's process is created (its network namespace is bound to
 * the SandboxKey then), after Join and ProgramExternalConnectivity were answered: ~0.1–0.5 s later.
 */
const READ_FOR_MS = 30_000;

/**
 * Reads a deferred endpoint's addresses from its container and records them (one read at a time
 * per endpoint; later callers wait for the one under way). Never throws: a failure is logged, and
 * the endpoint keeps no addresses (its published ports are not forwarded then).
 */
export function learnAddresses(deps: DeferDeps, endpointId: string): Promise<void> {
  const under = deps.addressing.get(endpointId);
  if (under) return under;
  const p = readAndRecord(deps, endpointId)
    .catch((e: unknown) => deps.log.error({ err: e, endpoint: short(endpointId) }, "could not read the addresses of an endpoint created at its Join from its container; its published ports and cluster peers lack them"))
    .finally(() => deps.addressing.delete(endpointId));
  deps.addressing.set(endpointId, p);
  return p;
}

async function readAndRecord(deps: DeferDeps, endpointId: string): Promise<void> {
  const host = deps.host;
  if (!host) return;
  const end = Date.now() + READ_FOR_MS;
  let delay = 10;
  let last: unknown = null;
  for (;;) {
    const ep = lookup(deps.store.state.endpoints, endpointId);
    if (!unaddressed(ep)) return;
    // Until Docker binds the namespace to the key, there is no such file: not there yet.
    const iface = await host.containerIface(ep.sandboxKey, ep.veth).catch((e: unknown) => ((last = e), null));
    if (iface && (iface.address !== null || iface.addressV6 !== null)) {
      await deps.store.execute({ type: 'AddressEndpoint', networkId: ep.networkId, endpointId, address: iface.address, addressV6: iface.addressV6, mac: iface.mac }, byLedgernet('deferred-endpoint'));
      deps.log.info({ endpoint: short(endpointId), address: iface.address, addressV6: iface.addressV6, mac: iface.mac }, 'addresses of an endpoint created at its Join read from its container');
      // Its published ports, firewall openings and cluster entries follow the addresses.
      background(deps, 'endpoint.addressed');
      return;
    }
    if (Date.now() + delay > end) throw new Error(`its container's interface had no address after ${READ_FOR_MS / 1000} s`, { cause: last });
    // Unref'd: a read still waiting keeps no process alive (the daemon's server does that).
    await new Promise((r) => setTimeout(r, delay).unref());
    delay = Math.min(delay * 2, 500);
  }
}

/** Starts the read of every endpoint created at its Join whose addresses are not known (after a restart). */
export function resumeAddressing(deps: DeferDeps): void {
  for (const ep of Object.values(deps.store.state.endpoints)) if (unaddressed(ep)) void learnAddresses(deps, ep.endpointId);
}

/** Whether Join answers this endpoint's IPv6 gateway: it has an IPv6 address, or may have one Docker gave it (deferred, not read yet). */
export function mayHaveV6(ep: EndpointState): boolean {
  return ep.addressV6 !== null || (ep.deferred === true && ep.address === null);
}

