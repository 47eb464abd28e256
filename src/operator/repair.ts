// `ledgernet repair [--dry-run]`: make Docker's view and ledgernet's agree after a crash, through
// Docker's API (never from inside a plugin call: protocol.md §7.2).
//
// - Docker holds an endpoint whose removal was lost (no container sandbox any more, or one that
//   ledgernet does not know): force-disconnect it (POST /networks/{id}/disconnect, Force), which
//   is what `docker network disconnect -f` does, so the network can be removed again.
// - ledgernet holds an endpoint Docker does not know (a call Docker abandoned after a crash; Docker
//   sends no DeleteEndpoint then) or a network Docker does not have: release it, which removes its
//   kernel objects. The same for IPAM pools no Docker network uses and addresses Docker does not
//   hold (a RequestAddress sent again after a crash allocates anew).
// Docker is read twice, SETTLE_MS apart, and only what both reads agree on is touched: an
// endpoint between CreateEndpoint and Join, or a network between CreateNetwork and Docker's own
// store, is not garbage.
import { releaseTarget, requireLog } from './commands.ts';
import { operatorCause, statedBody } from './operator-cause.ts';
import { DockerApi, DockerUnavailableError } from './docker-api.ts';
import { readDocker, type DockerView } from './docker-holds.ts';
import { DriverError } from '../errors.ts';
import { loadState, REASON_MAX, short, type State } from '../events/index.ts';

export type { DockerEndpoint, DockerView } from './docker-holds.ts';

const SETTLE_MS = 3_000;

export type Finding =
  | { readonly kind: 'disconnect'; readonly networkId: string; readonly networkName: string; readonly container: string; readonly endpointId: string; readonly reason: string }
  | { readonly kind: 'release-endpoint'; readonly networkId: string; readonly endpointId: string; readonly reason: string }
  | { readonly kind: 'release-network'; readonly networkId: string; readonly reason: string }
  | { readonly kind: 'release-address'; readonly pool: string; readonly address: string; readonly reason: string }
  | { readonly kind: 'release-pool'; readonly pool: string; readonly reason: string };

/**
 * What to repair, from ledgernet's state and two reads of Docker taken apart. Pure. `before`:
 * ledgernet's state read before the first read of Docker; what it does not hold yet (a network,
 * endpoint, pool or address made while repair waited) is never released: neither read of Docker
 * could have shown it, and it is not garbage but a call in progress.
 */
export function planRepair(state: State, first: DockerView, second: DockerView, before: State = state): Finding[] {
  const out: Finding[] = [];
  const old = {
    network: (id: string) => before.networks[id] !== undefined,
    endpoint: (id: string) => before.endpoints[id] !== undefined,
    pool: (id: string) => before.pools[id] !== undefined,
    address: (poolId: string, a: string) => before.pools[poolId]?.allocated[a] !== undefined,
  };
  const inBoth = (id: string) => first.networks.has(id) && second.networks.has(id);
  for (const net of Object.values(state.networks)) {
    const id = net.networkId;
    if (!first.networks.has(id) && !second.networks.has(id)) {
      if (old.network(id)) {
        out.push({ kind: 'release-network', networkId: id, reason: 'Docker has no such network (removed while ledgernet was down, or its creation was abandoned)' });
      }
      continue;
    }
    if (!inBoth(id)) continue;
    const a = first.endpoints.get(id) ?? [];
    const b = second.endpoints.get(id) ?? [];
    const docker = new Set([...a, ...b].map((e) => e.endpointId));
    for (const e of b) {
      const earlier = a.find((x) => x.endpointId === e.endpointId);
      if (!earlier) continue;
      const known = state.endpoints[e.endpointId] !== undefined;
      if (!e.sandbox && !earlier.sandbox) {
        out.push({ kind: 'disconnect', networkId: id, networkName: second.networks.get(id) ?? id, container: e.name, endpointId: e.endpointId, reason: 'Docker holds this endpoint with no container attached (its removal was lost)' });
      } else if (!known) {
        out.push({ kind: 'disconnect', networkId: id, networkName: second.networks.get(id) ?? id, container: e.name, endpointId: e.endpointId, reason: 'ledgernet has no such endpoint (its removal was lost); the container has no working interface here' });
      }
    }
    for (const ep of Object.values(state.endpoints)) {
      if (ep.networkId === id && !docker.has(ep.endpointId) && old.endpoint(ep.endpointId)) {
        out.push({ kind: 'release-endpoint', networkId: id, endpointId: ep.endpointId, reason: `Docker does not know this endpoint (${ep.joined ? 'joined' : 'never joined'}; a call Docker abandoned after a crash)` });
      }
    }
  }
  // ledgernet IPAM: a pool no Docker network uses, an address Docker does not hold (a
  // RequestAddress whose answer was lost to a crash and that was sent again).
  for (const pool of Object.values(state.pools)) {
    const a = first.subnets.get(pool.pool);
    const b = second.subnets.get(pool.pool);
    if (!a && !b) {
      if (old.pool(pool.poolId)) out.push({ kind: 'release-pool', pool: pool.pool, reason: 'no Docker network uses this pool' });
      continue;
    }
    if (!a || !b) continue;
    for (const [address, alloc] of Object.entries(pool.allocated)) {
      if (alloc.kind !== 'gateway' && !a.has(address) && !b.has(address) && old.address(pool.poolId, address)) {
        out.push({ kind: 'release-address', pool: pool.pool, address, reason: 'Docker holds no endpoint with this address (its RequestAddress was cut off by a crash and sent again)' });
      }
    }
  }
  return out;
}

