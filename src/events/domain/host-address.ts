// The host addresses a network's options name for publishing and NAT, with the bridge driver's
// names and meaning (moby daemon/libnetwork/drivers/bridge): `host_binding_ipv4`, the default host
// address of `-p` without one (despite its name IPv4 or IPv6, as Docker 27+ reads it), and
// `com.docker.network.host_ipv4` / `host_ipv6`, the source address egress is SNATed to instead of
// masquerade. Pure: parsers for the option table (options.ts) and the checks against the network.
import { DriverError } from '../../errors.ts';
import { formatIp, parseIp } from './cidr.ts';

export const HOST_BINDING_FORM =
  'an IP address: the host address of ports published without one (-p 8080:80); 0.0.0.0, the default, means every address of both families, :: every IPv6 address';
export const HOST_IPV4_FORM = 'an IPv4 unicast address: the source address of IPv4 egress (SNAT) instead of masquerade';
export const HOST_IPV6_FORM = 'an IPv6 unicast address: the source address of IPv6 egress (SNAT) instead of masquerade';

const MULTICAST4 = 0xe0000000n;
const MULTICAST6 = 0xffn << 120n;

function invalid(key: string, v: string, form: string): DriverError {
  return new DriverError('LN_ERR_INVALID_OPTION', `option ${key}=${v} is invalid: expected ${form}`);
}

/** `host_binding_ipv4`: canonical text; not multicast (::1 is served by the in-daemon proxy). */
export function parseHostBinding(key: string, v: string): string {
  const a = unmapped(parseIp(v));
  const multicast = a !== null && (a.family === 4 ? a.value >= MULTICAST4 : a.value >= MULTICAST6);
  if (!a || multicast) throw invalid(key, v, HOST_BINDING_FORM);
  return formatIp(a.family, a.value);
}

const MAPPED4 = 0xffffn << 32n;

/** An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address it is, as Go (and so Docker) reads it. */
function unmapped(a: { family: 4 | 6; value: bigint } | null): { family: 4 | 6; value: bigint } | null {
  return a !== null && a.family === 6 && a.value >> 32n === 0xffffn ? { family: 4, value: a.value - MAPPED4 } : a;
}

/**
 * A host address the kernel cannot DNAT from: the IPv6 loopback (IPv6 has no route_localnet, so a
 * connection from ::1 NATed to a container never gets its reply). Ports on it are served by the
 * daemon's userland proxy (kernel/proxy/) instead of DNAT rules, as Docker serves them with
 * docker-proxy. `hostIp` is canonical (formatIp).
 */
export function isProxiedHostIp(hostIp: string): boolean {
  return hostIp === '::1';
}

/** `host_ipv4` / `host_ipv6`: a unicast address of the family (not unspecified, loopback, multicast or broadcast). */
export function parseSnatSource(family: 4 | 6): (key: string, v: string) => string {
  return (key, v) => {
    const a = parseIp(v);
    // Not "this network" (0.0.0.0/8), loopback, multicast or broadcast; for IPv6 not link-local
    // (never a source beyond its link) nor IPv4-mapped.
    const bad =
      !a ||
      a.family !== family ||
      a.value === 0n ||
      (family === 4
        ? a.value >> 24n === 0n || a.value >> 24n === 127n || a.value >= MULTICAST4
        : a.value === 1n || a.value >= MULTICAST6 || a.value >> 118n === 0x3fan || a.value >> 32n === 0xffffn);
    if (!a || bad) throw invalid(key, v, family === 4 ? HOST_IPV4_FORM : HOST_IPV6_FORM);
    return formatIp(family, a.value);
  };
}

export interface HostAddresses {
  readonly binding: string | null;
  readonly snat4: string | null;
  readonly snat6: string | null;
}

export interface HostAddressNetwork {
  readonly internal: boolean;
  readonly masquerade: boolean;
  /** The network's subnets, both families; empty when not known yet (GwAllocCheck). */
  readonly subnets: readonly string[];
}

/**
 * Refuses host addresses the network would ignore: an SNAT source on an --internal network or
 * with masquerade off (nothing is NATed), and an IPv6 one (or an IPv6 default binding) on a
 * network without an IPv6 subnet.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the option.
 */
export function checkHostAddressesFor(a: HostAddresses, net: HostAddressNetwork): void {
  const snat = [a.snat4 === null ? null : `com.docker.network.host_ipv4=${a.snat4}`, a.snat6 === null ? null : `com.docker.network.host_ipv6=${a.snat6}`].filter((s) => s !== null);
  for (const given of snat) {
    if (net.internal) throw refused(given, 'an --internal network is never NATed');
    if (!net.masquerade) throw refused(given, 'masquerade is off (enable_ip_masquerade=false), so nothing is NATed');
  }
  const hasV6 = net.subnets.some((s) => s.includes(':'));
  if (net.subnets.length > 0 && !net.subnets.some((s) => !s.includes(':')) && a.snat4 !== null) {
    throw refused(`com.docker.network.host_ipv4=${a.snat4}`, 'the network has no IPv4 subnet (it was created with --ipv4=false)');
  }
  if (net.subnets.length === 0 || hasV6) return;
  if (a.snat6 !== null) throw refused(`com.docker.network.host_ipv6=${a.snat6}`, 'the network has no IPv6 subnet (create it with --ipv6)');
  if (a.binding?.includes(':') && !isProxiedHostIp(a.binding)) {
    throw refused(`com.docker.network.bridge.host_binding_ipv4=${a.binding}`, 'it is an IPv6 address and the network has no IPv6 subnet (create it with --ipv6)');
  }
}

function refused(given: string, why: string): DriverError {
  return new DriverError('LN_ERR_INVALID_OPTION', `option ${given} would be ignored: ${why}`);
}
