// plan → apply → observe against real `ip` and `iptables` inside a namespace made (and deleted)
// by this test. Checks what the kernel holds with `ip -j` and `iptables-save` directly, not
// through ledgernet's own parsers. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { eventHash } from '../../src/events/log/hash.ts';
import { emptyState, type State, type StoredEvent } from '../../src/events/domain/types.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { renderChains } from '../../src/kernel/iptables/index.ts';
import { actionKey, type Action } from '../../src/reconciler/actions.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';


const BR_A = 'lnb-aaaaaaaa000';
const BR_B = 'lnb-bbbbbbbb111';
const VETH_1 = 'lnv-e1e1e1e1222';
const PEER_1 = 'lnp-e1e1e1e1222';
const VETH_2 = 'lnv-e2e2e2e2333';
const PEER_2 = 'lnp-e2e2e2e2333';
const HOOK = '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD';
const FOREIGN_RULE = '-A FORWARD -i br-foreign -o br-foreign -j ACCEPT';

const netA: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const netB: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), mtu: 1450 } };
const ep1: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };
const ep2: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') };
const join1: Command = { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/lnrec' };
const STATE = given(netA, netB, ep1, ep2);

interface IpLink {
  ifname: string;
  flags: string[];
  mtu: number;
  master?: string;
  ifalias?: string;
  link?: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
}

interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

describe('reconciler against a real kernel in a throwaway namespace', { skip }, () => {
  const netns = `lnrec-${process.pid}-${randomBytes(3).toString('hex')}`;
  const container = `${netns}-c`;
  let kernel: Kernel;

  const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);
  const iptables = (...args: string[]) => execa('ip', ['netns', 'exec', netns, 'iptables', ...args]);

  async function links(): Promise<Map<string, IpLink>> {
    const { stdout } = await ip('-j', '-d', 'link', 'show');
    return new Map((JSON.parse(stdout) as IpLink[]).map((l) => [l.ifname, l]));
  }

  async function globalAddrs(dev: string): Promise<string[]> {
    const { stdout } = await ip('-j', 'addr', 'show', 'dev', dev);
    return (JSON.parse(stdout) as IpAddr[])
      .flatMap((l) => l.addr_info)
      .filter((a) => a.scope === 'global')
      .map((a) => `${a.local}/${a.prefixlen}`);
  }

  async function filterTable(): Promise<string[]> {
    const { stdout } = await execa('ip', ['netns', 'exec', netns, 'iptables-save', '-t', 'filter']);
    return stdout.split('\n');
  }

  function ownedLinkNames(all: Map<string, IpLink>): string[] {
    return [...all.values()]
      .filter((l) => /^ln[bvp]-/.test(l.ifname) || (l.ifalias ?? '').startsWith('ledgernet:'))
      .map((l) => l.ifname)
      .sort();
  }

  async function planFor(state: State): Promise<Action[]> {
    return plan(desiredFromState(state), await kernel.observe());
  }

  async function converge(state: State): Promise<void> {
    const res = await applyActions(await planFor(state), kernel);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(await planFor(state), [], 'a second plan after apply is empty');
  }

  const summary = (actions: readonly Action[]) => actions.map((a) => [a.kind, actionKey(a), a.reason]);

  /** The operator's bridge, its veth pair and its FORWARD rule must never change. */
  async function assertForeignIntact(): Promise<void> {
    const all = await links();
    assert.equal(all.get('br-foreign')?.linkinfo?.info_kind, 'bridge');
    assert.ok(all.get('br-foreign')?.flags.includes('UP'));
    assert.equal(all.get('vethf0')?.master, 'br-foreign');
    assert.ok(all.has('vethf1'));
    assert.deepEqual(await globalAddrs('br-foreign'), ['192.0.2.1/24']);
    const table = await filterTable();
    assert.equal(table.filter((l) => l === FOREIGN_RULE).length, 1, 'the foreign FORWARD rule is kept, once');
  }

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    await ip('link', 'add', 'br-foreign', 'type', 'bridge');
    await ip('link', 'set', 'br-foreign', 'up');
    await ip('addr', 'add', '192.0.2.1/24', 'dev', 'br-foreign');
    await ip('link', 'add', 'vethf0', 'type', 'veth', 'peer', 'name', 'vethf1');
    await ip('link', 'set', 'vethf0', 'master', 'br-foreign', 'up');
    await iptables('-A', 'FORWARD', '-i', 'br-foreign', '-o', 'br-foreign', '-j', 'ACCEPT');
  });

  after(async () => {
    // Deleting the namespaces removes their links and iptables tables with them.
    await execa('ip', ['netns', 'del', container], { reject: false });
    await execa('ip', ['netns', 'del', netns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`^${netns}`, 'm'), 'test namespace leaked');
  });

  it('creates two networks with an endpoint each, and a second plan is empty', async () => {
    const first = await planFor(STATE);
    assert.deepEqual(summary(first), [
      ['bridge.create', BR_A, 'missing'],
      ['bridge.create', BR_B, 'missing'],
      ['addr.add', `${BR_A} 10.231.7.1/24`, 'missing'],
      ['addr.add', `${BR_B} 10.231.8.1/24`, 'missing'],
      ['veth.create', VETH_1, 'missing'],
      ['veth.create', VETH_2, 'missing'],
      ...['EARLY-a', 'EARLY-b', 'FORWARD', 'ING-aaaaaaaa0000', 'ING-bbbbbbbb1111', 'LAN-aaaaaaaa0000', 'LAN-bbbbbbbb1111', 'LATE-a', 'LATE-b'].map((c) => ['chain.write', `filter/LEDGERNET-${c}`, 'missing']),
      // Networks without IPv6 forward none: their drops in filter6 (noIpv6).
      ['chain.write', 'filter6/LEDGERNET-EARLY-a', 'missing'],
      ['chain.write', 'filter6/LEDGERNET-EARLY-b', 'missing'],
      ['chain.write', 'filter6/LEDGERNET-FORWARD', 'missing'],
      ...['mangle/LEDGERNET-DIRECT', 'nat/LEDGERNET-POSTROUTING'].flatMap((c) => [c, `${c}-a`, `${c}-b`].map((name) => ['chain.write', name, 'missing'])),
      ['hook.add', 'filter/FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD', 'missing'],
      ['hook.add', 'filter6/FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD', 'missing'],
      ['hook.add', 'mangle/PREROUTING -m conntrack ! --ctstate RELATED,ESTABLISHED -m comment --comment "ledgernet:hook" -j LEDGERNET-DIRECT', 'missing'],
      ['hook.add', 'nat/POSTROUTING -m comment --comment "ledgernet:hook" -j LEDGERNET-POSTROUTING', 'missing'],
    ]);
    const res = await applyActions(first, kernel);
    assert.deepEqual(res.failures, []);
    assert.equal(res.applied.length, first.length);
    assert.deepEqual(await planFor(STATE), []);

    const all = await links();
    for (const [name, id, mtu, gw] of [
      [BR_A, NET_A, 1500, '10.231.7.1/24'],
      [BR_B, NET_B, 1450, '10.231.8.1/24'],
    ] as const) {
      const l = all.get(name);
      assert.equal(l?.linkinfo?.info_kind, 'bridge', name);
      assert.equal(l?.ifalias, `ledgernet:network:${id}`);
      assert.equal(l?.mtu, mtu);
      assert.ok(l?.flags.includes('UP'), `${name} is up`);
      assert.deepEqual(await globalAddrs(name), [gw]);
    }
    for (const [name, peer, id, master, mtu] of [
      [VETH_1, PEER_1, EP_1, BR_A, 1500],
      [VETH_2, PEER_2, EP_2, BR_B, 1450],
    ] as const) {
      const l = all.get(name);
      assert.equal(l?.linkinfo?.info_kind, 'veth', name);
      assert.equal(l?.master, master);
      assert.ok(l?.flags.includes('UP'), `${name} is up`);
      assert.equal(l?.ifalias, `ledgernet:endpoint:${id}`);
      assert.equal(l?.mtu, mtu);
      assert.equal(l?.link, peer);
      const p = all.get(peer);
      assert.equal(p?.ifalias, `ledgernet:peer:${id}`);
      assert.equal(p?.mtu, mtu);
      assert.equal(p?.master, undefined, 'the container end is not enslaved');
    }

    const table = await filterTable();
    assert.ok(table.includes(':LEDGERNET-FORWARD - [0:0]'));
    // Every rule shape is checked in firewall-rules.test.ts; here: the table holds what we planned.
    for (const c of renderChains(desiredFromState(STATE).firewall).filter((c) => c.table === 'filter')) {
      assert.deepEqual(
        table.filter((l) => l.startsWith(`-A ${c.name} `)),
        c.rules.map((r) => `-A ${c.name} ${r}`),
      );
    }
    assert.deepEqual(
      table.filter((l) => l.startsWith('-A FORWARD ') && l.includes('ledgernet:')),
      [HOOK],
    );
    await assertForeignIntact();
  });

  it('a bridge keeps its network\'s MTU when its last veth leaves, and a new veth gets it', async () => {
    // Linux sets a bridge whose MTU was only given at creation to the smallest of its ports, and
    // to 1500 when its last port leaves; the network's MTU must outlive its containers.
    const mtuOf = async (name: string) => (await links()).get(name)?.mtu;
    assert.equal(await mtuOf(BR_B), 1450);
    const emptied = given(netA, netB, ep1, ep2, { type: 'DeleteEndpoint', networkId: NET_B, endpointId: EP_2 });
    const res = await applyActions(await planFor(emptied), kernel);
    assert.deepEqual(res.failures, []);
    assert.equal((await links()).has(VETH_2), false, 'the last veth of the bridge is gone');
    assert.equal(await mtuOf(BR_B), 1450, 'the emptied bridge still has the network\'s MTU (ip -j link)');
    assert.deepEqual(summary(await planFor(emptied)), [], 'nothing drifted');
    await converge(STATE);
    assert.equal(await mtuOf(VETH_2), 1450, 'a new veth has the network\'s MTU');
    assert.equal(await mtuOf(BR_B), 1450);
  });

  it('repairs drift: a veth without master, a bridge down, a deleted jump, a stray bridge', async () => {
    await converge(STATE);
    await ip('link', 'set', VETH_1, 'nomaster');
    await ip('link', 'set', BR_B, 'down');
    await iptables('-D', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD');
    await ip('link', 'add', 'lnb-zzzz', 'type', 'bridge');
    await ip('link', 'set', 'lnb-zzzz', 'alias', `ledgernet:network:${'f'.repeat(64)}`);
    // Named like ours, without our alias: someone else's, left alone.
    await ip('link', 'add', 'lnb-yyyy', 'type', 'bridge');

    const drift = await planFor(STATE);
    assert.deepEqual(summary(drift), [
      ['link.set', BR_B, 'drifted'],
      ['link.set', VETH_1, 'drifted'],
      ['hook.add', 'filter/FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD', 'missing'],
      ['link.delete', 'lnb-zzzz', 'orphan'],
    ]);
    const byName = new Map(drift.filter((a) => a.kind === 'link.set').map((a) => [actionKey(a), a]));
    assert.deepEqual(byName.get(BR_B), {
      kind: 'link.set',
      name: BR_B,
      owner: { networkId: NET_B, endpointId: null },
      reason: 'drifted',
      detail: 'up expected, down found',
      up: true,
    });
    assert.deepEqual(byName.get(VETH_1), {
      kind: 'link.set',
      name: VETH_1,
      owner: { networkId: NET_A, endpointId: EP_1 },
      reason: 'drifted',
      detail: `master ${BR_A} expected, none found`,
      master: BR_A,
    });

    const res = await applyActions(drift, kernel);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(await planFor(STATE), []);
    const all = await links();
    assert.equal(all.get(VETH_1)?.master, BR_A);
    assert.ok(all.get(BR_B)?.flags.includes('UP'));
    assert.equal(all.has('lnb-zzzz'), false);
    assert.equal(all.get('lnb-yyyy')?.ifalias, undefined);
    await ip('link', 'del', 'lnb-yyyy');
    assert.deepEqual(
      (await filterTable()).filter((l) => l.startsWith('-A FORWARD ') && l.includes('ledgernet:')),
      [HOOK],
    );
    await assertForeignIntact();
  });

  it('reports a joined endpoint whose veth vanished with its container as lost, and does not recreate it', async () => {
    await converge(STATE);
    const joined = given(netA, netB, ep1, ep2, join1);
    // Docker moves the container end into the sandbox; the host end stays, peered across namespaces.
    await execa('ip', ['netns', 'add', container]);
    await ip('link', 'set', PEER_1, 'netns', container);
    const host = (await links()).get(VETH_1);
    assert.equal(host?.link_netnsid !== undefined, true, 'the peer is in another namespace');
    assert.equal((await kernel.observe()).links.find((l) => l.name === VETH_1)?.peerInOtherNetns, true);
    assert.deepEqual(await planFor(joined), [], 'a peer moved into a container is not drift');

    // The container dies: its namespace takes both ends of the veth with it.
    await execa('ip', ['netns', 'del', container]);
    const deadline = Date.now() + 10_000;
    while ((await links()).has(VETH_1)) {
      assert.ok(Date.now() < deadline, `${VETH_1} did not vanish after its peer's namespace was deleted`);
      await new Promise((r) => setTimeout(r, 20));
    }

    const lost = await planFor(joined);
    assert.deepEqual(summary(lost), [['endpoint.lost', VETH_1, 'vanished']]);
    assert.deepEqual(lost[0]?.owner, { networkId: NET_A, endpointId: EP_1 });
    assert.ok(!lost.some((a) => a.kind === 'veth.create'));
    const res = await applyActions(lost, kernel);
    assert.deepEqual(res, { applied: [], failures: [] }, 'lost is recorded, not kernel work');
    assert.equal((await links()).has(VETH_1), false, 'nothing was recreated');

    // Recorded as lost, the endpoint asks nothing more of the kernel.
    const recorded = given(netA, netB, ep1, ep2, join1, { type: 'MarkLost', endpointId: EP_1, reason: 'vanished' });
    assert.deepEqual(await planFor(recorded), []);
    // An endpoint that was never joined is simply recreated.
    assert.deepEqual(summary(await planFor(STATE)), [['veth.create', VETH_1, 'missing']]);
    await assertForeignIntact();
  });

  it('removes everything it owns for an empty desired state, and nothing else', async () => {
    await converge(STATE);
    const actions = await planFor(emptyState);
    assert.ok(actions.every((a) => a.reason === 'orphan'), 'everything left over is an orphan');
    const res = await applyActions(actions, kernel);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(await planFor(emptyState), []);

    assert.deepEqual(ownedLinkNames(await links()), []);
    const table = await filterTable();
    assert.deepEqual(
      table.filter((l) => l.includes('LEDGERNET') || l.includes('ledgernet:')),
      [],
    );
    await assertForeignIntact();
  });
});
