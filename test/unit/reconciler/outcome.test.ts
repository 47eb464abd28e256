import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import type { Action } from '../../../src/reconciler/actions.ts';
import { OutcomeRecorder, failureCode, markLost } from '../../../src/reconciler/outcome.ts';

const owner = { networkId: 'n1', endpointId: null };
const del: Action = { kind: 'link.delete', name: 'lnb-0123456789a', owner, reason: 'orphan' } as Action;
const conflict: Action = { kind: 'link.conflict', name: 'wg9', role: 'bridge', found: { index: 3, kind: 'wireguard', alias: null }, owner, reason: 'conflict' } as Action;

function fakeStore() {
  const cmds: Command[] = [];
  return { cmds, execute: async (c: Command) => void cmds.push(c) };
}

describe('reconcile outcome', () => {
  it('a failure that persists is recorded once; applied work always is', async () => {
    const store = fakeStore();
    const rec = new OutcomeRecorder(store);
    const failing = { trigger: 'timer', applied: [], failures: [{ action: del, message: 'RTNETLINK answers: Device or resource busy' }] };
    await rec.record(failing);
    assert.equal(rec.record(failing), null);
    await rec.record({ trigger: 'x', applied: [del], failures: failing.failures });
    assert.equal(rec.record({ trigger: 'timer', applied: [], failures: [] }) !== null, true, 'the failure going away is recorded');
    assert.deepEqual(
      store.cmds.map((c) => (c.type === 'RecordReconcile' ? [c.trigger, c.actions.length, c.failures] : c.type)),
      [
        ['timer', 0, ['link.delete lnb-0123456789a (orphan): RTNETLINK answers: Device or resource busy']],
        ['x', 1, ['link.delete lnb-0123456789a (orphan): RTNETLINK answers: Device or resource busy']],
        ['timer', 0, []],
      ],
    );
  });

  it('lost endpoints are marked lost', async () => {
    const store = fakeStore();
    await markLost(store)([{ kind: 'endpoint.lost', name: 'lnv-x', owner: { networkId: 'n1', endpointId: 'e1' }, reason: 'vanished', detail: 'gone' } as Action]);
    assert.deepEqual(store.cmds, [{ type: 'MarkLost', endpointId: 'e1', reason: 'gone' }]);
  });

  it('classifies failures: conflicts and refusals are terminal, races retryable', () => {
    assert.equal(failureCode({ action: conflict, message: 'left alone' }), 'LN_ERR_LINK_CONFLICT');
    assert.equal(failureCode({ action: del, message: 'RTNETLINK answers: Operation not permitted' }), 'LN_ERR_KERNEL_REFUSED');
    assert.equal(failureCode({ action: del, message: 'RTNETLINK answers: Device or resource busy' }), 'LN_ERR_KERNEL_EXEC');
  });
});
