// Docker's names for what ledgernet holds: a network's name (`docker network create NAME`) and an
// endpoint's container. No plugin call carries either (Docker sends ids), so docker-sync reads
// them from Docker's API and records them (`network.named`, `endpoint.named`), and the log, the
// audit stream and `ledgernet status` name networks and containers as their users do.
import { DriverError } from '../../errors.ts';
import type { EndpointName, NetworkName } from './commands.ts';
import { short } from './naming.ts';
import { lookup, type NewEvent, type State, type StoredEvent } from './types.ts';

/** Longer names are refused: Docker's own are far shorter (a container's is at most 253 characters on a real host). */
const NAME_MAX = 255;

/** Why `name` is not a name Docker's API can have given, or null. Pure. */
export function nameProblem(name: string): string | null {
  if (name.length === 0) return 'the name is empty';
  if (name.length > NAME_MAX) return `the name is ${name.length} characters long (at most ${NAME_MAX})`;
  // Control characters would forge lines in `ledgernet events` and in logs.
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'the name holds a control character';
  return null;
}

/** Why `id` is not a container id as Docker's API gives one, or null. Pure. */
export function containerIdProblem(id: string): string | null {
  return /^[0-9a-f]{12,64}$/.test(id) ? null : 'the container id is not 12 to 64 lowercase hex digits';
}

function checkName(name: string, what: string): void {
  const problem = nameProblem(name);
  if (problem !== null) throw new DriverError('LN_ERR_BAD_REQUEST', `${what}: ${problem}`);
}

/**
 * The events that record `networks` and `endpoints` names where they differ from the state's: a
 * network or endpoint ledgernet does not hold (any more) is skipped; a bad name is refused (nothing
 * recorded). Pure.
 */
export function decideNames(networks: readonly NetworkName[], endpoints: readonly EndpointName[], state: State): NewEvent[] {
  for (const n of networks) checkName(n.name, `the name of network ${short(n.networkId)}`);
  for (const e of endpoints) {
    checkName(e.name, `the container name of endpoint ${short(e.endpointId)}`);
    const idProblem = containerIdProblem(e.containerId);
    if (idProblem !== null) throw new DriverError('LN_ERR_BAD_REQUEST', `endpoint ${short(e.endpointId)}: ${idProblem}`);
  }
  const events: NewEvent[] = [];
  for (const { networkId, name } of networks) {
    const net = lookup(state.networks, networkId);
    if (net && net.name !== name) events.push({ type: 'network.named', data: { networkId, name } });
  }
  for (const { networkId, endpointId, containerId, name } of endpoints) {
    const ep = lookup(state.endpoints, endpointId);
    if (!ep || ep.networkId !== networkId) continue;
    if (ep.container?.id === containerId && ep.container.name === name) continue;
    events.push({ type: 'endpoint.named', data: { networkId, endpointId, containerId, name } });
  }
  return events;
}

/**
 * Adds the names `events` record to `names` (id → name: a network's, an endpoint's container's;
 * the latest wins, as after a `docker rename`) and returns it.
 */
export function namesFrom(events: Iterable<StoredEvent>, names: Map<string, string> = new Map()): Map<string, string> {
  for (const e of events) {
    if (e.type === 'network.named') names.set(e.data.networkId, e.data.name);
    else if (e.type === 'endpoint.named') names.set(e.data.endpointId, e.data.name);
  }
  return names;
}
