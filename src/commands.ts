// The operator subcommands other than `serve`. They read the log themselves (no writer's lock),
// so they work whether or not the daemon runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { callDaemon } from './control-client.ts';
import { acquireLock, emptyState, EventLog, EventStore, fold, readLog, short, type State, type StoredEvent } from './events/index.ts';
import { createKernel } from './kernel/index.ts';
import type { KernelSnapshot } from './kernel/types.ts';
import { desiredFromState, plan, planJson, Reconciler, renderPlan, type Action, describeAction } from './reconciler/index.ts';
import { defaultHost } from './config.ts';

const out = (s: string) => process.stdout.write(s);

async function readState(stateDir: string): Promise<{ state: State; events: StoredEvent[] }> {
  const { events } = await readLog(stateDir);
  return { state: fold(emptyState, events), events };
}

export async function runReconcile(o: { stateDir: string; dryRun: boolean; json: boolean }): Promise<number> {
  if (o.dryRun) {
    const { state } = await readState(o.stateDir);
    const actions = plan(desiredFromState(state), await createKernel().observe());
    out(o.json ? `${JSON.stringify(planJson(actions))}\n` : renderPlan(actions));
    return actions.length === 0 ? 0 : 2;
  }
  const viaDaemon = (await callDaemon(o.stateDir, 'POST', '/reconcile')) as
    | { planned: Action[]; applied: string[]; failures: string[]; lost: string[] }
    | null;
  const result = viaDaemon ?? (await reconcileAlone(o.stateDir));
  if (o.json) out(`${JSON.stringify(result)}\n`);
  else {
    for (const a of result.applied) out(`applied ${a}\n`);
    for (const a of result.lost) out(`lost    ${a}\n`);
    for (const f of result.failures) out(`FAILED  ${f}\n`);
    out(result.applied.length + result.failures.length + result.lost.length === 0 ? 'no changes: already converged\n' : '');
  }
  return result.failures.length > 0 ? 1 : 0;
}

// No daemon: take the writer's lock ourselves, so two writers never run at once.
async function reconcileAlone(stateDir: string) {
  const release = await acquireLock(stateDir);
  try {
    const { log, events } = await EventLog.open(stateDir, { host: defaultHost() });
    const store = new EventStore(log, fold(emptyState, events));
    try {
      const r = await new Reconciler({
        kernel: createKernel(),
        getState: () => store.state,
        log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as never,
        intervalMs: 0,
        onLost: async (lost) => {
          for (const a of lost) {
            if (a.owner.endpointId) await store.execute({ type: 'MarkLost', endpointId: a.owner.endpointId, reason: a.detail ?? a.reason });
          }
        },
      }).requestPass('cli');
      const applied = r.applied.map(describeAction);
      const failures = r.failures.map((f) => `${describeAction(f.action)}: ${f.message}`);
      await store.execute({ type: 'RecordReconcile', trigger: 'cli', actions: applied, failures });
      return { planned: r.planned, applied, failures, lost: r.lost.map(describeAction) };
    } finally {
      await store.close();
    }
  } finally {
    await release();
  }
}

type ObjState = 'converged' | 'pending' | 'drifted' | 'lost';

function objectStates(state: State, actions: readonly Action[]) {
  const stateOf = (match: (a: Action) => boolean, lost = false): ObjState => {
    if (lost) return 'lost';
    const mine = actions.filter(match);
    if (mine.length === 0) return 'converged';
    return mine.some((a) => a.reason === 'drifted') ? 'drifted' : 'pending';
  };
  const networks = Object.values(state.networks).map((n) => ({
    networkId: n.networkId,
    bridge: n.bridge,
    subnets: [...n.ipv4Data, ...n.ipv6Data].map((d) => d.pool),
    state: stateOf((a) => a.owner.networkId === n.networkId && a.owner.endpointId === null),
  }));
  const endpoints = Object.values(state.endpoints).map((e) => ({
    endpointId: e.endpointId,
    networkId: e.networkId,
    veth: e.veth,
    address: e.address,
    joined: e.joined,
    state: stateOf((a) => a.owner.endpointId === e.endpointId, e.lost),
  }));
  return { networks, endpoints };
}

export async function runStatus(o: { stateDir: string; json: boolean }): Promise<number> {
  const { state } = await readState(o.stateDir);
  const snapshot: KernelSnapshot = await createKernel().observe();
  const actions = plan(desiredFromState(state), snapshot);
  const daemon = (await callDaemon(o.stateDir, 'GET', '/status').catch(() => null)) as
    | { pid: number; audit?: { backlog: number; connected: boolean; target: string } | null }
    | null;
  const { networks, endpoints } = objectStates(state, actions);
  if (o.json) {
    out(`${JSON.stringify({ daemon, lastSeq: state.seq, pending: actions.length, networks, endpoints })}\n`);
    return 0;
  }
  out(`daemon: ${daemon ? `running (pid ${daemon.pid})` : 'not running'}; log at seq ${state.seq}; ${actions.length} change(s) pending\n`);
  const audit = daemon?.audit;
  if (audit) out(`audit: NATS ${audit.target} ${audit.connected ? 'connected' : 'NOT reachable'}; ${audit.backlog} event(s) not yet in the stream\n`);
  out(`NETWORK       BRIDGE           SUBNETS                 STATE\n`);
  for (const n of networks) out(`${short(n.networkId).padEnd(14)}${n.bridge.padEnd(17)}${n.subnets.join(',').padEnd(24)}${n.state}\n`);
  out(`ENDPOINT      NETWORK       VETH             ADDRESS             JOINED  STATE\n`);
  for (const e of endpoints) {
    out(
      `${short(e.endpointId).padEnd(14)}${short(e.networkId).padEnd(14)}${e.veth.padEnd(17)}${(e.address ?? '-').padEnd(20)}${String(e.joined).padEnd(8)}${e.state}\n`,
    );
  }
  return 0;
}

function eventLine(e: StoredEvent): string {
  const d = e.data as Record<string, unknown>;
  const subject = [d['networkId'], d['endpointId']].filter((x): x is string => typeof x === 'string').map(short).join('/');
  return `${String(e.seq).padStart(6)} ${e.at} ${e.type.padEnd(30)} ${subject}\n`;
}

export async function runEvents(o: { stateDir: string; json: boolean; follow: boolean; verify: boolean }): Promise<number> {
  const { events, end } = await readLog(o.stateDir);
  if (o.verify) {
    out(`ok: ${events.length} events, hash chain intact${end.kind === 'torn' ? ` (torn tail of ${end.bytes} bytes at offset ${end.offset}, repaired at next start)` : ''}\n`);
    return 0;
  }
  const print = (e: StoredEvent) => out(o.json ? `${JSON.stringify(e)}\n` : eventLine(e));
  events.forEach(print);
  let seen = events.length;
  while (o.follow) {
    await sleep(500);
    const next = await readLog(o.stateDir);
    next.events.slice(seen).forEach(print);
    seen = next.events.length;
  }
  return 0;
}
