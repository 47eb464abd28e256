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
  ...POLICY_OPTIONS,
};

function mtuOption(method: string, key: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: option ${key}=${v} is invalid: expected ${NETWORK_OPTIONS['ledgernet.mtu']}`);
  }
  return n;
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
  let mtu = DEFAULT_MTU;
  for (const key of ['com.docker.network.driver.mtu', 'ledgernet.mtu']) {
    const v = generic[key];
    if (v !== undefined) mtu = mtuOption(method, key, v);
  }
  try {
    networkPolicy(generic);
  } catch (e) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: ${(e as Error).message}`);
  }
  const bridge = bridgeName(networkId);
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
      hostIp: typeof p['HostIP'] === 'string' ? p['HostIP'] : '',
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
