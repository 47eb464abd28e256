// The published host ports' reservations as the CLI shows them: `reconcile --dry-run` plans them
// against what the running daemon holds (none when no daemon runs: nothing holds them then), and
// `status` names each port that is published but not held (a program on the host may take it).
import { short, type State } from '../events/index.ts';
import type { ReserveChange, Reservation } from '../kernel/index.ts';
import { desiredFromState, desiredReservations, planReservations } from '../reconciler/index.ts';

/** What a pass of the daemon would hold and release. */
export function reservationPlan(state: State, held: readonly Reservation[] | null): ReserveChange[] {
  return planReservations(desiredReservations(desiredFromState(state).firewall.networks), held ?? []);
}

export interface ReservationRow {
  /** `tcp 0.0.0.0:8080`. */
  readonly name: string;
  readonly networkId: string | null;
  readonly endpointId: string | null;
  /** `held`; `missing` (published, not held: the daemon's log says why); `orphan` (held, no longer published: released by the next pass). */
  readonly state: 'held' | 'missing' | 'orphan';
}

/** Every published port's reservation and every one held, with its state; the plan's order otherwise. */
export function reservationRows(state: State, held: readonly Reservation[] | null): ReservationRow[] {
  const plan = reservationPlan(state, held);
  const missing = new Set(plan.flatMap((c) => (c.kind === 'port.reserve' ? [c.name] : [])));
  const wanted = desiredReservations(desiredFromState(state).firewall.networks).map(
    (d): ReservationRow => ({ name: d.name, networkId: d.owner.networkId, endpointId: d.owner.endpointId, state: missing.has(d.name) ? 'missing' : 'held' }),
  );
  const orphans = plan.flatMap((c): ReservationRow[] => (c.kind === 'port.release' ? [{ name: c.name, networkId: c.owner.networkId, endpointId: c.owner.endpointId, state: 'orphan' }] : []));
  return [...wanted, ...orphans];
}

/** One line per published port the running daemon does not hold (none: ''). */
export function unheldLines(rows: readonly ReservationRow[]): string {
  return rows
    .filter((r) => r.state === 'missing')
    .map((r) => `port ${r.name} (endpoint ${r.endpointId ? short(r.endpointId) : '-'}): published but NOT HELD: a program on the host can bind it and take part of its traffic (the daemon's log says why it could not)\n`)
    .join('');
}
