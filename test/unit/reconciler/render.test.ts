import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Action } from '../../../src/reconciler/actions.ts';
import { planJson, renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, NET_A, NET_B } from '../../helpers/events.ts';
import { assertGolden } from '../../helpers/golden.ts';

const mixed: Action[] = [
  { kind: 'bridge.create', name: 'lnb-aaaaaaaa000', alias: `ledgernet:network:${NET_A}`, mtu: 1500, owner: { networkId: NET_A, endpointId: null }, reason: 'missing' },
  { kind: 'link.set', name: 'lnv-e1e1e1e1222', mtu: 1500, owner: { networkId: NET_A, endpointId: EP_1 }, reason: 'drifted', detail: 'mtu 1500 expected, 9000 found' },
  { kind: 'endpoint.lost', name: 'lnv-e1e1e1e1222', owner: { networkId: NET_A, endpointId: EP_1 }, reason: 'vanished', detail: 'its container namespace is gone' },
  { kind: 'link.delete', name: 'lnb-0123456789a', owner: { networkId: null, endpointId: null }, reason: 'orphan' },
  { kind: 'hook.delete', table: 'filter', from: 'FORWARD', rule: '-j LEDGERNET-OLD', owner: { networkId: null, endpointId: null }, reason: 'orphan' },
  {
    kind: 'link.conflict',
    name: 'wg0',
    role: 'bridge',
    found: { index: 7, kind: 'wireguard', alias: null },
    owner: { networkId: NET_B, endpointId: null },
    reason: 'conflict',
    detail: 'wireguard link wg0 (ifindex 7, no ifalias) is not ledgernet\'s and is left alone; network bbbbbbbb1111 gets no bridge',
  },
];

describe('plan rendering', () => {
  it('says there is nothing to do', () => {
    assert.equal(renderPlan([]), 'no changes: the kernel matches the desired state\n');
  });
  it('groups by network and endpoint with +/-/~ and reasons (golden)', () => {
    assertGolden('render/mixed.txt', renderPlan(mixed));
  });
  it("shows Docker's names beside the ids it knows", () => {
    const text = renderPlan(mixed, { names: new Map([[NET_A, 'web'], [EP_1, 'web-1']]) });
    assert.match(text, /^network aaaaaaaa0000 \(web\)\n  \+ bridge\.create/m);
    assert.match(text, /^  endpoint e1e1e1e12222 \(container web-1\)\n/m);
    assert.match(text, /^network bbbbbbbb1111\n/m, 'a network without a name: its id alone');
  });
  it('colours only when asked', () => {
    assert.doesNotMatch(renderPlan(mixed), /\u001b\[/);
    const coloured = renderPlan(mixed, { color: true });
    assert.match(coloured, /\u001b\[32m  \+ bridge\.create/);
    assert.match(coloured, /\u001b\[31m  - link\.delete/);
    assert.match(coloured, /\u001b\[33m    ~ link\.set/);
    assert.match(coloured, /\u001b\[35m  ! link\.conflict wg0/);
  });
  it('shows a published range as one line per protocol and host address, not one per port; --json keeps every action', () => {
    const ep = { networkId: NET_A, endpointId: EP_1 };
    const reserve = (proto: string, host: string, port: number, detail?: string) =>
      ({ kind: 'port.reserve', name: `${proto} ${host}:${port}`, spec: { proto, hostIp: host, hostPort: port }, owner: ep, reason: 'missing', ...(detail ? { detail } : {}) }) as unknown as Action;
    const range: Action[] = [];
    for (let p = 10000; p <= 10999; p++) range.push(reserve('tcp', '0.0.0.0', p, `published to 10.231.7.2:${p - 9000}`));
    for (let p = 10000; p <= 10999; p++) range.push(reserve('tcp', '[::]', p, `published to [fd00:231::2]:${p - 9000}`));
    // One port that does not follow, a container port that does not follow in step, and equal details.
    range.push(reserve('tcp', '0.0.0.0', 11005, 'published to 10.231.7.2:2005'), reserve('tcp', '0.0.0.0', 11006, 'published to 10.231.7.2:80'));
    range.push(reserve('udp', '127.0.0.1', 53), reserve('udp', '127.0.0.1', 54), reserve('udp', '127.0.0.1', 55));
    range.push({ kind: 'port.release', name: 'tcp 0.0.0.0:8080', owner: { networkId: null, endpointId: null }, reason: 'orphan' } as unknown as Action);
    range.push({ kind: 'port.release', name: 'tcp 0.0.0.0:8081', owner: { networkId: null, endpointId: null }, reason: 'orphan' } as unknown as Action);
    const text = renderPlan(range);
    assert.equal(
      text,
      [
        'network aaaaaaaa0000',
        '  endpoint e1e1e1e12222',
        '    + port.reserve tcp 0.0.0.0:10000-10999 (missing: published to 10.231.7.2:1000-1999; 1,000 ports)',
        '    + port.reserve tcp [::]:10000-10999 (missing: published to [fd00:231::2]:1000-1999; 1,000 ports)',
        '    + port.reserve tcp 0.0.0.0:11005 (missing: published to 10.231.7.2:2005)',
        '    + port.reserve tcp 0.0.0.0:11006 (missing: published to 10.231.7.2:80)',
        '    + port.reserve udp 127.0.0.1:53-55 (missing; 3 ports)',
        'shared (host settings, firewall hooks, unowned leftovers)',
        '  - port.release tcp 0.0.0.0:8080-8081 (orphan; 2 ports)',
        'plan: 2005 to add, 0 to change, 2 to remove (2007 actions)',
        '',
      ].join('\n'),
    );
    assert.equal(planJson(range).actions.length, 2007);
  });
  it('has a stable --json schema (golden)', () => {
    const json = planJson(mixed);
    assert.equal(json.schema, 1);
    assert.deepEqual(json.summary, { add: 1, change: 1, remove: 3, conflict: 1 });
    assert.equal(json.changes, 6);
    assert.equal(json.actions.find((a) => a.kind === 'link.conflict')?.op, '!');
    assertGolden('render/mixed.json', json);
  });
});
