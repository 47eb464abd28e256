import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { countNamed } from '../../../src/events/domain/named.ts';
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

  it('a pass of 16,000 changes (a range of 2,000 ports, tcp and udp, IPv6, nftables) is recorded in a bounded event', async () => {
    const store = fakeStore();
    const ep = { networkId: 'n1', endpointId: 'e1' };
    const applied: Action[] = [];
    for (let port = 10_000; port < 12_000; port++) {
      for (const proto of ['tcp', 'udp']) {
        for (const map of ['dnat_addr', 'dnat_port', 'dnat6_addr']) applied.push({ kind: 'nft.element.add', table: 'inet ledgernet', set: map, text: `${proto} . ${port}`, owner: ep, reason: 'missing' } as unknown as Action);
        applied.push({ kind: 'port.reserve', name: `${proto} 0.0.0.0:${port}`, owner: ep, reason: 'missing', detail: `published to 10.77.0.2:${port}` } as unknown as Action);
      }
    }
    await new OutcomeRecorder(store).record({ trigger: 'NetworkDriver.ProgramExternalConnectivity', applied, failures: [] });
    const [cmd] = store.cmds;
    assert.ok(cmd?.type === 'RecordReconcile');
    // NATS refuses a message over its max_payload (1 MiB by default): the audit stream would stop there.
    assert.ok(JSON.stringify(cmd).length < 64 * 1024, `the event is ${JSON.stringify(cmd).length} bytes`);
    assert.equal(cmd.actions.length, 101);
    assert.equal(cmd.actions[0], 'nft.element.add inet ledgernet/dnat_addr tcp . 10000 (missing)');
    assert.equal(cmd.actions.at(-1), '… and 15,900 more: 11,925 nft.element.add, 3,975 port.reserve');
    // What `ledgernet events` and the audit stream's lines count: every change, not the 101 items.
    assert.equal(countNamed(cmd.actions), 16_000);
    assert.equal(countNamed(['link.delete lnb-0123456789a (orphan)']), 1);
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
    const reserve = { kind: 'port.reserve', name: 'tcp 0.0.0.0:10988', owner, reason: 'missing' } as unknown as Action;
    assert.equal(failureCode({ action: reserve, message: 'EMFILE: cannot hold tcp 0.0.0.0:10988: listen EMFILE: too many open files 0.0.0.0:10988' }), 'LN_ERR_NO_DESCRIPTORS');
    assert.equal(failureCode({ action: reserve, message: 'EADDRINUSE: cannot hold tcp 0.0.0.0:10988: address already in use' }), 'LN_ERR_PORT_IN_USE');
  });
});
