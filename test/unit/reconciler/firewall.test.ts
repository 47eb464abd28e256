import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkPolicy } from '../../../src/events/domain/options.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { portRivals } from '../../../src/events/domain/ports.ts';
import { tcLines } from '../../../src/kernel/index.ts';
import { afterRestore } from '../../../src/kernel/iptables/evolve.ts';
import { restoreInput } from '../../../src/kernel/iptables/restore.ts';
import type { FirewallChange } from '../../../src/kernel/types.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { portRanges } from '../../../src/reconciler/firewall.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, NET_A, NET_B, endpointSpec, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { EP_3, FIREWALL_COMMANDS, NET_C, withIpv6 } from '../../helpers/firewall-states.ts';
import { assertGolden } from '../../helpers/golden.ts';
import { flatWrites } from '../../helpers/iptables-flat.ts';
import { given } from '../../helpers/state.ts';

function dockerKernel(): FakeKernel {
  const k = new FakeKernel();
  k.chains.set('DOCKER-USER', { policy: null, rules: ['-j RETURN'] });
  k.chains.set('DOCKER-ISOLATION-STAGE-1', { policy: null, rules: ['-j RETURN'] });
  k.chains.set('DOCKER', { policy: null, rules: [] });
  k.chains.get('FORWARD')!.rules.push(
    '-j DOCKER-USER',
    '-j DOCKER-ISOLATION-STAGE-1',
    '-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-o docker0 -j DOCKER',
    '-i docker0 ! -o docker0 -j ACCEPT',
  );
  k.nat.set('DOCKER', { policy: null, rules: ['-i docker0 -j RETURN'] });
  k.nat.get('POSTROUTING')!.rules.push('-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE');
  return k;
}

describe('network policy options', () => {
  it('defaults: icc and masquerade on, no allow-list, no rates', () => {
    assert.deepEqual(networkPolicy({}), { icc: true, masquerade: true, allow: null, egressRate: null, ingressRate: null });
  });

  it("reads ours and Docker's bridge-driver names; both given must agree", () => {
    assert.throws(
      () => networkPolicy({ 'ledgernet.icc': 'true', 'com.docker.network.bridge.enable_icc': 'false' }),
      { code: 'LN_ERR_INVALID_OPTION', message: /options ledgernet\.icc=true and com\.docker\.network\.bridge\.enable_icc=false say different things/ },
    );
    assert.equal(networkPolicy({ 'ledgernet.icc': 'false', 'com.docker.network.bridge.enable_icc': '0' }).icc, false, 'same meaning, other spelling');
    const p = networkPolicy({
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.enable_ip_masquerade': 'true',
      'ledgernet.masquerade': 'true',
      'ledgernet.allow': 'tcp/80, TCP/8000-8100,udp/53,icmp,tcp/80',
      'ledgernet.ingress_rate': '512kbit',
      'ledgernet.egress_rate': '10mbit',
    });
    assert.equal(p.icc, false);
    assert.equal(p.masquerade, true);
    assert.deepEqual(p.allow, [
      { proto: 'tcp', ports: [80, 80] },
      { proto: 'tcp', ports: [8000, 8100] },
      { proto: 'udp', ports: [53, 53] },
      { proto: 'icmp', ports: null },
    ]);
    assert.equal(p.egressRate, 10_000_000);
    assert.equal(p.ingressRate, 512_000);
    assert.equal(networkPolicy({ 'ledgernet.ingress_rate': '10mbit' }).ingressRate, 10_000_000);
    assert.equal(networkPolicy({ 'ledgernet.ingress_rate': '2500000' }).ingressRate, 2_500_000);
  });

  for (const [k, v, msg] of [
    ['ledgernet.icc', 'maybe', /ledgernet\.icc=maybe is invalid: expected true or false/],
    ['ledgernet.allow', 'tcp/0', /ledgernet\.allow=tcp\/0 is invalid/],
    ['ledgernet.allow', 'tcp/90-80', /low <= high/],
    ['ledgernet.allow', 'sctp/5', /ledgernet\.allow=sctp\/5 is invalid/],
    ['ledgernet.egress_rate', 'fast', /ledgernet\.egress_rate=fast is invalid/],
    ['ledgernet.ingress_rate', 'fast', /ledgernet\.ingress_rate=fast is invalid/],
    ['ledgernet.ingress_rate', '1kbit', /ledgernet\.ingress_rate=1kbit is invalid/],
  ] as const) {
    it(`refuses ${k}=${v}`, () => {
      assert.throws(() => networkPolicy({ [k]: v }), { name: 'DriverError', code: 'LN_ERR_INVALID_OPTION', message: msg });
    });
  }
});

