// Network options at their edges, as Docker passes them (`-o` values are strings): Docker's own
// spellings of booleans, interface names the kernel refuses, host addresses that cannot be a
// source or that Go reads as IPv4, and an MTU IPv6 cannot run on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkNetworkOptions, hostBindingIpv4, networkPolicy } from '../../../src/events/domain/options.ts';
import { toGwAllocCheck, toNetworkSpec } from '../../../src/api/wire.ts';

const V4 = { internal: false, subnets: ['10.231.7.0/24'] };
const V6 = { internal: false, subnets: ['10.231.7.0/24', 'fd00:231:7::/64'] };

describe('network options at their edges', () => {
  it("booleans as Docker's bridge driver reads them (strconv.ParseBool); anything else refused by name", () => {
    for (const v of ['1', 't', 'T', 'true', 'TRUE', 'True']) assert.equal(networkPolicy({ 'com.docker.network.bridge.enable_icc': v }).icc, true, v);
    for (const v of ['0', 'f', 'F', 'false', 'FALSE', 'False']) assert.equal(networkPolicy({ 'com.docker.network.bridge.enable_icc': v }).icc, false, v);
    // The same value spelled two ways under both names is no conflict.
    assert.equal(networkPolicy({ 'ledgernet.icc': 'False', 'com.docker.network.bridge.enable_icc': 'false' }).icc, false);
    assert.throws(() => networkPolicy({ 'ledgernet.masquerade': 'yes' }), /option ledgernet\.masquerade=yes is invalid: expected true or false/);
  });

  it('a bridge name the kernel refuses (. and ..) is refused before anything is recorded', () => {
    for (const name of ['.', '..']) {
      assert.throws(() => checkNetworkOptions({ 'com.docker.network.bridge.name': name }, V4), new RegExp(`option com\\.docker\\.network\\.bridge\\.name=\\${name.split('').join('\\')} is invalid`));
    }
    assert.equal(checkNetworkOptions({ 'ledgernet.bridge': 'br.lan' }, V4).bridge, 'br.lan');
  });

  it('SNAT sources that cannot be one are refused: 0.0.0.0/8, IPv6 link-local, IPv4-mapped IPv6', () => {
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.host_ipv4': '0.0.0.1' }, V4), /option com\.docker\.network\.host_ipv4=0\.0\.0\.1 is invalid: expected an IPv4 unicast address/);
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.host_ipv6': 'fe80::1' }, V6), /host_ipv6=fe80::1 is invalid: expected an IPv6 unicast address/);
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.host_ipv6': '::ffff:10.0.0.1' }, V6), /host_ipv6=::ffff:10\.0\.0\.1 is invalid/);
    assert.doesNotThrow(() => checkNetworkOptions({ 'com.docker.network.host_ipv4': '192.0.2.7', 'com.docker.network.host_ipv6': '2001:db8::7' }, V6));
  });

  it('host_binding_ipv4 given as an IPv4-mapped IPv6 address is the IPv4 address (as Go reads it), on an IPv4-only network too', () => {
    const spec = toNetworkSpec('NetworkDriver.CreateNetwork', {
      NetworkID: 'f'.repeat(64),
      Options: { 'com.docker.network.generic': { 'com.docker.network.bridge.host_binding_ipv4': '::ffff:127.0.0.1' } },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.231.7.0/24', Gateway: '10.231.7.1/24' }],
      IPv6Data: [],
    });
    assert.equal(hostBindingIpv4(spec.options), '127.0.0.1');
  });

  it('an MTU below 1280 on a network with IPv6 is refused at CreateNetwork naming both (the kernel would refuse its gateway)', () => {
    const body = (v6: boolean) => ({
      NetworkID: 'f'.repeat(64),
      Options: { 'com.docker.network.enable_ipv6': v6, 'com.docker.network.generic': { 'com.docker.network.driver.mtu': '1200' } },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.231.7.0/24', Gateway: '10.231.7.1/24' }],
      IPv6Data: v6 ? [{ AddressSpace: 'LocalDefault', Pool: 'fd00:231:7::/64', Gateway: 'fd00:231:7::1/64' }] : [],
    });
    assert.throws(
      () => toNetworkSpec('NetworkDriver.CreateNetwork', body(true)),
      /NetworkDriver\.CreateNetwork: option ledgernet\.mtu \/ com\.docker\.network\.driver\.mtu=1200 is below 1280, the least IPv6 allows, and the network has IPv6; give 1280 or more/,
    );
    assert.equal(toNetworkSpec('NetworkDriver.CreateNetwork', body(false)).mtu, 1200, 'IPv4 only: fine');
    // GwAllocCheck (Docker 28+) does not know the subnets yet: CreateNetwork decides.
    assert.doesNotThrow(() => toGwAllocCheck('NetworkDriver.GwAllocCheck', { Options: body(true).Options }));
  });

  it('on an IPv6-only network (--ipv4=false, Docker 28+) IPv4 egress items and host_ipv4 are refused, as IPv6 ones are on an IPv4-only network', () => {
    const v6only = { internal: false, subnets: ['fd00:231:7::/64'] };
    assert.throws(() => checkNetworkOptions({ 'ledgernet.egress_deny': '192.0.2.0/24' }, v6only), /option ledgernet\.egress_deny: item 192\.0\.2\.0\/24 is IPv4, but the network has no IPv4 subnet \(it was created with --ipv4=false\)/);
    assert.throws(() => checkNetworkOptions({ 'com.docker.network.host_ipv4': '192.0.2.7' }, v6only), /option com\.docker\.network\.host_ipv4=192\.0\.2\.7 would be ignored: the network has no IPv4 subnet/);
    assert.doesNotThrow(() => checkNetworkOptions({ 'ledgernet.egress_deny': '2001:db8::/32', 'com.docker.network.host_ipv6': '2001:db8::7' }, v6only));
  });
});
