// applyIntent (issue 11): the kernel work of a Docker call starts once its intent is decided,
// while the group commit is written, and Docker is answered only when both are done; an intent
// the log refuses leaves nothing behind. A scripted store and reconciler record the order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { applyIntent, awaitKernel, background, type IntentDeps } from '../../../src/api/intent.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { emptyState, type StoredEvent } from '../../../src/events/domain/types.ts';
import type { PassResult } from '../../../src/reconciler/loop.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

const cmd: Command = { type: 'DeleteNetwork', networkId: 'a'.repeat(64) };
const wait = { trigger: 'NetworkDriver.CreateEndpoint', concerns: () => true, what: 'could not create veth x', compensate: null };
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

function harness(opts: { fsyncMs: number; refuse?: boolean; passSeq: (n: number) => number }) {
  const order: string[] = [];
  let passes = 0;
  const deps: IntentDeps = {
    log: pino({ level: 'silent' }),
    applyTimeoutMs: 5_000,
    store: {
      state: emptyState,
      async execute(_c: Command, _cause: unknown, onDecided?: () => void): Promise<StoredEvent[]> {
        order.push('decided');
        onDecided?.();
        await tick(opts.fsyncMs);
        if (opts.refuse) {
          order.push('refused');
          throw new Error('no space left on device');
        }
        order.push('durable');
        return [{ seq: 7 } as StoredEvent];
      },
    },
    reconciler: {
      async requestPass(trigger: string): Promise<PassResult> {
        const n = ++passes;
        order.push(`pass ${n} ${trigger} start`);
        await tick(10);
        order.push(`pass ${n} end`);
        return { trigger, planned: [], applied: [], failures: [], lost: [], durationMs: 10, seq: opts.passSeq(n) };
      },
    },
  };
  return { deps, order };
}

describe('applyIntent: kernel work overlaps the fsync', () => {
  it('the pass starts before the intent is durable, and the answer waits for both', async () => {
    const h = harness({ fsyncMs: 40, passSeq: () => 7 });
    await applyIntent(h.deps, cmd, wait);
    assert.deepEqual(h.order, ['decided', 'pass 1 NetworkDriver.CreateEndpoint start', 'pass 1 end', 'durable']);
  });

  it('a pass that did not read the intent is followed by one that does', async () => {
    const h = harness({ fsyncMs: 5, passSeq: (n) => (n === 1 ? 6 : 7) });
    await applyIntent(h.deps, cmd, wait);
    assert.deepEqual(h.order.slice(-2), ['pass 2 NetworkDriver.CreateEndpoint start', 'pass 2 end']);
  });

  it('an intent the log refuses: a rollback pass removes what was made, then the refusal is passed on', async () => {
    const h = harness({ fsyncMs: 5, refuse: true, passSeq: () => 7 });
    await assert.rejects(applyIntent(h.deps, cmd, wait), /no space left/);
    assert.deepEqual(h.order.slice(-2), ['pass 2 rollback start', 'pass 2 end']);
    assert.ok(h.order.indexOf('refused') < h.order.indexOf('pass 2 rollback start'));
  });
});

describe('background: a delete is answered before its pass starts', () => {
  it('the pass is asked for after the answer has gone out (the next turn of the loop)', async () => {
    const h = harness({ fsyncMs: 1, passSeq: () => 7 });
    // As a handler does: the intent made durable, the pass asked for, the answer returned; the
    // caller writes the answer when the handler's promise settles.
    const handler = async () => {
      await h.deps.store.execute(cmd, byLedgernet('test'));
      background(h.deps, 'NetworkDriver.DeleteNetwork');
      return {};
    };
    await handler().then(() => h.order.push('answered'));
    assert.deepEqual(h.order, ['decided', 'durable', 'answered']);
    await new Promise((r) => setImmediate(r));
    await tick(20);
    assert.deepEqual(h.order.slice(3), ['pass 1 NetworkDriver.DeleteNetwork start', 'pass 1 end']);
  });
});

describe('awaitKernel: what Docker is told when many objects fail', () => {
  it('a range of 1,000 ports that cannot be held names the first ten and counts the rest', async () => {
    const owner = { networkId: 'n'.repeat(64), endpointId: 'e'.repeat(64) };
    const failures = Array.from({ length: 1_000 }, (_, i) => {
      const name = `tcp 0.0.0.0:${10_000 + i}`;
      const action = { kind: 'port.reserve', name, owner, reason: 'missing', detail: `published to 10.77.0.2:${10_000 + i}`, spec: { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 10_000 + i } } as const;
      return { action, message: `EMFILE: cannot hold ${name}: listen EMFILE: too many open files` };
    });
    const recorded: Command[] = [];
    const deps: IntentDeps = {
      log: pino({ level: 'silent' }),
      applyTimeoutMs: 5_000,
      store: { state: emptyState, execute: async (c: Command) => (recorded.push(c), []) },
      reconciler: { requestPass: async (trigger: string): Promise<PassResult> => ({ trigger, planned: [], applied: [], failures: recorded.length === 0 ? failures : [], lost: [], durationMs: 1, seq: 1 }) },
    };
    const refusal = await awaitKernel(deps, {
      trigger: 'NetworkDriver.ProgramExternalConnectivity',
      concerns: () => true,
      what: 'could not publish the ports of endpoint eeeeeeeeeeee',
      compensate: () => ({ type: 'RevokeExternal', networkId: owner.networkId, endpointId: owner.endpointId }),
    }).then(
      () => assert.fail('refused'),
      (e: Error) => e,
    );
    const told = refusal.message;
    assert.ok(told.length < 2_000, `Docker's answer is ${told.length} characters`);
    assert.match(told, /^could not publish the ports of endpoint eeeeeeeeeeee: port\.reserve tcp 0\.0\.0\.0:10000 \(missing: published to 10\.77\.0\.2:10000\), /);
    assert.match(told, /port\.reserve tcp 0\.0\.0\.0:10009 \(missing: published to 10\.77\.0\.2:10009\), … and 990 more: 990 port\.reserve: the daemon has no file descriptor left \(raise its open-file limit: LimitNOFILE, ulimit -n\): it holds one per published host address and port; nothing was kept$/);
    assert.deepEqual(recorded, [{ type: 'RevokeExternal', networkId: owner.networkId, endpointId: owner.endpointId }]);
    // The kernel's words (for the daemon's log) name more, still bounded.
    const detail = (refusal.cause as Error).message;
    assert.ok(detail.length < 50_000, `the logged detail is ${detail.length} characters`);
    assert.match(detail, /EMFILE: cannot hold tcp 0\.0\.0\.0:10099: listen EMFILE: too many open files; … and 900 more: 900 port\.reserve$/);
  });
});