describe('published ports', () => {
  it('chooses -P and host-range ports deterministically and records them in the event', () => {
    const state = given(...FIREWALL_COMMANDS);
    const pm = state.endpoints[EP_3]?.portmap ?? [];
    assert.deepEqual(
      pm.map((p) => `${p.proto}/${p.hostIp || '*'}:${p.hostPort}-${p.hostPortEnd}->${p.port}`),
      ['6/*:9000-9000->8000', '6/*:9001-9001->8001', '6/*:9002-9002->8002', '6/127.0.0.1:8443-8443->443', '17/*:5353-5353->53', '6/*:49153-49153->22', '6/*:7000-7000->7000'],
    );
    // Docker repeating the call keeps the choice and writes nothing.
    const again = FIREWALL_COMMANDS.at(-1) as Command;
    const twice = given(...FIREWALL_COMMANDS, again);
    assert.equal(twice.seq, state.seq);
  });

  it('refuses a host port another endpoint publishes', () => {
    const cmds: Command[] = [
      ...FIREWALL_COMMANDS,
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, 'f1'.repeat(32), '10.231.7.9/24') },
      { type: 'ProgramExternal', networkId: NET_A, endpointId: 'f1'.repeat(32), portmap: [{ proto: 6, port: 1, hostIp: '', hostPort: 9001, hostPortEnd: 9001 }] },
    ];
    assert.throws(() => given(...cmds), { code: 'LN_ERR_CONFLICT', message: /host port tcp\/9001 is already published by endpoint e3e3e3e34444/ });
    // Once Docker's API named the owner's container, the refusal names it as `docker ps` does.
    const owner = Object.values(given(...FIREWALL_COMMANDS).endpoints).find((e) => e.endpointId.startsWith('e3e3e3e34444'));
    assert.ok(owner);
    const named: Command = { type: 'RecordNames', networks: [], endpoints: [{ networkId: owner.networkId, endpointId: owner.endpointId, containerId: 'c0'.repeat(32), name: 'web-1' }] };
    assert.throws(() => given(...FIREWALL_COMMANDS, named, ...cmds.slice(FIREWALL_COMMANDS.length)), {
      code: 'LN_ERR_CONFLICT',
      message: /host port tcp\/9001 is already published by container web-1, endpoint e3e3e3e34444/,
    });
  });

  it("a host port held by the same container's older endpoint on the network: that one is released (with its reason) and the new one publishes, in one decision", () => {
    const F1 = 'f1'.repeat(32);
    const owner = Object.values(given(...FIREWALL_COMMANDS).endpoints).find((e) => e.endpointId.startsWith('e3e3e3e34444'));
    assert.ok(owner);
    const named: Command = { type: 'RecordNames', networks: [], endpoints: [{ networkId: owner.networkId, endpointId: owner.endpointId, containerId: 'c0'.repeat(32), name: 'web-1' }] };
    const before = given(...FIREWALL_COMMANDS, named, { type: 'CreateEndpoint', spec: endpointSpec(NET_C, F1, '10.231.9.9/24') });
    const portmap = [{ proto: 6, port: 1, hostIp: '', hostPort: 9001, hostPortEnd: 9001 }];
    const program = (containerId?: string): Command => ({ type: 'ProgramExternal', networkId: NET_C, endpointId: F1, portmap, ...(containerId === undefined ? {} : { containerId }) });
    assert.deepEqual(portRivals(portmap, before, { networkId: NET_C, endpointId: F1 }).map((e) => e.endpointId), [owner.endpointId]);
    const events = decide(program('c0'.repeat(32)), before);
    assert.deepEqual(events.map((e) => e.type), ['endpoint.deleted', 'endpoint.external.programmed']);
    assert.match(String((events[0]?.data as { reason?: string }).reason), /superseded by endpoint f1f1f1f1f1f1 of the same container web-1 on the same network/);
    // Another container, or none known (Docker's API off): the port stays taken, nothing is released.
    for (const c of ['d0'.repeat(32), undefined]) {
      assert.throws(() => decide(program(c), before), { code: 'LN_ERR_CONFLICT', message: /already published by container web-1/ });
    }
  });

  it('the same host port on host addresses that do not overlap is two bindings, as in the bridge driver', () => {
    const F1 = 'f1'.repeat(32);
    const program = (hostIp: string, hostPort: number): Command[] => [
      ...FIREWALL_COMMANDS,
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, F1, '10.231.7.9/24') },
      { type: 'ProgramExternal', networkId: NET_A, endpointId: F1, portmap: [{ proto: 6, port: 1, hostIp, hostPort, hostPortEnd: hostPort }] },
    ];
    // EP_3 publishes tcp/8443 on 127.0.0.1 and tcp/9001 on every address.
    assert.deepEqual(given(...program('127.0.0.2', 8443)).endpoints[F1]?.portmap.map((p) => `${p.hostIp}:${p.hostPort}`), ['127.0.0.2:8443']);
    for (const hostIp of ['', '0.0.0.0', '127.0.0.1']) {
      assert.throws(() => given(...program(hostIp, 8443)), { code: 'LN_ERR_CONFLICT', message: /^host port tcp\/8443 on 127\.0\.0\.1 is already published by endpoint/ }, hostIp);
    }
    assert.throws(() => given(...program('127.0.0.2', 9001)), { code: 'LN_ERR_CONFLICT', message: /^host port tcp\/9001 is already published by endpoint/ });
    // A range skips only the ports taken on an overlapping address.
    const range: Command[] = [
      ...FIREWALL_COMMANDS,
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, F1, '10.231.7.9/24') },
      { type: 'ProgramExternal', networkId: NET_A, endpointId: F1, portmap: [{ proto: 6, port: 1, hostIp: '127.0.0.2', hostPort: 8443, hostPortEnd: 8450 }, { proto: 6, port: 2, hostIp: '127.0.0.1', hostPort: 8443, hostPortEnd: 8450 }] },
    ];
    assert.deepEqual(given(...range).endpoints[F1]?.portmap.map((p) => `${p.hostIp}:${p.hostPort}`), ['127.0.0.2:8443', '127.0.0.1:8444']);
  });

  it('merges consecutive ports with the same offset into one range', () => {
    const b = (hostPort: number, port: number, proto = 6) => ({ proto, port, hostIp: '', hostPort, hostPortEnd: hostPort });
    assert.deepEqual(
      portRanges([b(9002, 8002), b(9000, 8000), b(9001, 8001), b(9003, 9003), b(80, 80, 17)]).map((r) => `${r.proto} ${r.hostLo}-${r.hostHi}->${r.port}`),
      ['tcp 9000-9002->8000', 'tcp 9003-9003->9003', 'udp 80-80->80'],
    );
  });
});

