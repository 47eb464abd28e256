// Foreign links against real `ip` and `iptables` in a namespace this test makes (and deletes):
// a custom bridge name taken by someone else's link after the network was created is left
// alone (same ifindex, no alias, master, address or rule) and reported as a conflict; once that
// link is gone the network converges; a crash between `link add` and its label is recovered.
// Checks the kernel with `ip -j` and `iptables-save` directly. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { Command } from '../../src/events/domain/commands.ts';
import { emptyState, type State } from '../../src/events/domain/types.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, ipLines, isLinkChange, type HostKernel } from '../../src/kernel/index.ts';
import { CREATE_GROUP, actionKey, type Action } from '../../src/reconciler/actions.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { Reconciler, type PassResult } from '../../src/reconciler/loop.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { EP_1, NET_A, endpointSpec, given, networkSpec } from '../helpers/events.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const CUSTOM = 'lan0';
const VETH_1 = 'lnv-e1e1e1e1222';
const netA: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), bridge: CUSTOM } };
const ep1: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };
const STATE = given(netA, ep1);

interface IpLink {
  ifindex: number;
  ifname: string;
  group: string;
  mtu: number;
  flags: string[];
  master?: string;
  ifalias?: string;
  altnames?: string[];
  linkinfo?: { info_kind?: string };
}

const silent = { info() {}, warn() {}, error() {}, debug() {} };
/** A network of the default bridge name (lnb-…), and what the operator's link looks like. */
const NET_DEFAULT = given({ type: 'CreateNetwork', spec: networkSpec(NET_A, '10.231.7.0/24', '10.231.7.1/24') });
const DEFAULT_BRIDGE = NET_DEFAULT.networks[NET_A]?.bridge ?? '';
const OPERATOR_ALIAS = 'operator: my link';

/** `name` as `ip -j -d link show` prints it in `netns`, with its addresses; undefined when there is none. */
async function ipLink(netns: string, name: string): Promise<(IpLink & { addrs: string[] }) | undefined> {
  const r = await execa('ip', ['-n', netns, '-j', '-d', 'addr', 'show', 'dev', name], { reject: false });
  if (r.exitCode !== 0) return undefined;
  const [l] = JSON.parse(r.stdout) as (IpLink & { addr_info: { local: string; prefixlen: number }[] })[];
  if (!l) return undefined;
  const { addr_info: addrs, ...rest } = l;
  return { ...rest, addrs: addrs.map((a) => `${a.local}/${a.prefixlen}`) };
}

/** What the operator made of their link, to compare before and after ledgernet's passes. */
const asMade = (l: (IpLink & { addrs: string[] }) | undefined) =>
  l && { ifindex: l.ifindex, ifname: l.ifname, kind: l.linkinfo?.info_kind, alias: l.ifalias, altnames: l.altnames, group: l.group, mtu: l.mtu, up: l.flags.includes('UP'), master: l.master, addrs: l.addrs };

/** A reconciler of `getState` over `netns` (no timer: the test asks for its passes), stopped after `body`. */
async function withReconciler(kernel: HostKernel, getState: () => State, body: (r: Reconciler) => Promise<void>): Promise<void> {
  const r = new Reconciler({ kernel, getState, log: silent, onLost: async () => undefined, intervalMs: 0 });
  try {
    await body(r);
  } finally {
    await r.stop();
  }
}

/** The pass's link.conflict failures: the link's name and the network wanting it. */
const conflicts = (p: PassResult) => p.failures.flatMap((f) => (f.action.kind === 'link.conflict' ? [`${f.action.name} ${f.action.owner.networkId ?? ''}`] : []));
/** The link changes of a pass (firewall and hooks aside): what it did or tried to the links. */
const linkWork = (actions: readonly Action[]) => actions.filter((a) => isLinkChange(a)).map((a) => `${a.kind} ${actionKey(a)}`);

