// IPv6 NAT and published ports (Docker 27+ bridge parity) and the host address options
// (host_ipv4/host_ipv6 SNAT, host_binding_ipv4), over both renderers: the iptables backend's
// rules (plan golden, applied to the fake kernel, converged, drift of a deleted rule planned back)
// and the nftables backend's table (elements, chains, statements).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../../src/events/domain/decide.ts';
import { checkNetworkOptions } from '../../../src/events/domain/options.ts';
import { renderTable } from '../../../src/kernel/nftables/render.ts';
import { describeRule } from '../../../src/kernel/nftables/describe.ts';
import type { FirewallChange } from '../../../src/kernel/types.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { endpointSpec, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { withIpv6 } from '../../helpers/firewall-states.ts';
import { assertGolden } from '../../helpers/golden.ts';
import { EP_E, EP_F, NAT6_COMMANDS, NET_E, NET_F } from '../../helpers/nat6-states.ts';
import { flatWrites } from '../../helpers/iptables-flat.ts';
import { given } from '../../helpers/state.ts';

const E = NET_E.slice(0, 11);
const F = NET_F.slice(0, 11);
const chainOf = (actions: readonly { kind: string }[], table: string, chain: string): readonly string[] => {
  const a = (actions as FirewallChange[]).find((x) => x.kind === 'chain.write' && x.table === table && x.chain === chain);
  return a?.kind === 'chain.write' ? a.rules : [];
};

