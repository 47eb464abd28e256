// The reconcile loop's cluster step: after each pass (once the bridges exist) the VXLAN objects of
// cluster networks converge (cluster.ts). A failure is logged and retried by the next pass.
import type { Logger } from 'pino';
import type { State } from '../events/domain/types.ts';
import type { Link, VxlanChange } from '../kernel/index.ts';
import { convergeVxlans, holdsVxlan } from './cluster.ts';
import { describeItem } from './render.ts';

export class ClusterStep {
  private readonly vtep: () => string | null;
  private readonly log: Pick<Logger, 'info' | 'warn'>;
  /**
   * A VXLAN device of ours may exist that the pass's links do not show (this step makes them
   * outside the kernel model): then it looks, so a removed network's device goes in the
   * DeleteNetwork pass rather than at the next full read.
   */
  private devices = false;

  constructor(vtep: () => string | null, log: Pick<Logger, 'info' | 'warn'>) {
    this.vtep = vtep;
    this.log = log;
  }

  /** Converges; `known`: the links the pass planned against. Returns what it applied. */
  async run(trigger: string, state: State, known: readonly Link[]): Promise<readonly VxlanChange[]> {
    const vtep = this.vtep();
    if (vtep === null) return [];
    try {
      const r = await convergeVxlans(state, vtep, this.devices || holdsVxlan(known));
      this.devices = r.devices > 0;
      if (r.applied.length > 0) this.log.info({ trigger, applied: r.applied.map(describeItem) }, 'cluster objects converged');
      return r.applied;
    } catch (e) {
      this.devices = true;
      this.log.warn({ err: e }, 'cluster objects could not be converged');
      return [];
    }
  }
}
