// Docker's PascalCase JSON <-> domain commands. Every field is checked here, so that a bad call
// is refused with a message naming the field before anything is written.
import { randomBytes } from 'node:crypto';
import { DriverError, isDriverError } from '../errors.ts';
import {
  capturesHost,
  contains,
  formatAddrLen,
  formatIp,
  formatPrefix,
  isNetworkOrBroadcast,
  overlaps,
  parseAddrLen,
  parseIp,
  parsePrefix,
  type AddrLen,
  type Prefix,
} from '../events/domain/cidr.ts';
import { bridgeName, peerName, vethName } from '../events/domain/naming.ts';
import { checkNetworkOptions, DOCKER_NETWORK_FLAGS, gatewayModes } from '../events/domain/options.ts';
import { portGivenTwice, PROTO_NAME } from '../events/domain/ports.ts';
import type { EndpointSpec, IpamData, NetworkSpec, PortBinding } from '../events/domain/types.ts';

export type Json = Record<string, unknown>;

const ID = /^[0-9a-f]{64}$/;

function bad(method: string, msg: string): DriverError {
  return new DriverError('LN_ERR_BAD_REQUEST', `${method}: ${msg}`);
}

/** Parses a raw body. Empty bodies are `{}` for calls without parameters, an error otherwise. */
export function parseBody(method: string, raw: string, needsBody: boolean): Json {
  if (raw.trim() === '') {
    if (!needsBody) return {};
    throw bad(
      method,
      'the request body is empty. Docker re-sends a call with an empty body when its first attempt was cut off ' +
        '(moby/moby#39331); nothing was changed, run the docker command again',
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw bad(method, `the request body is not valid JSON (${(e as Error).message}); nothing was changed`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(method, 'the request body must be a JSON object');
  return v as Json;
}

export function id(method: string, body: Json, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || !ID.test(v)) {
    throw bad(method, `${field} must be a 64-character hex id, got ${JSON.stringify(v) ?? 'nothing'}`);
  }
  return v;
}

function obj(method: string, v: unknown, field: string): Json {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(method, `${field} must be an object`);
  return v as Json;
}

/** A CIDR with its host bits (an interface address, a gateway), canonical. */
function cidr(method: string, v: unknown, field: string, family: 4 | 6): string {
  const a = typeof v === 'string' ? parseAddrLen(v) : null;
  if (!a || a.family !== family) {
    throw bad(method, `${field} must be an IPv${family} CIDR such as ${family === 6 ? 'fd00::1/64' : '10.231.7.1/24'}, got ${JSON.stringify(v) ?? 'nothing'}`);
  }
  return formatAddrLen(a);
}

function ipamList(method: string, v: unknown, field: string, family: 4 | 6): IpamData[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(method, `${field} must be a list`);
  const out = v.map((item: unknown, i): IpamData & { prefix: Prefix } => {
    const at = `${field}[${i}]`;
    const d = obj(method, item, at);
    const p = typeof d['Pool'] === 'string' ? parsePrefix(d['Pool']) : null;
    if (!p || p.family !== family) {
      throw bad(method, `${at}.Pool must be an IPv${family} subnet such as ${family === 6 ? 'fd00:231:1::/64' : '10.231.7.0/24'}, got ${JSON.stringify(d['Pool']) ?? 'nothing'}`);
    }
    const pool = formatPrefix(p);
    const why = capturesHost(p);
    if (why) {
      throw new DriverError(
        'LN_ERR_INVALID_OPTION',
        `${method}: ${at}.Pool ${pool} is refused: ${why}; give the network a --subnet of its own` +
          (p.len === 0 ? ' (--ipam-driver null is not supported)' : ''),
      );
    }
    const inside = (raw: unknown, what: string, gateway: boolean): string => {
      const text = cidr(method, raw, what, family);
      const a = parseAddrLen(text) as AddrLen;
      const problem = !contains(p, a.family, a.value)
        ? 'is outside'
        : isNetworkOrBroadcast(p, a.value)
          ? 'is the network or broadcast address of'
          : gateway && a.len !== p.len
            ? 'must have the prefix length of'
            : null;
      if (problem) throw bad(method, `${what} ${text} ${problem} the pool ${pool}`);
      return text;
    };
    const gw = d['Gateway'];
    const aux = obj(method, d['AuxAddresses'], `${at}.AuxAddresses`);
    const space = addressSpace(method, d['AddressSpace'], `${at}.AddressSpace`);
    return {
      prefix: p,
      pool,
      gateway: gw === undefined || gw === null || gw === '' ? null : inside(gw, `${at}.Gateway`, true),
      aux: Object.fromEntries(Object.entries(aux).map(([k, a]) => [name(method, k, `${at}.AuxAddresses key`), inside(a, `${at}.AuxAddresses.${k}`, false)])),
      ...(space === null ? {} : { addressSpace: space }),
    };
  });
  for (const [i, a] of out.entries()) {
    const j = out.findIndex((b) => overlaps(a.prefix, b.prefix));
    if (j !== i) throw bad(method, `${field}[${j}].Pool ${out[j]?.pool} and ${field}[${i}].Pool ${a.pool} overlap`);
  }
  return out.map(({ prefix: _p, ...d }) => d);
}

const MAX_KEY = 255;
const MAX_VALUE = 4096;

/**
 * An IPAM entry's AddressSpace (whose pool it is: ledgernet IPAM's `ledgernet-local`, Docker's
 * `LocalDefault`, …), or null when Docker sent none.
 */
function addressSpace(method: string, v: unknown, what: string): string | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string' || Buffer.byteLength(v) > MAX_KEY) throw bad(method, `${what} must be a name of at most ${MAX_KEY} bytes, got ${JSON.stringify(v)?.slice(0, 64)}`);
  return v;
}

/** A map key from Docker (an option or aux address name): bounded, and never `__proto__`. */
function name(method: string, k: string, what: string): string {
  if (k === '' || k === '__proto__' || Buffer.byteLength(k) > MAX_KEY) {
    throw bad(method, `${what} ${JSON.stringify(k.slice(0, 64))} must be 1 to ${MAX_KEY} bytes and not __proto__`);
  }
  return k;
}

function genericOptions(method: string, v: unknown): Record<string, string> {
  const g = obj(method, v, 'Options["com.docker.network.generic"]');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(g)) {
    name(method, k, 'option name');
    if (typeof val !== 'string') throw bad(method, `option ${k} must be a string, got ${JSON.stringify(val)?.slice(0, 64)}`);
    if (Buffer.byteLength(val) > MAX_VALUE) throw bad(method, `option ${k} is longer than ${MAX_VALUE} bytes`);
    out[k] = val;
  }
  return out;
}

