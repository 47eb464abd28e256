// Network states that exercise every firewall rule shape, shared by the plan goldens (unit) and
// the round-trip through a real iptables (integration).
import type { Command } from '../../src/events/domain/commands.ts';
import type { NetworkSpec, PortBinding } from '../../src/events/domain/types.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, networkSpec } from './events.ts';

export const NET_C = 'cccccccc' + '2'.repeat(56);
export const EP_3 = 'e3'.repeat(4) + '4'.repeat(56);

const tcp = (hostPort: number, port: number, hostIp = '', hostPortEnd = hostPort): PortBinding => ({ proto: 6, port, hostIp, hostPort, hostPortEnd });

/** The spec with an IPv6 subnet too (`--ipv6 --subnet fd00:231:<n>::/64`). */
export const withIpv6 = (spec: NetworkSpec, n: number): NetworkSpec => ({
  ...spec,
  ipv6: true,
  ipv6Data: [{ pool: `fd00:231:${n}::/64`, gateway: `fd00:231:${n}::1/64`, aux: {} }],
});

/**
 * A: icc off, no masquerade, allow-list, IPv6; B: internal, IPv6; C: default policy with
 * published ports, IPv4 only (so it has no per-network ip6tables rules).
 */
export const FIREWALL_COMMANDS: readonly Command[] = [
  {
    type: 'CreateNetwork',
    spec: withIpv6(
      { ...networkSpec(NET_A), options: { 'ledgernet.icc': 'false', 'ledgernet.masquerade': 'false', 'ledgernet.allow': 'tcp/80,tcp/8000-8100,udp/53,icmp' } },
      7,
    ),
  },
  { type: 'CreateNetwork', spec: withIpv6({ ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), internal: true }, 8) },
  { type: 'CreateNetwork', spec: networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24') },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_C, EP_3, '10.231.9.2/24') },
  { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: [tcp(8080, 80)] },
  {
    type: 'ProgramExternal',
    networkId: NET_C,
    endpointId: EP_3,
    portmap: [
      tcp(9000, 8000),
      tcp(9001, 8001),
      tcp(9002, 8002),
      tcp(8443, 443, '127.0.0.1'),
      { proto: 17, port: 53, hostIp: '', hostPort: 5353, hostPortEnd: 5353 },
      tcp(0, 22),
      tcp(7000, 7000, '', 7010),
    ],
  },
];

export const NET_D = 'dddddddd' + '3'.repeat(56);

/**
 * Egress policy shapes. A: IPv4 and IPv6, egress_deny with both families (a whole range, a host
 * with a port, a port range, icmp) and a published port (so LEDGERNET-INPUT has the localnet drop
 * and the egress jump); B: IPv6, egress_allow (ports, icmp, IPv6) with egress_deny (deny wins);
 * D: IPv6 network, egress_allow with IPv4 items only (IPv6 egress refused whole), custom bridge.
 */
export const EGRESS_COMMANDS: readonly Command[] = [
  {
    type: 'CreateNetwork',
    spec: withIpv6(
      {
        ...networkSpec(NET_A),
        options: { 'ledgernet.egress_deny': '10.0.0.0/8,192.168.0.0/16,203.0.113.7:tcp/443,198.51.100.0/24:udp/5000-5100,192.0.2.1:icmp,fc00::/7,2001:db8::1:tcp/22' },
      },
      7,
    ),
  },
  {
    type: 'CreateNetwork',
    spec: withIpv6(
      {
        ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'),
        options: { 'ledgernet.egress_allow': '203.0.113.0/24:tcp/80,0.0.0.0/0:udp/53,198.51.100.0/24:icmp,2001:db8::/32', 'ledgernet.egress_deny': '203.0.113.9' },
      },
      8,
    ),
  },
  {
    type: 'CreateNetwork',
    spec: withIpv6({ ...networkSpec(NET_D, '10.231.9.0/24', '10.231.9.1/24'), bridge: 'egress0', options: { 'ledgernet.bridge': 'egress0', 'ledgernet.egress_allow': '203.0.113.0/24' } }, 9),
  },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
  { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: [tcp(8080, 80)] },
];

export const NET_E = 'eeeeeeee' + '4'.repeat(56);

/**
 * Egress items nft merges in an anonymous interval set (the nftables backend writes them merged,
 * as they read back): a prefix inside another, adjacent addresses (a /31; a range that is no
 * prefix), IPv6 ones, an IPv4-mapped prefix.
 */
export const EGRESS_MERGED: readonly Command[] = [
  {
    type: 'CreateNetwork',
    spec: withIpv6(
      {
        ...networkSpec(NET_E, '10.231.10.0/24', '10.231.10.1/24'),
        options: { 'ledgernet.egress_deny': '10.1.0.0/24,10.0.0.0/8,203.0.113.2,203.0.113.3,198.51.100.3,198.51.100.4,2001:db8::1,2001:db8::2,::ffff:0:0/96,2001:db8:0:1::/64' },
      },
      10,
    ),
  },
];

const GW4 = 'com.docker.network.bridge.gateway_mode_ipv4';
const GW6 = 'com.docker.network.bridge.gateway_mode_ipv6';
const TRUSTED = 'com.docker.network.bridge.trusted_host_interfaces';

/**
 * Gateway-mode shapes. A: routed (both families), published ports; B: nat-unprotected for IPv4,
 * nat for IPv6, trusted interfaces; C: nat (default) with trusted interfaces and published ports
 * (a range, one on 127.0.0.1); D: isolated (internal), both families.
 */
export const GATEWAY_COMMANDS: readonly Command[] = [
  { type: 'CreateNetwork', spec: withIpv6({ ...networkSpec(NET_A), options: { [GW4]: 'routed', [GW6]: 'routed' } }, 7) },
  {
    type: 'CreateNetwork',
    spec: withIpv6({ ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), options: { [GW4]: 'nat-unprotected', [TRUSTED]: 'eth1:wg0' } }, 8),
  },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24'), options: { [TRUSTED]: 'eth1' } } },
  {
    type: 'CreateNetwork',
    spec: withIpv6({ ...networkSpec(NET_D, '10.231.10.0/24', '10.231.10.1/24'), internal: true, options: { [GW4]: 'isolated', [GW6]: 'isolated' } }, 10),
  },
  { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), addressV6: 'fd00:231:7::2/64' } },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_C, EP_3, '10.231.9.2/24') },
  { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: [tcp(8080, 80), { proto: 17, port: 53, hostIp: '', hostPort: 5353, hostPortEnd: 5353 }] },
  { type: 'ProgramExternal', networkId: NET_B, endpointId: EP_2, portmap: [tcp(8081, 80)] },
  { type: 'ProgramExternal', networkId: NET_C, endpointId: EP_3, portmap: [tcp(9000, 8000), tcp(9001, 8001), tcp(8443, 443, '127.0.0.1')] },
];
