// The kernel model Docker's calls plan against (kernel/model.ts, a backend's `after`): a life of
// networks and endpoints driven through a real kernel in a throwaway namespace, each step planned
// against the model the step before left, never against a fresh read. After every step a full
// observe must find nothing left to do, and the model must hold what the kernel holds, for every
// object ledgernet owns. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { Command } from '../../src/events/domain/commands.ts';
import { VETH_PREFIX, isOwnerTagged } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel, type KernelSnapshot } from '../../src/kernel/index.ts';
import { describeAction } from '../../src/reconciler/actions.ts';
import { afterActions as afterMaybe, applyActions, type ApplyResult } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { canon } from '../../src/kernel/nftables/canon.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const EP_3 = 'e3'.repeat(4) + '4'.repeat(56);
const netA: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.icc': 'false' } } };
const netB: Command = {
  type: 'CreateNetwork',
  spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), mtu: 1450, ipv6: true, ipv6Data: [{ pool: 'fd00:231:8::/64', gateway: 'fd00:231:8::1/64', aux: {} }] },
};
const ep1: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };
const ep2: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_B, EP_2, '10.231.8.2/24'), addressV6: 'fd00:231:8::2/64' } };
const ep3: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_3, '10.231.7.3/24') };
const ports: Command = {
  type: 'ProgramExternal',
  networkId: NET_A,
  endpointId: EP_1,
  portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 18080, hostPortEnd: 18080 }],
};
/** IPv6 NAT (ip6tables nat): netB's endpoint publishes on both families, then on [::] only. */
const ports6: Command = {
  type: 'ProgramExternal',
  networkId: NET_B,
  endpointId: EP_2,
  portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 18081, hostPortEnd: 18081 }],
};
const ports6only: Command = { ...ports6, portmap: [{ proto: 17, port: 53, hostIp: '::', hostPort: 18053, hostPortEnd: 18053 }] };
const rated: Command = {
  type: 'CreateNetwork',
  spec: { ...networkSpec('c'.repeat(64), '10.231.9.0/24', '10.231.9.1/24'), options: { 'ledgernet.ingress_rate': '10mbit', 'ledgernet.egress_rate': '20mbit' } },
};
const ep4: Command = { type: 'CreateEndpoint', spec: endpointSpec('c'.repeat(64), 'f4'.repeat(32), '10.231.9.2/24') };
/** Gateway modes: an isolated network (a bridge without an address) and a routed one with trusted interfaces. */
const isolated: Command = {
  type: 'CreateNetwork',
  spec: {
    ...networkSpec('d'.repeat(64), '10.231.10.0/24', '10.231.10.1/24'),
    internal: true,
    ipv6: true,
    ipv6Data: [{ pool: 'fd00:231:10::/64', gateway: 'fd00:231:10::1/64', aux: {} }],
    options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'isolated', 'com.docker.network.bridge.gateway_mode_ipv6': 'isolated' },
  },
};
const routed: Command = {
  type: 'CreateNetwork',
  spec: {
    ...networkSpec('e'.repeat(64), '10.231.11.0/24', '10.231.11.1/24'),
    options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'routed', 'com.docker.network.bridge.trusted_host_interfaces': 'eth1' },
  },
};

/** The model after an apply; both backends always know what their changes did. */
function afterActions(s: KernelSnapshot, applied: ApplyResult['applied'], fw?: FirewallBackend): KernelSnapshot {
  const m = afterMaybe(s, applied, fw);
  assert.ok(m, `the ${fw?.name ?? 'iptables'} backend predicts its own changes`);
  return m;
}

/** Each step: the commands so far. The life goes up, then all the way down again. */
const LIFE: readonly (readonly Command[])[] = [
  [netA],
  [netA, netB],
  [netA, netB, ep1],
  [netA, netB, ep1, ep2, ep3],
  [netA, netB, ep1, ep2, ep3, ports],
  [netA, netB, ep1, ep2, ep3, ports, ports6],
  [netA, netB, ep1, ep2, ep3, ports, ports6only],
  [netA, netB, ep1, ep2, ep3, ports, rated, ep4],
  [netA, netB, ep1, ep2, ep3, ports, rated, ep4, isolated, routed],
  [netA, netB, ep1, ep2, ep3, ports, rated, ep4, { type: 'DeleteEndpoint', networkId: 'c'.repeat(64), endpointId: 'f4'.repeat(32) }],
  [netA, netB, ep1, ep2, ep3, ports, { type: 'RevokeExternal', networkId: NET_A, endpointId: EP_1 }],
  [netA, netB, ep1, ep2],
  [netA, ep1],
  [netA],
  [],
];

const egressNet: Command = {
  type: 'CreateNetwork',
  spec: { ...networkSpec('d'.repeat(64), '10.231.10.0/24', '10.231.10.1/24'), options: { 'ledgernet.egress_deny': '10.0.0.0/8,203.0.113.2,203.0.113.3', 'ledgernet.egress_allow': '0.0.0.0/0:tcp' } },
};
const ep5: Command = { type: 'CreateEndpoint', spec: endpointSpec('d'.repeat(64), 'f5'.repeat(32), '10.231.10.2/24') };
const ports5: Command = {
  type: 'ProgramExternal',
  networkId: 'd'.repeat(64),
  endpointId: 'f5'.repeat(32),
  portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 18090, hostPortEnd: 18099 }, { proto: 17, port: 53, hostIp: '127.0.0.1', hostPort: 5353, hostPortEnd: 5353 }],
};
/** The nftables backend's life goes on: an egress policy, a port range and a bound port, then down again. */
const EXTRA: readonly (readonly Command[])[] = [[netA, egressNet], [netA, egressNet, ep5, ports5], [netA, egressNet, ep5], [netA], []];