describe('foreign links in a throwaway namespace', { skip }, () => {
  const netns = `lnfor-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: HostKernel;
  const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);

  async function link(name: string): Promise<IpLink | undefined> {
    const { stdout } = await ip('-j', '-d', 'link', 'show');
    return (JSON.parse(stdout) as IpLink[]).find((l) => l.ifname === name);
  }

  async function globalAddrs(dev: string): Promise<string[]> {
    const { stdout } = await ip('-j', 'addr', 'show', 'dev', dev);
    return (JSON.parse(stdout) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[])
      .flatMap((l) => l.addr_info)
      .filter((a) => a.scope === 'global')
      .map((a) => `${a.local}/${a.prefixlen}`);
  }

  async function rulesNaming(name: string): Promise<string[]> {
    const out: string[] = [];
    for (const cmd of ['iptables-save', 'ip6tables-save']) {
      const r = await execa('ip', ['netns', 'exec', netns, cmd], { reject: false });
      out.push(...r.stdout.split('\n').filter((l) => l.includes(` ${name} `)));
    }
    return out;
  }

  const planFor = async (state: State) => plan(desiredFromState(state), await kernel.observe());
  const summary = (actions: readonly Action[]) => actions.filter((a) => !('table' in a)).map((a) => `${a.kind} ${actionKey(a)}`);

  async function converge(state: State): Promise<void> {
    const res = await applyActions(await planFor(state), kernel);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(await planFor(state), [], 'a second plan after apply is empty');
  }

  /** The link as its owner made it, with nothing of ledgernet's on it. */
  async function assertUntouched(ifindex: number, kind: string, alias?: string): Promise<void> {
    const l = await link(CUSTOM);
    assert.equal(l?.ifindex, ifindex, `${CUSTOM} was not deleted or recreated`);
    assert.equal(l?.linkinfo?.info_kind, kind);
    assert.equal(l?.ifalias, alias);
    assert.equal(l?.group, 'default');
    assert.equal(l?.master, undefined);
    assert.deepEqual(await globalAddrs(CUSTOM), []);
    assert.deepEqual(await rulesNaming(CUSTOM), []);
    assert.notEqual((await link(VETH_1))?.master, CUSTOM, 'no veth of ours is enslaved to it');
  }

  /** Our bridge removed by hand, and the operator's link made under its name. */
  async function foreignTakesOver(kind: 'veth' | 'bridge', alias?: string): Promise<number> {
    await ip('link', 'del', CUSTOM);
    // (This kernel has no dummy module; a veth pair stands in for a WireGuard wg0.)
    await ip('link', 'add', CUSTOM, 'type', kind, ...(kind === 'veth' ? ['peer', 'name', `${CUSTOM}p`] : []));
    if (alias) await ip('link', 'set', CUSTOM, 'alias', alias);
    const l = await link(CUSTOM);
    assert.ok(l);
    return l.ifindex;
  }

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`^${netns}`, 'm'), 'test namespace leaked');
  });

  it('a veth under the custom bridge name: conflict, left alone; deleted by hand: converged again', async () => {
    await converge(STATE);
    assert.equal((await link(CUSTOM))?.ifalias, `ledgernet:network:${NET_A}`);
    const ifindex = await foreignTakesOver('veth');

    const actions = await planFor(STATE);
    assert.deepEqual(summary(actions), [`link.conflict ${CUSTOM}`]);
    const res = await applyActions(actions, kernel);
    assert.deepEqual(res.failures.map((f) => f.action.kind), ['link.conflict']);
    await assertUntouched(ifindex, 'veth');
    // Every later pass leaves it alone too.
    await applyActions(await planFor(STATE), kernel);
    await assertUntouched(ifindex, 'veth');

    await ip('link', 'del', CUSTOM);
    await converge(STATE);
    const bridge = await link(CUSTOM);
    assert.equal(bridge?.linkinfo?.info_kind, 'bridge');
    assert.equal(bridge?.ifalias, `ledgernet:network:${NET_A}`);
    assert.equal(bridge?.group, 'default');
    assert.deepEqual(await globalAddrs(CUSTOM), ['10.231.7.1/24']);
    assert.equal((await link(VETH_1))?.master, CUSTOM);
    assert.ok((await rulesNaming(CUSTOM)).length > 0, 'the network has its rules back');
  });

  it('a bridge with the operator\'s alias: conflict; removing the network never deletes it', async () => {
    await converge(STATE);
    const ifindex = await foreignTakesOver('bridge', 'operator LAN');
    assert.deepEqual(summary(await planFor(STATE)), [`link.conflict ${CUSTOM}`]);
    await applyActions(await planFor(STATE), kernel);
    await assertUntouched(ifindex, 'bridge', 'operator LAN');

    await converge(emptyState);
    await assertUntouched(ifindex, 'bridge', 'operator LAN');
    assert.equal(await link(VETH_1), undefined, 'our own veth is gone');
    await ip('link', 'del', CUSTOM);
  });

  it('recovers links created but not labelled (a crash between `link add` and `link set … alias`)', async () => {
    const first = await planFor(STATE);
    const adds = first.filter((a) => isLinkChange(a)).flatMap(ipLines).filter((l) => l.startsWith('link add'));
    assert.equal(adds.length, 2);
    assert.deepEqual((await kernel.ipBatch(adds)).failures, []);
    assert.equal((await link(CUSTOM))?.group, CREATE_GROUP);
    assert.equal((await link(CUSTOM))?.ifalias, undefined, 'the kernel ignores an alias on link add, hence the group');

    const again = await planFor(STATE);
    assert.ok(!again.some((a) => a.kind === 'link.conflict' || a.kind === 'link.delete'), summary(again).join('\n'));
    await converge(STATE);
    for (const [name, alias] of [
      [CUSTOM, `ledgernet:network:${NET_A}`],
      [VETH_1, `ledgernet:endpoint:${EP_1}`],
      ['lnp-e1e1e1e1222', `ledgernet:peer:${EP_1}`],
    ] as const) {
      const l = await link(name);
      assert.equal(l?.ifalias, alias, name);
      assert.equal(l?.group, 'default', name);
    }
    await converge(emptyState);
  });
});

for (const reads of ['netlink', 'processes'] as const) {
  describe(`a foreign link holding a bridge name as its altname (reads: ${reads})`, { skip }, () => {
    const netns = throwawayNetns('revf-alt');
    const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);

    it('is reported as link.conflict and left alone, pass after pass: ifindex, alias, altname, state and addresses unchanged, never deleted', async () => {
      await ip('link', 'add', 'op0', 'type', 'ifb');
      await ip('link', 'set', 'op0', 'alias', OPERATOR_ALIAS);
      await ip('link', 'property', 'add', 'dev', 'op0', 'altname', DEFAULT_BRIDGE);
      const before = asMade(await ipLink(netns, 'op0'));
      assert.deepEqual(before?.altnames, [DEFAULT_BRIDGE]);
      const kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceReads: reads });
      assert.deepEqual((await kernel.observe()).links.find((l) => l.name === 'op0')?.altnames, [DEFAULT_BRIDGE], 'the read carries the altname');
      await withReconciler(kernel, () => NET_DEFAULT, async (r) => {
        for (const trigger of ['startup', 'timer', 'timer']) {
          const p = await r.requestPass(trigger);
          assert.deepEqual(conflicts(p), [`op0 ${NET_A}`], trigger);
          assert.deepEqual(linkWork(p.planned), [], `${trigger}: no link, address or deletion planned`);
          assert.deepEqual(asMade(await ipLink(netns, 'op0')), before, `${trigger}: the operator's link as they made it`);
        }
      });
      await ip('link', 'del', 'op0');
    });
  });
}