describe('firewall plans', () => {
  it('icc=false, masquerade=false, allow-list; internal; published ports (golden), and converges', async () => {
    const k = dockerKernel();
    const state = given(...FIREWALL_COMMANDS);
    const actions = plan(desiredFromState(state), await k.observe());
    const fw = actions.filter((a) => a.kind.startsWith('chain.') || a.kind.startsWith('hook.'));
    assertGolden('plans/icc=false,masq=false,allow=list+internal+ports,actual=docker.json', fw);
    assertGolden('plans/icc=false,masq=false,allow=list+internal+ports,actual=docker.txt', renderPlan(fw));
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    const forward = k.chains.get('FORWARD')!.rules;
    assert.equal(forward[1], '-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD', 'hooked right after DOCKER-USER');
    assert.equal(k.nat.get('POSTROUTING')!.rules[0], '-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE', "Docker's rules untouched");
  });

  it('moves the FORWARD hook back when Docker inserts its rules above it', async () => {
    const k = dockerKernel();
    const state = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    await applyActions(plan(desiredFromState(state), await k.observe()), k);
    // dockerd restarting re-inserts its jumps at the top; a new bridge network inserts more.
    k.chains.get('FORWARD')!.rules.splice(1, 0, '-i br-123 ! -o br-123 -j ACCEPT');
    const actions = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(
      actions.map((a) => `${a.kind} ${a.reason} ${'position' in a ? a.position : ''}`),
      ['hook.delete drifted ', 'hook.add missing 2'],
    );
    await applyActions(actions, k);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.equal(k.chains.get('FORWARD')!.rules[1], '-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD');
  });

  it('copies of the FORWARD hook (a restored backup) are all deleted by rule and one added back in place, in one restore', async () => {
    const k = dockerKernel();
    const state = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    await applyActions(plan(desiredFromState(state), await k.observe()), k);
    const hook = '-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD';
    const forward = k.chains.get('FORWARD')!.rules;
    const converged = [...forward];
    const place = converged.indexOf(hook) + 1;
    // One copy behind Docker's rules, one above DOCKER-USER: every copy goes (by rule: never
    // someone else's rule, whatever changed since the read), one comes back in its place.
    forward.push(hook);
    forward.unshift(hook);
    const observed = await k.observe();
    const actions = plan(desiredFromState(state), observed);
    const deleted = `  - hook.delete filter/FORWARD ${hook} (drifted: 3 copies: all go, one is added back in its place)`;
    assert.deepEqual(renderPlan(actions).split('\n').filter((l) => l.includes('hook.')), [deleted, deleted, deleted, `  + hook.add filter/FORWARD ${hook} (missing)`]);
    assert.equal(
      restoreInput(actions.filter((a): a is FirewallChange => 'table' in a), 'filter'),
      `*filter\n-D FORWARD ${hook}\n-D FORWARD ${hook}\n-D FORWARD ${hook}\n-I FORWARD ${place} ${hook}\nCOMMIT\n`,
    );
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.deepEqual(k.chains.get('FORWARD')!.rules, converged);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    // The model the next pass plans against predicts the same chain.
    const predicted = afterRestore(observed, actions.filter((a): a is FirewallChange => 'table' in a));
    assert.deepEqual(predicted.filter?.chains['FORWARD']?.rules, converged);
  });

  it('rewrites only the chain that changed; removing the last network removes every chain and hook', async () => {
    const k = dockerKernel();
    const before = structuredClone([...k.chains, ...k.nat, ...k.filter6]);
    const state = given(...FIREWALL_COMMANDS);
    await applyActions(plan(desiredFromState(state), await k.observe()), k);
    const revoke: Command = { type: 'RevokeExternal', networkId: NET_A, endpointId: EP_1 };
    const actions = plan(desiredFromState(given(...FIREWALL_COMMANDS, revoke)), await k.observe());
    assert.deepEqual(actions.map((a) => `${a.kind} ${'chain' in a ? a.chain : ''}`), [
      'bridge.localnet ',
      'chain.write LEDGERNET-DNAT',
      // Network A's bucket held only its hairpin and localhost rules: it goes, and its jump.
      'chain.write LEDGERNET-POSTROUTING',
      'chain.delete LEDGERNET-POSTROUTING-a',
    ]);
    await applyActions(plan(desiredFromState(given()), await k.observe()), k);
    assert.deepEqual([...k.chains, ...k.nat, ...k.filter6], before);
  });
});

