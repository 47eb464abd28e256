// A pass that repaired drift someone else caused (a link set down, a link deleted) says so at warn,
// naming what it repaired, so an operator at --log-level warn sees it; the convergence a Docker
// call asked for stays at info. What counts as drift is ledgernet_drift_repaired_total's decision.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import type { State } from '../../../src/events/domain/types.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { NET_A, given, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';

const netA: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const BRIDGE_A = networkSpec(NET_A).bridge;

interface Line {
  readonly level: 'info' | 'warn';
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

let kernel: FakeKernel;
let state: State;
let r: Reconciler;
let lines: Line[];

beforeEach(() => {
  kernel = new FakeKernel();
  state = given(netA);
  lines = [];
  const at = (level: Line['level']) => (fields?: unknown, msg?: string) => void lines.push({ level, fields: fields as Record<string, unknown>, msg: msg ?? '' });
  const log = { info: at('info'), warn: at('warn'), error: () => undefined, debug: () => undefined };
  r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: 0 });
});

afterEach(async () => {
  await r.stop();
});

/** The pass lines logged since `from`. */
const passLines = (from: number) => lines.slice(from).filter((l) => l.msg.startsWith('reconcile pass'));

describe('reconcile pass log: drift at warn', () => {
  it("a Docker call's own changes converge at info, however many", async () => {
    await r.requestPass('NetworkDriver.CreateNetwork');
    const [line, ...more] = passLines(0);
    assert.equal(more.length, 0);
    assert.deepEqual([line?.level, line?.msg], ['info', 'reconcile pass converged']);
    assert.ok((line?.fields['applied'] as string[]).some((a) => a.includes(BRIDGE_A)));
  });

  it('a link set down or deleted by hand: the timer pass that puts it right logs at warn, naming it', async () => {
    await r.requestPass('NetworkDriver.CreateNetwork');
    const link = kernel.links.get(BRIDGE_A);
    assert.ok(link);
    link.up = false;
    let from = lines.length;
    await r.requestPass('timer');
    let [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.match(line?.msg ?? '', /^reconcile pass repaired drift: ledgernet objects changed or removed by someone else were set right$/);
    assert.ok((line?.fields['repaired'] as string[]).some((a) => a.includes(BRIDGE_A)), JSON.stringify(line?.fields));

    assert.ok(kernel.removeLink(BRIDGE_A));
    from = lines.length;
    await r.requestPass('kernel');
    [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.ok((line?.fields['repaired'] as string[]).some((a) => a.includes(BRIDGE_A)));

    // Nothing left: a timer pass with nothing to do logs nothing at all.
    from = lines.length;
    await r.requestPass('timer');
    assert.deepEqual(passLines(from), []);
  });

  it("a link missing when a Docker call's pass runs is put back as that call's (as the metric counts it): info", async () => {
    await r.requestPass('NetworkDriver.CreateNetwork');
    assert.ok(kernel.removeLink(BRIDGE_A));
    r.kernelChanged(); // the next pass reads the kernel
    const from = lines.length;
    await r.requestPass('NetworkDriver.CreateEndpoint');
    const [line, ...more] = passLines(from);
    assert.equal(more.length, 0);
    assert.equal(line?.level, 'info', JSON.stringify(line));
    assert.ok((line?.fields['applied'] as string[]).some((a) => a.includes(BRIDGE_A)));
  });
});
