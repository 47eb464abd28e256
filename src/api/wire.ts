// Docker's PascalCase JSON <-> domain commands. Every field is checked here, so that a bad call
// is refused with a message naming the field before anything is written.
import { isIP } from 'node:net';
import { DriverError } from '../errors.ts';
import { bridgeName, isValidIfName, peerName, vethName } from '../events/names.ts';
import { networkPolicy, POLICY_OPTIONS } from '../events/policy.ts';
import type { EndpointSpec, IpamData, NetworkSpec, PortBinding } from '../events/types.ts';

export type Json = Record<string, unknown>;

const ID = /^[0-9a-f]{64}$/;
const DEFAULT_MTU = 1500;

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

function cidr(method: string, v: unknown, field: string, family?: 4 | 6): string {
  const s = typeof v === 'string' ? v : '';
  const [ip, len, extra] = s.split('/');
  const fam = isIP(ip ?? '');
  const n = Number(len);
  const max = fam === 6 ? 128 : 32;
  if (!fam || extra !== undefined || !/^\d+$/.test(len ?? '') || n > max || (family && fam !== family)) {
    const what = family ? `an IPv${family} CIDR` : 'a CIDR';
    throw bad(method, `${field} must be ${what} such as ${family === 6 ? 'fd00::1/64' : '10.231.7.1/24'}, got ${JSON.stringify(v)}`);
  }
  return s;
}

function ipamList(method: string, v: unknown, field: string, family: 4 | 6): IpamData[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(method, `${field} must be a list`);
  return v.map((item: unknown, i) => {
    const d = obj(method, item, `${field}[${i}]`);
    const aux = obj(method, d['AuxAddresses'], `${field}[${i}].AuxAddresses`);
    return {
      pool: cidr(method, d['Pool'], `${field}[${i}].Pool`, family),
      gateway: d['Gateway'] === undefined || d['Gateway'] === '' ? null : cidr(method, d['Gateway'], `${field}[${i}].Gateway`, family),
      aux: Object.fromEntries(Object.entries(aux).map(([k, a]) => [k, cidr(method, a, `${field}[${i}].AuxAddresses.${k}`, family)])),
    };
  });
}

/** ledgernet.* keys this version understands, with the form each accepts. */
export const NETWORK_OPTIONS: Readonly<Record<string, string>> = {
  'ledgernet.mtu': 'an integer from 68 to 65535',
  'ledgernet.bridge': 'an interface name of 1 to 15 bytes of A-Z a-z 0-9 _ . - not starting with lnb-, lnv- or lnp-',
  ...POLICY_OPTIONS,
};

/** Docker bridge-driver option names that mean the same as a ledgernet option. */
export const DOCKER_ALIASES: Readonly<Record<string, string>> = {
  'com.docker.network.driver.mtu': 'ledgernet.mtu',
  'com.docker.network.bridge.name': 'ledgernet.bridge',
};

function invalidOption(method: string, key: string, v: string, canonical: string): DriverError {
  return new DriverError(
    'LN_ERR_INVALID_OPTION',
    `${method}: option ${key}=${v} is invalid: expected ${NETWORK_OPTIONS[canonical]}`,
  );
}

function mtuOption(method: string, key: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw invalidOption(method, key, v, 'ledgernet.mtu');
  return n;
}

function bridgeOption(method: string, key: string, v: string): string {
  if (!isValidIfName(v) || /^ln[bvp]-/.test(v)) throw invalidOption(method, key, v, 'ledgernet.bridge');
  return v;
}

function genericOptions(method: string, v: unknown): Record<string, string> {
  const g = obj(method, v, 'Options["com.docker.network.generic"]');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(g)) {
    if (typeof val !== 'string') throw bad(method, `option ${k} must be a string`);
    out[k] = val;
  }
  return out;
}

/** The value of a ledgernet option given under its own name or a Docker alias; both at once must agree. */
function optionValue(method: string, generic: Record<string, string>, canonical: string): { key: string; value: string } | null {
  const keys = [canonical, ...Object.keys(DOCKER_ALIASES).filter((k) => DOCKER_ALIASES[k] === canonical)];
  const given = keys.filter((k) => generic[k] !== undefined).map((k) => ({ key: k, value: generic[k] as string }));
  const [first, ...rest] = given;
  const other = rest.find((g) => g.value !== first?.value);
  if (first && other) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `${method}: options ${first.key}=${first.value} and ${other.key}=${other.value} say different things; give one`,
    );
  }
  return first ?? null;
}