describe('IPv6 firewall (ip6tables filter table)', () => {
  /** Docker running with ip6tables: its jumps in the IPv6 FORWARD chain too. */
  function dockerKernel6(): FakeKernel {
    const k = dockerKernel();
    k.filter6.set('DOCKER-USER', { policy: null, rules: ['-j RETURN'] });
    k.filter6.set('DOCKER-ISOLATION-STAGE-1', { policy: null, rules: ['-j RETURN'] });
    k.filter6.get('FORWARD')!.rules.push('-j DOCKER-USER', '-j DOCKER-ISOLATION-STAGE-1', '-o docker0 -j DOCKER');
    return k;
  }
  const v6net = (id: string, n: number, extra: Partial<ReturnType<typeof networkSpec>> = {}): Command => ({
    type: 'CreateNetwork',
    spec: withIpv6({ ...networkSpec(id, `10.231.${n}.0/24`, `10.231.${n}.1/24`), ...extra }, n),
  });

  it('mirrors the filter policy for networks with IPv6 data only; hooked after DOCKER-USER; converges', async () => {
    const k = dockerKernel6();
    const state = given(...FIREWALL_COMMANDS);
    const actions = plan(desiredFromState(state), await k.observe());
    const v6 = actions.filter((a): a is FirewallChange => 'table' in a && a.table === 'filter6');
    assert.deepEqual(v6.map((a) => `${a.kind} ${'chain' in a ? a.chain : a.kind === 'hook.add' ? `${a.from} @${a.position}` : ''}`), [
      'chain.write LEDGERNET-EARLY-a',
      'chain.write LEDGERNET-EARLY-b',
      'chain.write LEDGERNET-EARLY-c',
      'chain.write LEDGERNET-FORWARD',
      'chain.write LEDGERNET-ING-aaaaaaaa0000',
      'chain.write LEDGERNET-LAN-aaaaaaaa0000',
      'chain.write LEDGERNET-LAN-bbbbbbbb1111',
      'chain.write LEDGERNET-LATE-a',
      'chain.write LEDGERNET-SEALED-b',
      'hook.add FORWARD @2',
    ]);
    const rules = flatWrites(v6, 'filter6');
    assert.deepEqual(
      rules.filter((r) => r.includes('lnb-cccccccc222')).map((r) => r.replace(/ -m comment .*-j/, ' -j')),
      ['-i lnb-cccccccc222 ! -o lnb-cccccccc222 -j DROP', '! -i lnb-cccccccc222 -o lnb-cccccccc222 -j DROP'],
      'the IPv4-only network C has only its IPv6 drops',
    );
    assert.ok(rules.some((r) => r.includes('-o lnb-aaaaaaaa000 -p ipv6-icmp -m comment')), 'allow icmp is ipv6-icmp');
    // IPv6 is NATed too (Docker 27+): published ports and hairpin are accepted as for IPv4.
    assert.ok(!rules.some((r) => r.includes(`${NET_B}:published`)), 'nothing published into --internal B');
    assert.ok(rules.some((r) => r.startsWith('-i lnb-aaaaaaaa000 -o lnb-aaaaaaaa000 -m conntrack --ctstate DNAT ') && r.endsWith(':hairpin" -j ACCEPT')), 'hairpin accepted with icc=false');
    assert.ok(rules.some((r) => r.includes('--icmpv6-type 135')) && rules.some((r) => r.includes('--icmpv6-type 136')), 'icc=false keeps neighbour discovery');
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.ok(k.calls.some((c) => c.kind === 'restoreIptables' && c.table === 'filter6'), 'applied to the IPv6 table');
    assert.ok(restoreInput(v6, 'filter6')?.startsWith('*filter\n'), 'sent to ip6tables-restore as *filter');
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.deepEqual(k.filter6.get('FORWARD')!.rules.slice(0, 3), ['-j DOCKER-USER', '-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD', '-j DOCKER-ISOLATION-STAGE-1']);
  });

  it('repairs drift and moved hooks in the IPv6 table alone, and removes orphans', async () => {
    const k = dockerKernel6();
    const state = given(v6net(NET_A, 7), v6net(NET_B, 8, { internal: true }));
    await applyActions(plan(desiredFromState(state), await k.observe()), k);
    const v4 = structuredClone([...k.chains]);
    k.filter6.get('LEDGERNET-FORWARD')!.rules.splice(0, 1);
    k.filter6.get('FORWARD')!.rules.splice(1, 0, '-i br-123 ! -o br-123 -j ACCEPT');
    k.filter6.set('LEDGERNET-OLD', { policy: null, rules: ['-j DROP'] });
    k.filter6.get('INPUT')!.rules.push('-m comment --comment "ledgernet:hook" -j LEDGERNET-OLD');
    const drift = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${'table' in a ? a.table : ''} ${a.reason}`), [
      'hook.delete filter6 drifted',
      'hook.delete filter6 orphan',
      'chain.write filter6 drifted',
      'hook.add filter6 missing',
      'chain.delete filter6 orphan',
    ]);
    assert.deepEqual((await applyActions(drift, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.deepEqual([...k.chains], v4, 'the IPv4 table is not rewritten');
  });

  it('without ip6tables (IPv6 disabled) plans nothing for IPv6 and the IPv4 work goes on', async () => {
    const k = dockerKernel6();
    k.ipv6 = false;
    const state = given(v6net(NET_A, 7));
    const actions = plan(desiredFromState(state), await k.observe());
    assert.ok(actions.length > 0);
    assert.ok(actions.every((a) => !('table' in a) || a.table !== 'filter6'));
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.equal(k.calls.filter((c) => c.kind === 'restoreIptables' && c.table === 'filter6').length, 0);
  });

  it('a failing ip6tables-restore fails only the IPv6 actions', async () => {
    const k = dockerKernel6();
    const state = given(v6net(NET_A, 7));
    const actions = plan(desiredFromState(state), await k.observe());
    k.ipv6 = false; // observed, then ip6tables went away before the apply
    const res = await applyActions(actions, k);
    assert.deepEqual(res.failures.map((f) => `${f.action.kind} ${'table' in f.action ? f.action.table : ''}`), [
      ...Array<string>(5).fill('chain.write filter6'),
      'hook.add filter6',
      'chain.write nat6',
      'hook.add nat6',
      'chain.write mangle6',
      'chain.write mangle6',
      'hook.add mangle6',
    ]);
    assert.ok(k.chains.has('LEDGERNET-FORWARD'));
  });
});

describe('bandwidth (tc)', () => {
  const limited: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.ingress_rate': '8mbit' } } };
  const ep: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };

  it('puts a tbf at the root of each host-side veth, repairs drift, and removes it when unwanted', async () => {
    const k = new FakeKernel();
    const state = given(limited, ep);
    const first = plan(desiredFromState(state), await k.observe());
    assertGolden('plans/ingress_rate=8mbit,actual=empty.txt', renderPlan(first));
    assert.deepEqual((await applyActions(first, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.equal(k.qdiscs.get('lnv-e1e1e1e1222')?.rate, 1_000_000, '8 mbit/s = 1,000,000 bytes/s');
    const shaping = k.calls.find((c) => c.kind === 'applyShaping');
    assert.deepEqual(shaping?.kind === 'applyShaping' ? shaping.changes.flatMap(tcLines) : [], ['qdisc replace dev lnv-e1e1e1e1222 root tbf rate 8000000bit burst 16000 latency 50ms']);

    k.qdiscs.delete('lnv-e1e1e1e1222');
    const drift = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${a.reason} ${a.detail ?? ''}`), ['qdisc.set drifted tbf 8000000 bit/s expected, none found']);
    await applyActions(drift, k);
    k.qdiscs.set('lnv-e1e1e1e1222', { dev: 'lnv-e1e1e1e1222', kind: 'tbf', handle: '1:', root: true, parent: null, rate: 125_000, burst: 16_000, limit: 66_000 });
    assert.equal(plan(desiredFromState(state), await k.observe())[0]?.kind, 'qdisc.set', 'a changed rate is drift');

    const unlimited = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, ep);
    const gone = plan(desiredFromState(unlimited), await k.observe());
    assert.deepEqual(gone.map((a) => a.kind), ['qdisc.delete']);
    await applyActions(gone, k);
    assert.equal(k.qdiscs.size, 0);
  });

  it('egress_rate: an ifb per endpoint, the veth ingress redirected to it, a tbf on it; drift and removal', async () => {
    const k = new FakeKernel();
    const egress: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.egress_rate': '4mbit' } } };
    const state = given(egress, ep);
    const first = plan(desiredFromState(state), await k.observe());
    assertGolden('plans/egress_rate=4mbit,actual=empty.txt', renderPlan(first));
    assert.deepEqual((await applyActions(first, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.deepEqual(k.ingress.get('lnv-e1e1e1e1222'), ['lni-e1e1e1e1222']);
    assert.equal(k.qdiscs.get('lni-e1e1e1e1222')?.rate, 500_000);
    assert.equal(k.links.get('lni-e1e1e1e1222')?.alias, `ledgernet:ifb:${EP_1}`);

    k.ingress.set('lnv-e1e1e1e1222', []);
    k.qdiscs.delete('lni-e1e1e1e1222');
    const drift = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${a.reason}`), ['qdisc.set drifted', 'redirect.set drifted']);
    assert.deepEqual((await applyActions(drift, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);

    const gone = plan(desiredFromState(given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, ep)), await k.observe());
    assert.deepEqual(gone.map((a) => `${a.kind} ${'name' in a ? a.name : ''}`), ['redirect.delete lnv-e1e1e1e1222', 'link.delete lni-e1e1e1e1222']);
    await applyActions(gone, k);
    assert.equal(k.links.has('lni-e1e1e1e1222'), false);
    assert.equal(k.ingress.size, 0);
  });

  it("a tbf whose burst or limit is not what ledgernet writes is drift, named found against expected; tc's rounding is not", async () => {
    const k = new FakeKernel();
    const state = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), mtu: 9000, options: { 'ledgernet.ingress_rate': '8mbit', 'ledgernet.mtu': '9000' } } }, ep);
    assert.deepEqual((await applyActions(plan(desiredFromState(state), await k.observe()), k)).failures, []);
    const tbf = { dev: 'lnv-e1e1e1e1222', kind: 'tbf', handle: '1:', root: true, parent: null, rate: 1_000_000 } as const;
    // 8mbit at MTU 9000: burst 16000 (more than 9014), limit 50 ms at the rate plus the burst.
    assert.deepEqual(k.qdiscs.get(tbf.dev), { ...tbf, handle: '8001:', burst: 16_000, limit: 66_000 });
    // Read back from the kernel's ticks, a little under what was written.
    k.qdiscs.set(tbf.dev, { ...tbf, burst: 15_999, limit: 66_000 });
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    // By hand: tc qdisc replace dev … root tbf rate 8mbit burst 20mb latency 10s.
    k.qdiscs.set(tbf.dev, { ...tbf, burst: 20_971_520, limit: 30_971_520 });
    const drift = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(
      drift.map((a) => `${a.kind} ${a.reason} ${a.detail ?? ''}`),
      ['qdisc.set drifted burst 16000 expected, 20971520 found; limit 66000 expected, 30971520 found'],
    );
    k.qdiscs.set(tbf.dev, { ...tbf, burst: 16_000, limit: 10_016_000 });
    assert.deepEqual(plan(desiredFromState(state), await k.observe()).map((a) => a.detail), ['limit 66000 expected, 10016000 found'], 'the latency alone');
    assert.deepEqual((await applyActions(drift, k)).failures, []);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
  });

  it('a tbf made before the burst held a whole frame (16000 at MTU 65535) is drift, and gets MTU + 14', async () => {
    const k = new FakeKernel();
    const state = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), mtu: 65_535, options: { 'ledgernet.ingress_rate': '8mbit', 'ledgernet.mtu': '65535' } } }, ep);
    assert.deepEqual((await applyActions(plan(desiredFromState(state), await k.observe()), k)).failures, []);
    const shaping = k.calls.find((c) => c.kind === 'applyShaping');
    assert.deepEqual(shaping?.kind === 'applyShaping' ? shaping.changes.flatMap(tcLines) : [], ['qdisc replace dev lnv-e1e1e1e1222 root tbf rate 8000000bit burst 65549 latency 50ms']);
    k.qdiscs.set('lnv-e1e1e1e1222', { dev: 'lnv-e1e1e1e1222', kind: 'tbf', handle: '1:', root: true, parent: null, rate: 1_000_000, burst: 16_000, limit: 66_000 });
    assert.deepEqual(plan(desiredFromState(state), await k.observe()).map((a) => a.detail), ['burst 65549 expected, 16000 found; limit 115549 expected, 66000 found']);
  });
});
