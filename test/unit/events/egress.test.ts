// The egress policy options: the item form, canonical CIDRs, the rules for both options at once,
// and every refusal naming the option and the item.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkNetworkOptions, egressPolicy } from '../../../src/events/domain/options.ts';
import { toGwAllocCheck, toNetworkSpec } from '../../../src/api/wire.ts';
import type { Json } from '../../../src/api/wire.ts';

const V4 = { internal: false, subnets: ['10.231.7.0/24'] };
const V6 = { internal: false, subnets: ['10.231.7.0/24', 'fd00:231:7::/64'] };

describe('egress policy options', () => {
  it('none given: no policy', () => {
    assert.equal(egressPolicy({}), null);
  });

  it('reads CIDRs, bare addresses, protocols, ports and ranges, canonically and in order', () => {
    const p = egressPolicy({
      'ledgernet.egress_deny': ' 10.0.0.0/8, 192.168.0.0/16,203.0.113.7:TCP/443,198.51.100.0/24:udp/5000-5100,192.0.2.1:icmp,10.0.0.0/8,2001:DB8:0::1:tcp/22,fd00::/8:udp',
    });
    assert.deepEqual(p, {
      allow: null,
      deny: [
        { family: 4, cidr: '10.0.0.0/8', proto: null, ports: null },
        { family: 4, cidr: '192.168.0.0/16', proto: null, ports: null },
        { family: 4, cidr: '203.0.113.7/32', proto: 'tcp', ports: [443, 443] },
        { family: 4, cidr: '198.51.100.0/24', proto: 'udp', ports: [5000, 5100] },
        { family: 4, cidr: '192.0.2.1/32', proto: 'icmp', ports: null },
        { family: 6, cidr: '2001:db8::1/128', proto: 'tcp', ports: [22, 22] },
        { family: 6, cidr: 'fd00::/8', proto: 'udp', ports: null },
      ],
    });
  });

  it('an allow-list alone; both at once keep both lists (deny wins when rendered)', () => {
    assert.deepEqual(egressPolicy({ 'ledgernet.egress_allow': '203.0.113.0/24:tcp/443' }), {
      deny: [],
      allow: [{ family: 4, cidr: '203.0.113.0/24', proto: 'tcp', ports: [443, 443] }],
    });
    const both = egressPolicy({ 'ledgernet.egress_allow': '10.0.0.0/8', 'ledgernet.egress_deny': '10.0.0.1' });
    assert.deepEqual(both?.deny.map((r) => r.cidr), ['10.0.0.1/32']);
    assert.deepEqual(both?.allow?.map((r) => r.cidr), ['10.0.0.0/8']);
    assert.doesNotThrow(() => checkNetworkOptions({ 'ledgernet.egress_allow': '10.0.0.0/8', 'ledgernet.egress_deny': '10.0.0.1' }, V4));
  });

  for (const [key, value, why] of [
    ['ledgernet.egress_deny', '10.0.0.0/33', /item "10\.0\.0\.0\/33" is not an IPv4 or IPv6 address or CIDR/],
    ['ledgernet.egress_deny', 'lan', /item "lan" is not an IPv4 or IPv6 address or CIDR/],
    ['ledgernet.egress_deny', '10.0.0.0/08', /item "10\.0\.0\.0\/08" is not/],
    ['ledgernet.egress_deny', '10.1.2.3/8', /item "10\.1\.2\.3\/8" has host bits set: say 10\.0\.0\.0\/8 or 10\.1\.2\.3/],
    ['ledgernet.egress_deny', '10.0.0.0/8,', /item "" is empty/],
    ['ledgernet.egress_allow', '', /item "" is empty/],
    ['ledgernet.egress_allow', '203.0.113.0/24:tcp/0', /item "203\.0\.113\.0\/24:tcp\/0" has port 0, not one from 1 to 65535/],
    ['ledgernet.egress_allow', '203.0.113.0/24:tcp/65536', /has port 65536/],
    ['ledgernet.egress_allow', '203.0.113.0/24:tcp/443-80', /port range 443-80, whose low end is above its high end/],
    ['ledgernet.egress_allow', '203.0.113.0/24:icmp/8', /gives a port for icmp/],
    ['ledgernet.egress_allow', '203.0.113.0/24:sctp/9', /item "203\.0\.113\.0\/24:sctp\/9" is not an IPv4 or IPv6 address or CIDR/],
    ['ledgernet.egress_allow', 'fd00::%eth0/8', /is not an IPv4 or IPv6/],
  ] as const) {
    it(`refuses ${key}=${value} naming the item and the form`, () => {
      assert.throws(() => checkNetworkOptions({ [key]: value }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'LN_ERR_INVALID_OPTION');
        assert.match(e.message, new RegExp(`^option ${key.replace('.', '\\.')}=`));
        assert.match(e.message, why);
        assert.match(e.message, /expected a list of CIDR\[:PROTO\[\/PORT\[-PORT\]\]\] items/);
        return true;
      });
    });
  }

  it('refuses what the network cannot use, naming it: IPv6 without IPv6, --internal, a deny item inside its own subnet', () => {
    assert.throws(() => checkNetworkOptions({ 'ledgernet.egress_deny': '10.0.0.0/8,fc00::/7' }, V4), {
      code: 'LN_ERR_INVALID_OPTION',
      message: 'option ledgernet.egress_deny: item fc00::/7 is IPv6, but the network has no IPv6 subnet (create it with --ipv6 and an IPv6 --subnet)',
    });
    assert.throws(() => checkNetworkOptions({ 'ledgernet.egress_allow': '2001:db8::/32:tcp/443' }, V4), /egress_allow: item 2001:db8::\/32 is IPv6/);
    assert.doesNotThrow(() => checkNetworkOptions({ 'ledgernet.egress_deny': '10.0.0.0/8,fc00::/7' }, V6));
    assert.throws(() => checkNetworkOptions({ 'ledgernet.egress_deny': '10.0.0.0/8' }, { ...V4, internal: true }), {
      message: 'option ledgernet.egress_deny cannot be used with --internal: nothing leaves an internal network anyway',
    });
    assert.throws(
      () => checkNetworkOptions({ 'ledgernet.egress_deny': '10.0.0.0/8', 'ledgernet.egress_allow': '10.0.0.0/8' }, { ...V4, internal: true }),
      /option ledgernet\.egress_deny and ledgernet\.egress_allow cannot be used with --internal/,
    );
    assert.throws(() => checkNetworkOptions({ 'ledgernet.egress_deny': '10.231.7.5:tcp/80' }, V4), {
      message: "option ledgernet.egress_deny: item 10.231.7.5/32 lies inside the network's own subnet 10.231.7.0/24, which always stays reachable; the item would do nothing",
    });
    // A deny item that contains the own subnet is fine (the subnet is left out), as is an allow item inside it.
    assert.doesNotThrow(() => checkNetworkOptions({ 'ledgernet.egress_deny': '10.0.0.0/8', 'ledgernet.egress_allow': '10.231.7.0/25' }, V4));
  });

  it("Docker 28's GwAllocCheck (no subnets yet) lets IPv6 items of an --ipv6 network through; CreateNetwork checks them", () => {
    const options = (ipv6: boolean) => ({
      'com.docker.network.enable_ipv6': ipv6,
      'com.docker.network.generic': { 'ledgernet.egress_deny': '2001:db8::/32', 'ledgernet.egress_allow': '0.0.0.0/0,::/0' },
    });
    assert.deepEqual(toGwAllocCheck('NetworkDriver.GwAllocCheck', { Options: options(true) }), { SkipIPv4: false, SkipIPv6: false });
    // CreateNetwork, which has the subnets, still refuses the items a network without IPv6 cannot use.
    const create = (v6: Json[]) => ({ NetworkID: 'e'.repeat(64), Options: options(v6.length > 0), IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.231.7.0/24', Gateway: '10.231.7.1/24' }], IPv6Data: v6 });
    assert.throws(() => toNetworkSpec('NetworkDriver.CreateNetwork', create([])), /NetworkDriver\.CreateNetwork: option ledgernet\.egress_deny: item 2001:db8::\/32 is IPv6, but the network has no IPv6 subnet/);
    assert.doesNotThrow(() => toNetworkSpec('NetworkDriver.CreateNetwork', create([{ AddressSpace: 'LocalDefault', Pool: 'fd00:231:7::/64', Gateway: 'fd00:231:7::1/64' }])));
  });
});
