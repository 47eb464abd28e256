import type { EndpointSpec, NetworkSpec } from '../../src/events/types.ts';
import { bridgeName, peerName, vethName } from '../../src/events/names.ts';

export const NET_A = 'a'.repeat(8) + '0'.repeat(56);
export const NET_B = 'b'.repeat(8) + '1'.repeat(56);
export const EP_1 = 'e1'.repeat(4) + '2'.repeat(56);
export const EP_2 = 'e2'.repeat(4) + '3'.repeat(56);

export function networkSpec(networkId: string, subnet = '10.231.7.0/24', gateway = '10.231.7.1/24'): NetworkSpec {
  return {
    networkId,
    bridge: bridgeName(networkId),
    mtu: 1500,
    internal: false,
    ipv6: false,
    ipv4Data: [{ pool: subnet, gateway, aux: {} }],
    ipv6Data: [],
    options: {},
  };
}

export function endpointSpec(networkId: string, endpointId: string, address = '10.231.7.2/24'): EndpointSpec {
  return { networkId, endpointId, veth: vethName(endpointId), peer: peerName(endpointId), address, addressV6: null, mac: null };
}
