// Docker 28's gateway modes and direct-access protection as policy data (firewall.ts) and as the
// rules of both backends (kernel/iptables/gateway-mode.ts, kernel/nftables/gateway-mode.ts):
// golden plans for every mode, then apply to the in-memory kernel and plan again (nothing left).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkNetworkOptions } from '../../../src/events/domain/options.ts';
import { nftablesFirewall } from '../../../src/kernel/nftables/index.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { GATEWAY_COMMANDS, NET_C, NET_D, withIpv6 } from '../../helpers/firewall-states.ts';
import { NET_A, NET_B, endpointSpec, networkSpec } from '../../helpers/events.ts';

const EP_4 = 'e5'.repeat(4) + '6'.repeat(56);
import { assertGolden } from '../../helpers/golden.ts';
import { flatWrites } from '../../helpers/iptables-flat.ts';
import { given } from '../../helpers/state.ts';

const firewallOnly = (a: { kind: string }) => a.kind.startsWith('chain.') || a.kind.startsWith('hook.') || a.kind.startsWith('nft.');

describe('gateway modes and direct-access protection', () => {
  const desired = desiredFromState(given(...GATEWAY_COMMANDS));
  const net = (id: string) => desired.firewall.networks.find((n) => n.networkId === id);

  it('is typed data: modes per family, trusted interfaces, opened container ports; routed has no NAT; isolated no bridge address', () => {
    assert.deepEqual(net(NET_A)?.gatewayMode, { 4: 'routed', 6: 'routed' });
    assert.deepEqual(net(NET_A)?.masquerade, [], 'routed: no masquerade');
    assert.deepEqual(net(NET_A)?.forwards, [], 'routed: no DNAT');
    assert.equal(net(NET_A)?.published, false, 'routed: no route_localnet, no localhost SNAT');
    assert.deepEqual(net(NET_A)?.opened.map((o) => `${o.proto}/${o.ports[0]} ${o.ip}`), ['tcp/80 10.231.7.2', 'tcp/80 fd00:231:7::2', 'udp/53 10.231.7.2', 'udp/53 fd00:231:7::2']);
    assert.deepEqual(net(NET_B)?.gatewayMode, { 4: 'nat-unprotected', 6: 'nat' });
    assert.deepEqual(net(NET_B)?.trusted, ['eth1', 'wg0']);
    assert.equal(net(NET_B)?.forwards.length, 1, 'nat-unprotected still publishes through DNAT');
    assert.deepEqual(net(NET_C)?.gateways, ['10.231.9.1']);
    assert.deepEqual(desired.bridges.find((b) => b.networkId === NET_D)?.addrs, [], 'isolated: no address on the bridge');
    assert.deepEqual(desired.bridges.find((b) => b.networkId === NET_C)?.addrs, ['10.231.9.1/24']);
  });

  it('routed per family: that family has no masquerade, SNAT (host_ipv4/host_ipv6) or DNAT; the other keeps its NAT', () => {
    const net6 = (gw4: string, gw6: string) => {
      const options = {
        'com.docker.network.bridge.gateway_mode_ipv4': gw4,
        'com.docker.network.bridge.gateway_mode_ipv6': gw6,
        'com.docker.network.host_ipv4': '192.0.2.44',
        'com.docker.network.host_ipv6': '2001:db8::44',
      };
      const state = given(
        { type: 'CreateNetwork', spec: withIpv6({ ...networkSpec(NET_A), options }, 7) },
        { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_4, '10.231.7.4/24'), addressV6: 'fd00:231:7::4/64' } },
        { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_4, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }, { proto: 6, port: 22, hostIp: '', hostPort: 0, hostPortEnd: 0 }] },
      );
      return desiredFromState(state).firewall.networks[0];
    };
    const v6routed = net6('nat', 'routed');
    assert.deepEqual(v6routed?.masquerade, ['10.231.7.0/24']);
    assert.equal(v6routed?.snat4, '192.0.2.44');
    assert.deepEqual(v6routed?.forwards.map((f) => f.hostPorts[0]), [8080, 49153], 'IPv4 still publishes through DNAT');
    assert.equal(v6routed?.nat6, undefined, 'IPv6 routed: no masquerade, SNAT to host_ipv6 or DNAT');
    assert.deepEqual(v6routed?.opened.map((o) => `${o.ports[0]} ${o.ip}`), ['80 10.231.7.4', '80 fd00:231:7::4', '22 10.231.7.4', '22 fd00:231:7::4']);
    const v4routed = net6('routed', 'nat');
    assert.deepEqual(v4routed?.masquerade, [], 'IPv4 routed: no masquerade nor SNAT to host_ipv4');
    assert.deepEqual(v4routed?.forwards, []);
    assert.deepEqual(v4routed?.nat6?.masquerade, ['fd00:231:7::/64']);
    assert.equal(v4routed?.nat6?.snat, '2001:db8::44');
    assert.deepEqual(v4routed?.nat6?.forwards.map((f) => `${f.hostPorts[0]} ${f.ip}`), ['8080 fd00:231:7::4', '49153 fd00:231:7::4'], 'IPv6 NAT still maps host ports, -P chosen too');
  });

  it('routed maps no host port: two containers may publish the same one, and nothing is chosen for -P', () => {
    const twice = given(
      ...GATEWAY_COMMANDS,
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_4, '10.231.7.4/24') },
      { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_4, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }, { proto: 6, port: 22, hostIp: '', hostPort: 0, hostPortEnd: 0 }] },
    );
    assert.deepEqual(twice.endpoints[EP_4]?.portmap.map((p) => p.hostPort), [8080, 0]);
    const opened = desiredFromState(twice).firewall.networks.find((n) => n.networkId === NET_A)?.opened ?? [];
    assert.deepEqual(opened.filter((o) => o.endpointId === EP_4).map((o) => `${o.proto}/${o.ports[0]}`), ['tcp/80', 'tcp/22']);
  });

  it('isolated IPv6: the bridge is created without a link-local address (addrgenmode none); one found is removed', async () => {
    const k = new FakeKernel();
    const first = plan(desired, await k.observe());
    const create = first.find((a) => a.kind === 'bridge.create' && a.name === 'lnb-dddddddd333');
    assert.ok(create?.kind === 'bridge.create' && create.noLinkLocal === true, 'the isolated bridge gets addrgenmode none');
    assert.ok(first.every((a) => a.kind !== 'bridge.create' || a.name === 'lnb-dddddddd333' || a.noLinkLocal === undefined), 'other bridges keep theirs');
    assert.deepEqual((await applyActions(first, k)).failures, []);
    assert.deepEqual(plan(desired, await k.observe()), []);
    // Someone gave it a link-local address and the default address generation back.
    const link = k.links.get('lnb-dddddddd333');
    assert.ok(link);
    link.addrGenMode = 'eui64';
    k.addrs.push({ dev: 'lnb-dddddddd333', family: 'inet6', cidr: 'fe80::1/64', scope: 'link' });
    const drift = renderPlan(plan(desired, await k.observe()));
    assert.match(drift, /~ link\.set lnb-dddddddd333 \(drifted: addrgenmode none expected, eui64 found\)/);
    assert.match(drift, /- addr\.del lnb-dddddddd333 fe80::1\/64/);
  });

  it('iptables: golden plan, and it converges', async () => {
    const k = new FakeKernel();
    const actions = plan({ ...desired, bridges: [], veths: [] }, await k.observe()).filter(firewallOnly);
    assertGolden('plans/gateway-modes,iptables,actual=empty.txt', renderPlan(actions));
    const rules = (table: string, chain: string) => flatWrites(actions, table, chain);
    const direct = rules('mangle', 'LEDGERNET-DIRECT');
    // Only the nat network (C) is guarded for IPv4: routed, nat-unprotected and isolated are not.
    assert.deepEqual(direct.map((r) => r.replace(/ -m comment .* -j/, ' -j')), [
      '-d 10.231.9.1/32 -j RETURN',
      '-d 10.231.9.0/24 -i eth1 -j RETURN',
      '-d 10.231.9.0/24 ! -i lnb-cccccccc222 -j DROP',
    ]);
    assert.deepEqual(rules('mangle6', 'LEDGERNET-DIRECT').filter((r) => r.endsWith('DROP')).length, 1, 'IPv6: B is nat, so guarded');
    const fwd = rules('filter', 'LEDGERNET-FORWARD');
    assert.ok(fwd.some((r) => /^-d 10\.231\.7\.2\/32 -o lnb-aaaaaaaa000 -p tcp -m tcp --dport 80 .*:routed" -j ACCEPT$/.test(r)), 'routed opens the container port');
    assert.ok(fwd.some((r) => /^-d 10\.231\.9\.2\/32 -i eth1 -o lnb-cccccccc222 -p tcp -m tcp --dport 8000 .*:trusted" -j ACCEPT$/.test(r)), 'trusted: published container port');
    assert.ok(fwd.some((r) => /^-o lnb-bbbbbbbb111 .*:unprotected" -j ACCEPT$/.test(r)), 'nat-unprotected lets everything in');
    assert.ok(!rules('nat', 'LEDGERNET-DNAT').some((r) => r.includes('--dport 8080 ')), 'routed: no DNAT');
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.deepEqual(plan({ ...desired, bridges: [], veths: [] }, await k.observe()).filter(firewallOnly), []);
  });

  it('nftables: golden plan; the protection is a lookup in direct4/direct6, one element per guarded subnet', async () => {
    const k = new FakeKernel();
    const snap = { ...(await k.observe()), nftables: null };
    const actions = plan({ ...desired, bridges: [], veths: [] }, snap, nftablesFirewall).filter((a) => a.kind.startsWith('nft.'));
    assertGolden('plans/gateway-modes,nftables,actual=empty.txt', renderPlan(actions));
    const set = (name: string) => actions.find((a) => a.kind === 'nft.set.write' && a.set === name);
    const keys = (name: string) => {
      const s = set(name);
      return s?.kind === 'nft.set.write' ? s.elements.map((e) => JSON.stringify((e as unknown[])[0])) : [];
    };
    assert.deepEqual(keys('direct4'), ['{"prefix":{"addr":"10.231.9.0","len":24}}']);
    assert.deepEqual(keys('direct6'), ['{"prefix":{"addr":"fd00:231:8::","len":64}}']);
    assert.deepEqual(keys('masq').length, 2, 'B and C masquerade, routed A does not');
  });
});

describe('inhibit_ipv4 (com.docker.network.bridge.inhibit_ipv4)', () => {
  const withOptions = (options: Record<string, string>) =>
    given({ type: 'CreateNetwork', spec: withIpv6({ ...networkSpec(NET_A), options }, 7) }, { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_4, '10.231.7.4/24'), addressV6: 'fd00:231:7::4/64' } });

  it('no IPv4 address on the bridge, the IPv4 ones found there are the operator\'s; IPv6, NAT and the containers as without it', () => {
    const on = desiredFromState(withOptions({ 'com.docker.network.bridge.inhibit_ipv4': 'true' }));
    const off = desiredFromState(withOptions({ 'com.docker.network.bridge.inhibit_ipv4': 'false' }));
    assert.deepEqual(on.bridges[0]?.addrs, ['fd00:231:7::1/64']);
    assert.equal(on.bridges[0]?.foreignIpv4, true);
    assert.deepEqual(off.bridges[0]?.addrs, ['10.231.7.1/24', 'fd00:231:7::1/64']);
    assert.equal(off.bridges[0]?.foreignIpv4, false);
    assert.deepEqual(on.firewall.networks[0]?.masquerade, off.firewall.networks[0]?.masquerade);
    assert.deepEqual(on.veths, off.veths);
  });

  it('a value other than true or false is refused, naming the option and its form', () => {
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.bridge.inhibit_ipv4': 'yes' }), /com\.docker\.network\.bridge\.inhibit_ipv4.*yes.*true or false/);
    assert.doesNotThrow(() => checkNetworkOptions({ 'com.docker.network.bridge.inhibit_ipv4': 'true' }));
  });
});
