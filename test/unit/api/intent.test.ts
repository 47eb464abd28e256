import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import type { State, StoredEvent } from '../../../src/events/domain/types.ts';
import { applyIntent, awaitKernel, concernsNetwork } from '../../../src/api/intent.ts';
import type { PassResult } from '../../../src/reconciler/loop.ts';

function deps(requestPass: (trigger: string) => Promise<PassResult>) {
  const cmds: Command[] = [];
  return {
    cmds,
    store: { execute: async (c: Command) => (cmds.push(c), [] as StoredEvent[]), state: {} as State },
    reconciler: { requestPass },
    log: pino({ level: 'silent' }),
    applyTimeoutMs: 20,
  };
}

const never = () => new Promise<PassResult>(() => undefined);

describe('api intent: append, await, compensate, throw', () => {
  it('a timeout is LN_ERR_TIMEOUT with a compensation, and names what could not be done', async () => {
    const d = deps(never);
    const err = await applyIntent(d, { type: 'DeleteNetwork', networkId: 'n1' }, {
      trigger: 't',
      concerns: concernsNetwork('n1'),
      what: 'could not set up bridge lnb-x',
      compensate: (reason) => ({ type: 'RollbackNetwork', networkId: 'n1', reason }),
    }).catch((e: unknown) => e);
    assert.ok(err instanceof DriverError);
    assert.equal(err.code, 'LN_ERR_TIMEOUT');
    assert.equal(err.message, 'could not set up bridge lnb-x: the kernel did not converge within 20 ms; nothing was kept');
    assert.deepEqual(d.cmds, [
      { type: 'DeleteNetwork', networkId: 'n1' },
      { type: 'RollbackNetwork', networkId: 'n1', reason: 'the kernel did not converge within 20 ms' },
    ]);
  });

  it('without a compensation (Join) a timeout is the same code', async () => {
    const d = deps(never);
    const err = await awaitKernel(d, { trigger: 't', concerns: () => true, what: 'Join: veth v is not ready', compensate: null }).catch((e: unknown) => e);
    assert.ok(err instanceof DriverError);
    assert.equal(err.code, 'LN_ERR_TIMEOUT');
    assert.equal(err.message, 'Join: veth v is not ready: the kernel did not converge within 20 ms');
    assert.deepEqual(d.cmds, []);
  });

  it('a pass that throws is told by its fixed phrase, not its message', async () => {
    const d = deps(async () => {
      throw new DriverError('LN_ERR_KERNEL_EXEC', 'could not read links: ip said something raw');
    });
    const err = await awaitKernel(d, { trigger: 't', concerns: () => true, what: 'x', compensate: null }).catch((e: unknown) => e);
    assert.ok(err instanceof DriverError);
    assert.deepEqual([err.code, err.message], ['LN_ERR_APPLY', 'x: a kernel command failed']);
  });
});