describe('IPv6 NAT, iptables backend', () => {
  it('masquerade or SNAT by family, DNAT per family of the host address, hairpin; golden; converges', async () => {
    const k = new FakeKernel();
    const actions = plan(desiredFromState(given(...NAT6_COMMANDS)), await k.observe());
    assertGolden('plans/nat6=snat+ports+hairpin,actual=empty.txt', renderPlan(actions));
    const nat6 = chainOf(actions, 'nat6', 'LEDGERNET-POSTROUTING');
    assert.deepEqual(nat6, [
      `-s fd00:231:11::/64 ! -o lnb-${E} -m comment --comment "ledgernet:network:${NET_E}:masquerade" -j SNAT --to-source 2001:db8::44`,
      `-s fd00:231:11::/64 -o lnb-${E} -m conntrack --ctstate DNAT -m comment --comment "ledgernet:network:${NET_E}:hairpin" -j MASQUERADE`,
      `-s fd00:231:12::/64 -o lnb-${F} -m conntrack --ctstate DNAT -m comment --comment "ledgernet:network:${NET_F}:hairpin" -j MASQUERADE`,
    ], 'E SNATs to host_ipv6; F (masquerade=false) is not NATed on egress, only hairpin');
    const port = (id: string) => `-m comment --comment "ledgernet:endpoint:${id}:port"`;
    assert.deepEqual(chainOf(actions, 'nat6', 'LEDGERNET-DNAT'), [
      `-p tcp -m tcp --dport 8080 ${port(EP_E)} -j DNAT --to-destination [fd00:231:11::2]:80`,
      `-p tcp -m tcp --dport 8082 ${port(EP_E)} -j DNAT --to-destination [fd00:231:11::2]:82`,
      `-d fd00:99::1/128 -p tcp -m tcp --dport 8083 ${port(EP_E)} -j DNAT --to-destination [fd00:231:11::2]:83`,
      `-p udp -m udp --dport 9000:9002 ${port(EP_E)} -j DNAT --to-destination [fd00:231:11::2]:8000-8002/9000`,
      `-p tcp -m tcp --dport 8090 ${port(EP_F)} -j DNAT --to-destination [fd00:231:12::2]:80`,
    ], 'no address: both families; 0.0.0.0 only IPv4; :: and an IPv6 address only IPv6');
    // IPv4: 8080 (no address) and 8081 (0.0.0.0) are consecutive with the same offset, so one range.
    assert.deepEqual(chainOf(actions, 'nat', 'LEDGERNET-DNAT'), [
      `-p tcp -m tcp --dport 8080:8081 ${port(EP_E)} -j DNAT --to-destination 10.231.11.2:80-81/8080`,
      `-p udp -m udp --dport 9000:9002 ${port(EP_E)} -j DNAT --to-destination 10.231.11.2:8000-8002/9000`,
    ]);
    assert.ok(flatWrites(actions, 'nat', 'LEDGERNET-POSTROUTING').includes(`-s 10.231.11.0/24 ! -o lnb-${E} -m comment --comment "ledgernet:network:${NET_E}:masquerade" -j SNAT --to-source 192.0.2.44`));
    const filter6 = flatWrites(actions, 'filter6');
    assert.ok(filter6.includes(`-o lnb-${E} -m conntrack --ctstate DNAT -m comment --comment "ledgernet:network:${NET_E}:published" -j ACCEPT`), 'IPv6 published ports are let in');

    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.ok(k.calls.some((c) => c.kind === 'restoreIptables' && c.table === 'nat6'));
    assert.deepEqual(plan(desiredFromState(given(...NAT6_COMMANDS)), await k.observe()), []);
    // A rule deleted by hand is planned back, in the IPv6 nat table alone.
    k.nat6.get('LEDGERNET-POSTROUTING')!.rules.splice(0, 1);
    const drift = plan(desiredFromState(given(...NAT6_COMMANDS)), await k.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${'table' in a ? a.table : ''} ${a.reason}`), ['chain.write nat6 drifted']);
    assert.match(renderPlan(drift), /\+ -s fd00:231:11::\/64 ! -o lnb-eeeeeeee444 .* -j SNAT --to-source 2001:db8::44/);
  });

  it('no IPv6 NAT at all for an IPv4-only network, an --internal one, or without ip6tables', async () => {
    const k = new FakeKernel();
    k.ipv6 = false;
    const actions = plan(desiredFromState(given(...NAT6_COMMANDS)), await k.observe());
    assert.ok(actions.every((a) => !('table' in a) || (a.table !== 'nat6' && a.table !== 'filter6')));
    const internal = given({ type: 'CreateNetwork', spec: withIpv6({ ...networkSpec(NET_E), internal: true }, 7) });
    assert.ok(plan(desiredFromState(internal), await new FakeKernel().observe()).every((a) => !('table' in a) || a.table !== 'nat6'));
  });
});

describe('IPv6 NAT, nftables backend', () => {
  const table = () => renderTable(desiredFromState(given(...NAT6_COMMANDS)).firewall);
  const elements = (set: string) => (table()?.sets.get(set)?.elements ?? []).map((e) => JSON.stringify(e.value));

  it('IPv6 ports are elements of the dnat6/bound6 maps; 0.0.0.0 stays IPv4, :: IPv6', () => {
    assert.deepEqual(elements('dnat6_addr'), [
      '[{"concat":["tcp",8080]},"fd00:231:11::2"]',
      '[{"concat":["tcp",8082]},"fd00:231:11::2"]',
      '[{"concat":["udp",9000]},"fd00:231:11::2"]',
      '[{"concat":["udp",9001]},"fd00:231:11::2"]',
      '[{"concat":["udp",9002]},"fd00:231:11::2"]',
      '[{"concat":["tcp",8090]},"fd00:231:12::2"]',
    ]);
    assert.deepEqual(elements('bound6_addr'), ['[{"concat":["fd00:99::1","tcp",8083]},"fd00:231:11::2"]']);
    assert.ok(elements('dnat_addr').some((e) => e.includes('8081')) && !elements('dnat_addr').some((e) => e.includes('8082')));
  });

  it('masq6 leads IPv6 pools to SNAT (host_ipv6) or masquerade; hairpin in the nat chain; IPv4 SNAT to host_ipv4', () => {
    const t = table();
    assert.deepEqual(elements('masq6'), [`[{"prefix":{"addr":"fd00:231:11::","len":64}},{"jump":{"target":"net-${NET_E}-masq6"}}]`], 'F has masquerade off');
    const rules = (chain: string) => (t?.chains.get(chain)?.rules ?? []).map((r) => describeRule(r));
    assert.deepEqual(rules(`net-${NET_E}-masq6`), [`oifname "lnb-${E}" return`, 'snat ip6 to 2001:db8::44']);
    assert.deepEqual(rules(`net-${NET_E}-masq`), [`oifname "lnb-${E}" return`, 'snat ip to 192.0.2.44']);
    assert.deepEqual(rules(`net-${NET_F}-nat`), ['ip6 saddr fd00:231:12::/64 ct status dnat masquerade'], 'no IPv4 port: only IPv6 hairpin');
    assert.ok(rules('postrouting').includes('ip6 saddr vmap @masq6'));
    assert.ok(rules('prerouting').some((r) => r.includes('dnat ip6 to') && r.includes('@dnat6_addr')));
    // icc=false with IPv6: hairpin and published ports accepted for both families.
    // (one accept per family: each family's gateway mode decides what comes in, gateway-mode.ts)
    assert.ok(rules(`net-${NET_F}-to`).includes('meta nfproto ipv4 ct status dnat accept'));
    assert.ok(rules(`net-${NET_F}-to`).includes('meta nfproto ipv6 ct status dnat accept'));
  });
});

describe('host addresses (host_ipv4, host_ipv6, host_binding_ipv4)', () => {
  const v6 = { internal: false, subnets: ['10.231.7.0/24', 'fd00:231:7::/64'] };
  it('parsed canonical; refused where they would be ignored', () => {
    assert.deepEqual(checkNetworkOptions({ 'com.docker.network.host_ipv6': '2001:DB8:0::44' }, v6).mtu, 1500);
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.host_ipv4': '192.0.2.1' }, { internal: true, subnets: ['10.231.7.0/24'] }), /would be ignored: an --internal network is never NATed/);
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.host_ipv6': 'ff02::1' }, v6), /expected an IPv6 unicast address/);
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.bridge.host_binding_ipv4': '224.0.0.1' }, v6), /is invalid: expected an IP address/);
    // GwAllocCheck knows no subnets yet: only CreateNetwork refuses for want of IPv6.
    assert.doesNotThrow(() => checkNetworkOptions({ 'com.docker.network.host_ipv6': '2001:db8::44' }, { internal: false, subnets: [] }));
  });

  it('host_binding_ipv4 gives ports without an address their host address, IPv4 or IPv6 (then IPv6 only)', () => {
    const spec = { ...withIpv6(networkSpec(NET_E), 7), options: { 'com.docker.network.bridge.host_binding_ipv4': 'FD00:99::0:1' } };
    const state = given({ type: 'CreateNetwork', spec }, { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_E, EP_E), addressV6: 'fd00:231:7::2/64' } });
    const events = decide({ type: 'ProgramExternal', networkId: NET_E, endpointId: EP_E, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }] }, state);
    const data = events[0]?.data as unknown as { portmap: { hostIp: string }[] };
    assert.equal(data.portmap[0]?.hostIp, 'fd00:99::1');
    const after = given({ type: 'CreateNetwork', spec }, { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_E, EP_E), addressV6: 'fd00:231:7::2/64' } }, {
      type: 'ProgramExternal', networkId: NET_E, endpointId: EP_E, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }],
    });
    const fw = desiredFromState(after).firewall.networks[0];
    assert.deepEqual(fw?.forwards, [], 'no IPv4 forward');
    assert.deepEqual(fw?.nat6?.forwards.map((f) => `${f.hostIp} ${f.hostPorts[0]} ${f.ip}`), ['fd00:99::1 8080 fd00:231:7::2']);
  });
});