/** Docker's own flags in CreateNetwork's Options: each a boolean when present. */
function flag(method: string, options: Json, key: string): boolean {
  const v = options[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw bad(method, `Options["${key}"] must be true or false, got ${JSON.stringify(v)?.slice(0, 64)}`);
  return v;
}

/**
 * CreateNetwork's (and GwAllocCheck's) Options, checked: Docker's flags, and the `-o` options
 * (com.docker.network.generic) against the option table.
 */
function networkOptions(method: string, body: Json, forCreate: boolean) {
  const options = obj(method, body['Options'], 'Options');
  for (const k of Object.keys(options)) {
    if (k.startsWith('com.docker.network.') && k !== 'com.docker.network.generic' && !(DOCKER_NETWORK_FLAGS as readonly string[]).includes(k)) {
      throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: Options key ${k} is not supported by ledgernet (it would be ignored)`);
    }
  }
  const generic = genericOptions(method, options['com.docker.network.generic']);
  flag(method, options, 'com.docker.network.enable_ipv4');
  const internal = flag(method, options, 'com.docker.network.internal');
  const ipv6 = flag(method, options, 'com.docker.network.enable_ipv6');
  // GwAllocCheck carries no IPAM data; CreateNetwork does, and the egress options are checked against it.
  const ipv4Data = forCreate ? ipamList(method, body['IPv4Data'], 'IPv4Data', 4) : [];
  const ipv6Data = forCreate ? ipamList(method, body['IPv6Data'], 'IPv6Data', 6) : [];
  try {
    const checked = checkNetworkOptions(generic, { internal, subnets: [...ipv4Data, ...ipv6Data].map((d) => d.pool) });
    return { generic, internal, ipv6, checked, gateway: gatewayModes(generic, internal), ipv4Data, ipv6Data };
  } catch (e) {
    if (!isDriverError(e)) throw e;
    throw new DriverError(e.code, `${method}: ${e.message}`);
  }
}

export function toNetworkSpec(method: string, body: Json): NetworkSpec {
  const networkId = id(method, body, 'NetworkID');
  const { generic, internal, ipv6, checked, ipv4Data, ipv6Data } = networkOptions(method, body, true);
  return {
    networkId,
    bridge: checked.bridge ?? bridgeName(networkId),
    mtu: checked.mtu,
    internal,
    ipv6,
    ipv4Data,
    ipv6Data,
    options: generic,
  };
}

/**
 * GwAllocCheck (Docker 28+): whether Docker should reserve no gateway address, per family. Only
 * the `isolated` gateway mode has none, as in Docker's bridge driver. Bad options are refused
 * here as CreateNetwork would refuse them.
 */
export function toGwAllocCheck(method: string, body: Json): { SkipIPv4: boolean; SkipIPv6: boolean } {
  const { gateway } = networkOptions(method, body, false);
  return { SkipIPv4: gateway.v4 === 'isolated', SkipIPv6: gateway.v6 === 'isolated' };
}

/**
 * CreateEndpoint's request: the endpoint as Docker gives it (`mac` is Docker's, e.g. from
 * `--mac-address`), and the MAC its `--driver-opt ledgernet.mac=…` asks for, or null.
 */
export function toEndpointSpec(method: string, body: Json): { readonly spec: EndpointSpec; readonly requestedMac: string | null } {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  const iface = obj(method, body['Interface'], 'Interface');
  const addr = iface['Address'];
  const addr6 = iface['AddressIPv6'];
  const mac = iface['MacAddress'];
  if (mac !== undefined && mac !== null && mac !== '' && (typeof mac !== 'string' || !MAC.test(mac))) {
    throw bad(method, `Interface.MacAddress must look like 02:42:0a:00:00:02, got ${JSON.stringify(mac)?.slice(0, 64)}`);
  }
  const empty = (v: unknown) => v === undefined || v === null || v === '';
  const dockerMac = typeof mac === 'string' && mac !== '' ? mac.toLowerCase() : null;
  const { ifname, requestedMac } = endpointOptions(method, body['Options']);
  if (requestedMac !== null && dockerMac !== null && requestedMac !== dockerMac) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: ${MAC_OPTION}=${requestedMac} and the MAC address Docker gives (${dockerMac}, --mac-address) say different things; give one`);
  }
  const spec: EndpointSpec = {
    networkId,
    endpointId,
    veth: vethName(endpointId),
    peer: peerName(endpointId),
    address: empty(addr) ? null : cidr(method, addr, 'Interface.Address', 4),
    addressV6: empty(addr6) ? null : cidr(method, addr6, 'Interface.AddressIPv6', 6),
    mac: dockerMac,
    ...(ifname === null ? {} : { ifname }),
  };
  return { spec, requestedMac };
}

const MAC = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
const IFNAME_OPTION = 'com.docker.network.endpoint.ifname';
const MAC_OPTION = 'ledgernet.mac';

/**
 * What CreateEndpoint's Options (`--driver-opt`) ask of ledgernet: the container interface name
 * (Docker 28+) and a MAC address (`ledgernet.mac`: Docker 20.10's `network connect` has no
 * --mac-address). Any other `ledgernet.*` key is refused by name: it would be ignored. Docker's
 * own keys (ports, exposed ports, …) are Docker's.
 */
function endpointOptions(method: string, options: unknown): { ifname: string | null; requestedMac: string | null } {
  if (options === undefined || options === null || typeof options !== 'object' || Array.isArray(options)) return { ifname: null, requestedMac: null };
  const o = options as Json;
  for (const k of Object.keys(o)) {
    if (k.startsWith('ledgernet.') && k !== MAC_OPTION) {
      throw new DriverError(
        'LN_ERR_INVALID_OPTION',
        `${method}: endpoint option ${k} is not one ledgernet takes (it would be ignored); an endpoint (--driver-opt) takes ${MAC_OPTION} and ${IFNAME_OPTION}, a network's options go to docker network create -o`,
      );
    }
  }
  return { ifname: endpointIfname(method, o[IFNAME_OPTION]), requestedMac: requestedMacOf(method, o[MAC_OPTION]) };
}

/** `ledgernet.mac`: a unicast MAC address other than 00:00:00:00:00:00, lower-case; null when not given. */
function requestedMacOf(method: string, v: unknown): string | null {
  if (v === undefined || v === null || v === '') return null;
  const ok = typeof v === 'string' && MAC.test(v) && (parseInt(v.slice(0, 2), 16) & 1) === 0 && !/^(00:){5}00$/.test(v);
  if (!ok) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: ${MAC_OPTION} ${JSON.stringify(v)?.slice(0, 64) ?? 'nothing'} is not a unicast MAC address such as 02:00:00:00:00:01`);
  }
  return v.toLowerCase();
}

/**
 * The container interface name CreateEndpoint's Options ask for (Docker 28+), or null: a Linux
 * interface name (1 to 15 bytes, no `/`, `:`, whitespace or control character, not `.` or `..`),
 * as the kernel would refuse anything else when Docker renames the interface.
 */
function endpointIfname(method: string, v: unknown): string | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string' || Buffer.byteLength(v) > 15 || v === '.' || v === '..' || /[/:\s\p{Cc}]/u.test(v)) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `${method}: ${IFNAME_OPTION} ${JSON.stringify(v)?.slice(0, 64) ?? 'nothing'} is not an interface name: 1 to 15 bytes, no '/', ':', space or control character, not '.' or '..'`,
    );
  }
  return v;
}

/** Join's SandboxKey: a path (Docker's /var/run/docker/netns/<12 hex>), or empty. */
export function sandboxKey(method: string, body: Json): string {
  const v = body['SandboxKey'];
  if (v === undefined || v === null || v === '') return '';
  if (typeof v !== 'string' || !v.startsWith('/') || v.length > MAX_VALUE || /[\0-\x1f]/.test(v)) {
    throw bad(method, `SandboxKey must be a path such as /var/run/docker/netns/4b2d8b7d3322, got ${JSON.stringify(v)?.slice(0, 64)}`);
  }
  return v;
}

/** Docker's own scheme for bridge endpoints: 02:42 followed by the IPv4 address. */
export function macForAddress(address: string): string {
  const octets = (address.split('/')[0] ?? '').split('.').map(Number);
  return ['02', '42', ...octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}

/** A random locally administered unicast MAC address (as Docker 28+ gives its containers). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] ?? 0) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * HostIP of a binding: '' (all addresses of both families, or the network's host_binding_ipv4) or
 * an address, canonical (`::` is every IPv6 address; `::1` is served by the in-daemon proxy).
 */
function hostIp(method: string, v: unknown, i: number): string {
  if (v === undefined || v === null || v === '') return '';
  const a = typeof v === 'string' ? parseIp(v) : null;
  if (!a) throw bad(method, `portmap[${i}].HostIP must be an IP address or empty, got ${JSON.stringify(v)?.slice(0, 64)}`);
  return formatIp(a.family, a.value);
}

/** The published ports of a ProgramExternalConnectivity, each checked: tcp/udp/sctp, no host port twice. */
export function toPortmap(method: string, options: Json): PortBinding[] {
  const list = options['com.docker.network.portmap'];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw bad(method, 'Options["com.docker.network.portmap"] must be a list');
  const out = list.map((item: unknown, i): PortBinding => {
    const p = obj(method, item, `portmap[${i}]`);
    const num = (k: string, min: number): number => {
      const v = p[k];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535) {
        throw bad(method, `portmap[${i}].${k} must be a port number from ${min} to 65535, got ${JSON.stringify(v)?.slice(0, 64) ?? 'nothing'}`);
      }
      return v;
    };
    const proto = p['Proto'];
    if (typeof proto !== 'number' || PROTO_NAME[proto] === undefined) {
      throw new DriverError(
        'LN_ERR_INVALID_OPTION',
        `${method}: portmap[${i}].Proto ${JSON.stringify(proto)?.slice(0, 64) ?? 'nothing'} is not a protocol ledgernet publishes: tcp (6), udp (17) or sctp (132)`,
      );
    }
    const hostPort = num('HostPort', 0);
    const hostPortEnd = p['HostPortEnd'] === undefined ? hostPort : num('HostPortEnd', 0);
    if (hostPort === 0 && hostPortEnd !== 0) throw bad(method, `portmap[${i}].HostPortEnd ${hostPortEnd} is given without a HostPort`);
    return { proto, port: num('Port', 1), hostIp: hostIp(method, p['HostIP'], i), hostPort, hostPortEnd };
  });
  // A fixed host port given twice on overlapping host addresses (Docker's own driver says "port is
  // already allocated"); on 0.0.0.0 and [::], or on two addresses, it is two bindings.
  const twice = portGivenTwice(out);
  if (twice !== undefined) {
    const [first, i] = twice;
    const b = out[i] as PortBinding;
    throw new DriverError('LN_ERR_CONFLICT', `${method}: host port ${PROTO_NAME[b.proto]}/${b.hostPort} is given twice (portmap[${first}] and portmap[${i}]); publish it once`);
  }
  return out;
}

/**
 * ProgramExternalConnectivity's `no_proxy_6to4` (Docker 28 always, 29 only when true): another
 * endpoint of the container is its IPv6 gateway, so this one serves IPv4 only.
 */
export function ipv6Elsewhere(method: string, options: Json): boolean {
  const v = options['com.docker.network.driver.private.no_proxy_6to4'];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw bad(method, `Options["com.docker.network.driver.private.no_proxy_6to4"] must be true or false, got ${JSON.stringify(v)?.slice(0, 64)}`);
  return v;
}

/**
 * The gateway (an address, no prefix length) a container with `address` (CIDR form; null: not
 * known) gets: that of the subnet holding its address, for a network with several subnets of one
 * family; else the first subnet's that has one.
 */
export function gatewayIp(data: readonly IpamData[], address: string | null = null): string | null {
  const ip = address === null ? null : parseIp(address.split('/')[0] ?? '');
  const holds = (d: IpamData) => {
    const pool = parsePrefix(d.pool);
    return ip !== null && pool !== null && contains(pool, ip.family, ip.value);
  };
  const gw = (data.find((d) => d.gateway !== null && holds(d)) ?? data.find((d) => d.gateway !== null))?.gateway;
  return gw ? (gw.split('/')[0] ?? null) : null;
}

export function options(method: string, body: Json): Json {
  return obj(method, body['Options'], 'Options');
}