export function describeFinding(f: Finding): string {
  switch (f.kind) {
    case 'disconnect':
      return `force-disconnect ${f.container} from network ${f.networkName} (endpoint ${short(f.endpointId)}): ${f.reason}`;
    case 'release-endpoint':
      return `release endpoint ${short(f.endpointId)} on network ${short(f.networkId)}: ${f.reason}`;
    case 'release-network':
      return `release network ${short(f.networkId)}: ${f.reason}`;
    case 'release-address':
      return `release address ${f.address} of pool ${f.pool}: ${f.reason}`;
    case 'release-pool':
      return `release pool ${f.pool}: ${f.reason}`;
  }
}

export async function runRepair(o: { stateDir: string; dryRun: boolean; dockerSocket: string; settleMs?: number; reason?: string }): Promise<number> {
  if (o.reason !== undefined) operatorCause(statedBody({ command: 'repair', reason: o.reason }), null); // a bad --reason is refused before anything is read
  // An empty log would make every endpoint Docker holds on a ledgernet network one to force-disconnect.
  await requireLog(o.stateDir);
  const out = (s: string) => process.stdout.write(s);
  const docker = new DockerApi(o.dockerSocket, 60_000);
  const read = (state: State) =>
    readDocker(docker, state).catch((e: unknown) => {
      if (e instanceof DockerUnavailableError) {
        throw new DriverError('LN_ERR_INTERNAL', `cannot reach Docker's API on ${o.dockerSocket} (is dockerd running? --docker-socket): ${e.message}`, { cause: e });
      }
      throw e;
    });
  const before = await loadState(o.stateDir);
  const first = await read(before);
  await new Promise((r) => setTimeout(r, o.settleMs ?? SETTLE_MS));
  const state = await loadState(o.stateDir);
  const findings = planRepair(state, first, await read(state), before);
  if (findings.length === 0) {
    out('nothing to repair: Docker and ledgernet agree\n');
    return 0;
  }
  if (o.dryRun) {
    for (const f of findings) out(`would ${describeFinding(f)}\n`);
    return 2;
  }
  let failed = 0;
  // Docker's side first: a force-disconnect makes Docker send DeleteEndpoint for it itself.
  for (const f of [...findings].sort((a, b) => Number(b.kind === 'disconnect') - Number(a.kind === 'disconnect'))) {
    try {
      if (f.kind === 'disconnect') {
        await docker.disconnect(f.networkId, f.container, true);
      } else {
        const target = f.kind === 'release-endpoint' ? f.endpointId : f.kind === 'release-network' ? f.networkId : f.kind === 'release-address' ? f.address : f.pool;
        // Recorded with what repair found, and the operator's own reason after it.
        const why = `${describeFinding(f)}${o.reason === undefined ? '' : ` (${o.reason})`}`.replace(/[\p{Cc}\p{Cs}]/gu, ' ');
        await releaseTarget(o.stateDir, target, { command: 'repair', reason: why.length > REASON_MAX ? `${why.slice(0, REASON_MAX - 1)}…` : why });
      }
      out(`done: ${describeFinding(f)}\n`);
    } catch (e) {
      failed += 1;
      out(`FAILED: ${describeFinding(f)}: ${(e as Error).message}\n`);
    }
  }
  return failed > 0 ? 1 : 0;
}