for (const [kind, writes] of [['bridge', 'netlink'], ['ifb', 'netlink'], ['bridge', 'processes'], ['ifb', 'processes']] as const) {
  describe(`a foreign ${kind} made under a bridge name after the last full read (writes: ${writes})`, { skip }, () => {
    const netns = throwawayNetns('revf-race');
    const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);

    it("the Docker call's pass (planned against the model) fails with link.conflict and leaves the link as made; so does the next timer pass", async () => {
      let state: State = given();
      const kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceWrites: writes });
      await withReconciler(kernel, () => state, async (r) => {
        assert.deepEqual((await r.requestPass('startup')).failures, []);
        await ip('link', 'add', DEFAULT_BRIDGE, 'type', kind);
        await ip('link', 'set', DEFAULT_BRIDGE, 'alias', OPERATOR_ALIAS);
        const before = asMade(await ipLink(netns, DEFAULT_BRIDGE));
        assert.equal(before?.alias, OPERATOR_ALIAS);
        state = NET_DEFAULT;
        const p = await r.requestPass('NetworkDriver.CreateNetwork');
        assert.equal(p.fullReads, 1, 'planned against the model, then on a full read after the failure');
        assert.deepEqual(conflicts(p), [`${DEFAULT_BRIDGE} ${NET_A}`], p.failures.map((f) => f.message).join('\n'));
        assert.deepEqual(asMade(await ipLink(netns, DEFAULT_BRIDGE)), before, "the operator's link as they made it");
        const t = await r.requestPass('timer');
        assert.deepEqual(conflicts(t), [`${DEFAULT_BRIDGE} ${NET_A}`]);
        assert.ok(!t.applied.some((a) => a.kind === 'link.delete' || a.kind === 'bridge.create'), linkWork(t.applied).join('\n'));
        assert.deepEqual(asMade(await ipLink(netns, DEFAULT_BRIDGE)), before, "the operator's link as they made it, after the timer pass");
        await ip('link', 'del', DEFAULT_BRIDGE);
      });
    });
  });
}