export function toNetworkSpec(method: string, body: Json): NetworkSpec {
  const networkId = id(method, body, 'NetworkID');
  const options = obj(method, body['Options'], 'Options');
  const generic = genericOptions(method, options['com.docker.network.generic']);
  for (const k of Object.keys(generic)) {
    if (k.startsWith('ledgernet.') && !(k in NETWORK_OPTIONS)) {
      const known = Object.entries(NETWORK_OPTIONS).map(([o, form]) => `${o} (${form})`).join(', ');
      throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: unknown option ${k}; ledgernet accepts ${known}`);
    }
  }
  const mtuOpt = optionValue(method, generic, 'ledgernet.mtu');
  const mtu = mtuOpt ? mtuOption(method, mtuOpt.key, mtuOpt.value) : DEFAULT_MTU;
  const bridgeOpt = optionValue(method, generic, 'ledgernet.bridge');
  const bridge = bridgeOpt ? bridgeOption(method, bridgeOpt.key, bridgeOpt.value) : bridgeName(networkId);
  try {
    networkPolicy(generic);
  } catch (e) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: ${(e as Error).message}`);
  }
  if (!isValidIfName(bridge)) throw bad(method, `bridge name ${bridge} is not a valid interface name`);
  return {
    networkId,
    bridge,
    mtu,
    internal: options['com.docker.network.internal'] === true,
    ipv6: options['com.docker.network.enable_ipv6'] === true,
    ipv4Data: ipamList(method, body['IPv4Data'], 'IPv4Data', 4),
    ipv6Data: ipamList(method, body['IPv6Data'], 'IPv6Data', 6),
    options: generic,
  };
}

export function toEndpointSpec(method: string, body: Json): EndpointSpec {
  const networkId = id(method, body, 'NetworkID');
  const endpointId = id(method, body, 'EndpointID');
  const iface = obj(method, body['Interface'], 'Interface');
  const addr = iface['Address'];
  const addr6 = iface['AddressIPv6'];
  const mac = iface['MacAddress'];
  if (mac !== undefined && mac !== '' && (typeof mac !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac))) {
    throw bad(method, `Interface.MacAddress must look like 02:42:0a:00:00:02, got ${JSON.stringify(mac)}`);
  }
  return {
    networkId,
    endpointId,
    veth: vethName(endpointId),
    peer: peerName(endpointId),
    address: addr === undefined || addr === '' ? null : cidr(method, addr, 'Interface.Address', 4),
    addressV6: addr6 === undefined || addr6 === '' ? null : cidr(method, addr6, 'Interface.AddressIPv6', 6),
    mac: typeof mac === 'string' && mac !== '' ? mac.toLowerCase() : null,
  };
}

/** Docker's own scheme for bridge endpoints: 02:42 followed by the IPv4 address. */
export function macForAddress(address: string): string {
  const octets = (address.split('/')[0] ?? '').split('.').map(Number);
  return ['02', '42', ...octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}

function hostIp(method: string, v: unknown, i: number): string {
  if (v === undefined || v === null || v === '') return '';
  if (typeof v !== 'string' || isIP(v) === 0) throw bad(method, `portmap[${i}].HostIP must be an IP address or empty, got ${JSON.stringify(v)}`);
  return v;
}

export function toPortmap(method: string, options: Json): PortBinding[] {
  const list = options['com.docker.network.portmap'];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw bad(method, 'Options["com.docker.network.portmap"] must be a list');
  return list.map((item: unknown, i) => {
    const p = obj(method, item, `portmap[${i}]`);
    const num = (k: string): number => {
      const v = p[k];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw bad(method, `portmap[${i}].${k} must be a port number`);
      return v;
    };
    return {
      proto: num('Proto'),
      port: num('Port'),
      hostIp: hostIp(method, p['HostIP'], i),
      hostPort: num('HostPort'),
      hostPortEnd: num('HostPortEnd'),
    };
  });
}

export function gatewayIp(data: readonly IpamData[]): string | null {
  const gw = data.find((d) => d.gateway !== null)?.gateway;
  return gw ? (gw.split('/')[0] ?? null) : null;
}

export function options(method: string, body: Json): Json {
  return obj(method, body['Options'], 'Options');
}
