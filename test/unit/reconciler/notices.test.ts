// Kernel notices judged (reconciler/notices.ts): under Docker's load most `ip monitor` notices
// about our links are the echo of our own apply or the teardown of a container whose endpoint is
// gone; only drift of a wanted link may drop the kernel model.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { driftNotice } from '../../../src/kernel/monitor.ts';
import { isDerivedHostLinkName, isVethName } from '../../../src/events/domain/naming.ts';
import type { Action } from '../../../src/reconciler/actions.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { ECHO_MS, Echoes, judgeNotice, wantedLinks, type Verdict } from '../../../src/reconciler/notices.ts';
import { EP_1, NET_A, endpointSpec, given, networkSpec } from '../../helpers/events.ts';

const net: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const ep = endpointSpec(NET_A, EP_1);
const BRIDGE = networkSpec(NET_A).bridge;

// Captured from `ip -o monitor link address` during `docker rm -f` of a container on a ledgernet
// network (Docker 20.10): Docker sets the container's end down and moves it back, ledgernet's
// DeleteEndpoint pass deletes the pair by the peer's name, and the kernel closes the host end
// (no UP, then off its bridge) before deleting it. Names replaced by the fixture's.
const teardown = [
  `38741: ${ep.veth}@if38740: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 master ${BRIDGE} state DOWN \\    link/ether 02:5e:64:d1:52:f3`,
  `38740: ${ep.peer}@${ep.veth}: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 02:42:0a:d5:07:02`,
  `38741: ${ep.veth}@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue master ${BRIDGE} state DOWN group default \\    link/ether 02:5e:64:d1:52:f3`,
  `Deleted 38741: ${ep.veth}    inet6 fe80::5e:64ff:fed1:52f3/64 scope link tentative \\       valid_lft forever preferred_lft forever`,
  `38741: ${ep.veth}@NONE: <BROADCAST,MULTICAST> mtu 1500 master ${BRIDGE} state DOWN \\    link/ether 02:5e:64:d1:52:f3`,
  `Deleted 38740: ${ep.peer}@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 02:42:0a:d5:07:02`,
  `Deleted 38741: ${ep.veth}@NONE: <BROADCAST,MULTICAST> mtu 1500 master ${BRIDGE} state DOWN \\    link/ether 02:5e:64:d1:52:f3`,
];
/** What the DeleteEndpoint pass applied (plan.ts deletes a pair by the lesser name: the peer). */
const deletePair: Action = { kind: 'link.delete', name: ep.peer, owner: { networkId: null, endpointId: EP_1 }, reason: 'orphan' };
/** A pass that put the host end on its bridge. */
const enslave: Action = { kind: 'link.set', name: ep.veth, master: BRIDGE, owner: { networkId: NET_A, endpointId: EP_1 }, reason: 'drifted' };

/** The verdicts main.ts reaches for `lines` (only notices driftNotice keeps are judged). */
function verdicts(lines: readonly string[], state: Command[], echo: (name: string, kind: string) => boolean): Verdict[] {
  const wanted = wantedLinks(desiredFromState(given(...state)));
  const watched = (n: string) => isDerivedHostLinkName(n) || n === BRIDGE;
  return lines.flatMap((l) => {
    const n = driftNotice(l, { watched, bridged: isVethName });
    return n ? [judgeNotice(n.name, n.kind, { echo, wanted: (x) => wanted.has(x) })] : [];
  });
}

describe('judgeNotice', () => {
  it("a container's teardown after DeleteEndpoint is no drift, even when its echo is no longer expected", () => {
    const gone = [net, { type: 'CreateEndpoint', spec: ep }, { type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_1 }] as Command[];
    assert.deepEqual(verdicts(teardown, gone, () => false), ['unwanted', 'unwanted', 'unwanted'], 'the host end closed, off its bridge, deleted');
  });

  it('the same notices while the endpoint is still wanted are drift (its veth vanished)', () => {
    const joined = [net, { type: 'CreateEndpoint', spec: ep }] as Command[];
    assert.deepEqual(verdicts(teardown, joined, () => false), ['drift', 'drift', 'drift']);
  });

  it('a wanted link changed by our own apply is its echo, not drift', () => {
    const joined = [net, { type: 'CreateEndpoint', spec: ep }] as Command[];
    const echoes = new Echoes();
    echoes.expect([deletePair, { ...deletePair, name: ep.veth }], 0);
    assert.deepEqual(verdicts(teardown, joined, (n, k) => echoes.has(n, k as never, 10)), ['echo', 'echo', 'echo']);
  });
});

describe('Echoes', () => {
  it('a delete expects the link closed, off its bridge, deleted and its addresses gone', () => {
    const e = new Echoes();
    e.expect([deletePair], 0);
    for (const k of ['down', 'nomaster', 'deleted', 'addr-deleted'] as const) assert.equal(e.has(ep.peer, k, 1), true, k);
    assert.equal(e.has(ep.veth, 'deleted', 1), false, 'only the link the delete names');
  });

  it("a pass's echoes count while it runs and ECHO_MS after, also while the next pass runs", () => {
    const e = new Echoes();
    e.expect([enslave], 0);
    assert.equal(e.has(ep.veth, 'down', 5_000), true, 'while the pass runs, however long');
    e.passEnded(5_000);
    e.expect([deletePair], 5_010);
    assert.equal(e.has(ep.veth, 'nomaster', 5_020), true, 'the first pass ended, the next one runs');
    assert.equal(e.has(ep.veth, 'nomaster', 5_000 + ECHO_MS + 1), false, 'no longer after ECHO_MS');
    assert.equal(e.has(ep.peer, 'deleted', 5_000 + ECHO_MS + 1), true, 'the running pass still expects its own');
    assert.equal(e.has(ep.veth, 'deleted', 10), false, 'a create expects no delete');
  });
});
