// Network states with every IPv6 NAT shape (Docker 27+ bridge parity), shared by the renderer
// unit tests and the round trips through a real ip6tables and nft (integration).
import type { Command } from '../../src/events/domain/commands.ts';
import type { PortBinding } from '../../src/events/domain/types.ts';
import { endpointSpec, networkSpec } from './events.ts';
import { withIpv6 } from './firewall-states.ts';

export const NET_E = 'eeeeeeee' + '4'.repeat(56);
export const NET_F = 'ffffffff' + '5'.repeat(56);
export const EP_E = 'e5'.repeat(4) + '6'.repeat(56);
export const EP_F = 'e6'.repeat(4) + '7'.repeat(56);

const bind = (proto: number, hostPort: number, port: number, hostIp = ''): PortBinding => ({ proto, port, hostIp, hostPort, hostPortEnd: hostPort });

/**
 * E: IPv6, SNAT to host_ipv4/host_ipv6, an endpoint publishing on no address (both families),
 * 0.0.0.0 (IPv4 only), :: (IPv6 only), an IPv6 address, and a udp range on both families.
 * F: IPv6, masquerade off and icc off, publishing on :: (IPv6 DNAT and hairpin, no masquerade).
 */
export const NAT6_COMMANDS: readonly Command[] = [
  {
    type: 'CreateNetwork',
    spec: withIpv6(
      { ...networkSpec(NET_E, '10.231.11.0/24', '10.231.11.1/24'), options: { 'com.docker.network.host_ipv4': '192.0.2.44', 'com.docker.network.host_ipv6': '2001:db8::44' } },
      11,
    ),
  },
  {
    type: 'CreateNetwork',
    spec: withIpv6({ ...networkSpec(NET_F, '10.231.12.0/24', '10.231.12.1/24'), options: { 'ledgernet.masquerade': 'false', 'ledgernet.icc': 'false' } }, 12),
  },
  { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_E, EP_E, '10.231.11.2/24'), addressV6: 'fd00:231:11::2/64' } },
  { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_F, EP_F, '10.231.12.2/24'), addressV6: 'fd00:231:12::2/64' } },
  {
    type: 'ProgramExternal',
    networkId: NET_E,
    endpointId: EP_E,
    portmap: [
      bind(6, 8080, 80),
      bind(6, 8081, 81, '0.0.0.0'),
      bind(6, 8082, 82, '::'),
      bind(6, 8083, 83, 'fd00:99::1'),
      bind(17, 9000, 8000),
      bind(17, 9001, 8001),
      bind(17, 9002, 8002),
    ],
  },
  { type: 'ProgramExternal', networkId: NET_F, endpointId: EP_F, portmap: [bind(6, 8090, 80, '::')] },
];