/** What ledgernet owns of a snapshot, in a form to compare: links, addresses, shaping, firewall. */
function owned(s: KernelSnapshot) {
  const links = s.links.filter((l) => isOwnerTagged(l.alias));
  const names = new Set(links.map((l) => l.name));
  const ours = (rule: string) => rule.includes('ledgernet:') || rule.includes('LEDGERNET-');
  const tables = Object.fromEntries(
    (['filter', 'nat', 'filter6', 'nat6', 'mangle', 'mangle6'] as const).map((t) => [
      t,
      Object.fromEntries(
        Object.values(s[t]?.chains ?? {}).flatMap((c) => {
          const rules = c.name.startsWith('LEDGERNET-') ? c.rules : c.rules.filter(ours);
          return rules.length > 0 || c.name.startsWith('LEDGERNET-') ? [[c.name, rules]] : [];
        }),
      ),
    ]),
  );
  return {
    links: links.map(({ name, kind, master, mtu, up, alias, peer }) => ({ name, kind, master, mtu, up, alias, peer })).sort((a, b) => a.name.localeCompare(b.name)),
    addrs: s.addrs.filter((a) => names.has(a.dev) && a.scope !== 'link').map((a) => `${a.dev} ${a.cidr}`).sort(),
    qdiscs: s.qdiscs.filter((q) => names.has(q.dev) && (q.kind === 'tbf' || q.kind === 'ingress')).map((q) => `${q.dev} ${q.kind} ${q.rate ?? ''}`).sort(),
    redirects: Object.entries(s.ingressRedirects).filter(([d]) => names.has(d)).sort(),
    localnet: Object.entries(s.routeLocalnet).filter(([d]) => names.has(d)).sort(),
    tables,
    // The nftables table (ours as a whole); elements in no particular order.
    nftables: s.nftables && {
      sets: Object.fromEntries(Object.entries(s.nftables.sets).map(([k, v]) => [k, { ...v, elements: v.elements.map(canon).sort() }])),
      chains: s.nftables.chains,
    },
  };
}

describe('the kernel model: planning against it converges a real kernel', { skip }, () => {
  const netns = `lnmodel-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: Kernel;

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    await execa('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  });

  for (const fw of [undefined, nftablesFirewall]) {
    it(`every step planned against the model leaves nothing to do, and the model holds what the kernel holds (${fw?.name ?? 'iptables'})`, async () => {
      await life(fw);
    });
  }

  /** The LIFE (then, for nftables, EXTRA), each step planned against the model only. */
  async function life(fw: FirewallBackend | undefined) {
    let model = await kernel.observe();
    for (const [i, cmds] of [...LIFE, ...(fw ? EXTRA : [])].entries()) {
      const desired = desiredFromState(given(...cmds));
      const res = await applyActions(plan(desired, model, fw), kernel, fw);
      assert.deepEqual(res.failures.map((f) => `${describeAction(f.action)}: ${f.message}`), [], `step ${i}`);
      model = afterActions(model, res.applied, fw);
      const fresh = await kernel.observe();
      assert.deepEqual(plan(desired, fresh, fw).map(describeAction), [], `step ${i}: a full observe finds nothing left to do`);
      assert.deepEqual(plan(desired, model, fw).map(describeAction), [], `step ${i}: nor does the model`);
      // Rates are compared as the kernel rounds them: the plan accepts 1 %.
      const norm = (o: ReturnType<typeof owned>) => ({ ...o, qdiscs: o.qdiscs.map((q) => q.replace(/ (\d+)$/, (_, r: string) => ` ~${Math.round(Number(r) / 10_000)}`)) });
      assert.deepEqual(norm(owned(model)), norm(owned(fresh)), `step ${i}: the model holds what the kernel holds`);
    }
  }

  it('a link deleted behind the model\'s back: the plan fails, a fresh read repairs it', async () => {
    const cmds = [netA, ep1];
    const desired = desiredFromState(given(...cmds));
    let model = afterActions(await kernel.observe(), (await applyActions(plan(desired, await kernel.observe()), kernel)).applied);
    await execa('ip', ['-n', netns, 'link', 'del', 'dev', desiredFromState(given(...cmds)).bridges[0]!.name]);
    // The model still has the bridge: planning against it finds nothing to do (the loop's drift
    // notices and its re-check after a failure are what catch this; see loop.ts).
    assert.deepEqual(plan(desired, model).map(describeAction), []);
    const fresh = await kernel.observe();
    const repair = await applyActions(plan(desired, fresh), kernel);
    assert.deepEqual(repair.failures, []);
    model = afterActions(fresh, repair.applied);
    assert.deepEqual(plan(desired, await kernel.observe()).map(describeAction), []);
    assert.deepEqual(plan(desired, model).map(describeAction), []);
    await applyActions(plan(desiredFromState(given()), model), kernel);
  });
});
