// The `-o` options of a network, in one place: which keys exist, the form each accepts, which
// Docker bridge-driver names mean the same, and the one rule for aliases (a ledgernet option and
// its Docker name given with different values are refused). Pure: the api calls
// `checkNetworkOptions` to refuse a bad option before anything is written, the reconciler calls
// `networkPolicy` to build the desired rules from the options recorded in `network.created`.
import { isDeepStrictEqual } from 'node:util';
import { DriverError } from '../../errors.ts';
import { parseIp } from './cidr.ts';
import { isValidIfName, RESERVED_PREFIXES } from './naming.ts';

export interface AllowRule {
  readonly proto: 'tcp' | 'udp' | 'icmp';
  /** Inclusive port range; null for icmp. */
  readonly ports: readonly [number, number] | null;
}

export interface NetworkPolicy {
  /** Containers of the network reach each other (Docker's enable_icc). */
  readonly icc: boolean;
  /** Egress is masqueraded behind the host's address. */
  readonly masquerade: boolean;
  /** Ingress allow-list; null = no list (only published ports come in). */
  readonly allow: readonly AllowRule[] | null;
  /** Per-endpoint rates in bit/s, null = unlimited. */
  readonly egressRate: number | null;
  readonly ingressRate: number | null;
}

export const DEFAULT_MTU = 1500;

/** Option keys and the form each accepts (for messages and the README). */
export const POLICY_OPTIONS: Readonly<Record<string, string>> = {
  'ledgernet.icc': 'true or false (default true)',
  'ledgernet.masquerade': 'true or false (default true)',
  'ledgernet.allow': 'a list such as tcp/80,tcp/8000-8100,udp/53,icmp',
  'ledgernet.egress_rate': 'a rate such as 10mbit, 512kbit, 1gbit or 1000000 (bit/s)',
  'ledgernet.ingress_rate': 'a rate such as 10mbit, 512kbit, 1gbit or 1000000 (bit/s)',
};

const PREFIX_LIST = RESERVED_PREFIXES.join(', ');

/** ledgernet.* keys this version understands, with the form each accepts. */
export const NETWORK_OPTIONS: Readonly<Record<string, string>> = {
  'ledgernet.mtu': 'an integer from 68 to 65535',
  'ledgernet.bridge': `an interface name of 1 to 15 bytes of A-Z a-z 0-9 _ . - not starting with ${PREFIX_LIST}`,
  ...POLICY_OPTIONS,
};

/** Docker bridge-driver option names with the same meaning as a ledgernet option. */
export const DOCKER_ALIASES: Readonly<Record<string, string>> = {
  'com.docker.network.driver.mtu': 'ledgernet.mtu',
  'com.docker.network.bridge.name': 'ledgernet.bridge',
  'com.docker.network.bridge.enable_icc': 'ledgernet.icc',
  'com.docker.network.bridge.enable_ip_masquerade': 'ledgernet.masquerade',
};

/** Docker option names ledgernet honours that have no ledgernet twin, with their form. */
export const DOCKER_OPTIONS: Readonly<Record<string, string>> = {
  'com.docker.network.bridge.host_binding_ipv4':
    'an IPv4 address: the host address of ports published without one (-p 8080:80), default all addresses',
  'com.docker.network.container_iface_prefix': 'an interface name prefix of 1 to 12 bytes of A-Z a-z 0-9 _ . - (default eth)',
};

/** The Options keys Docker itself sends with CreateNetwork (protocol.md §3), besides `generic`. */
export const DOCKER_NETWORK_FLAGS = [
  'com.docker.network.enable_ipv4',
  'com.docker.network.enable_ipv6',
  'com.docker.network.internal',
] as const;

function invalid(key: string, value: string, form: string): DriverError {
  return new DriverError('LN_ERR_INVALID_OPTION', `option ${key}=${value} is invalid: expected ${form}`);
}

function bool(key: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw invalid(key, v, 'true or false');
}

const UNITS: Readonly<Record<string, number>> = { '': 1, bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/** `10mbit` → 10000000 (bit/s). Bounded to 8 kbit/s … 100 gbit/s. */
export function parseRate(key: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)?$/i.exec(v.trim());
  const n = m ? Math.round(Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] ?? NaN)) : NaN;
  if (!Number.isFinite(n) || n < 8000 || n > 100e9) throw invalid(key, v, POLICY_OPTIONS['ledgernet.egress_rate'] ?? '');
  return n;
}

function port(key: string, v: string, s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw invalid(key, v, POLICY_OPTIONS['ledgernet.allow'] ?? '');
  return n;
}

/** `tcp/80,tcp/8000-8100,udp/53,icmp` → rules, in the order given, duplicates dropped. */
export function parseAllow(key: string, v: string): AllowRule[] {
  const out: AllowRule[] = [];
  for (const item of v.split(',').map((s) => s.trim().toLowerCase())) {
    if (item === 'icmp') {
      out.push({ proto: 'icmp', ports: null });
      continue;
    }
    const m = /^(tcp|udp)\/(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) throw invalid(key, v, POLICY_OPTIONS['ledgernet.allow'] ?? '');
    const lo = port(key, v, m[2] ?? '');
    const hi = m[3] === undefined ? lo : port(key, v, m[3]);
    if (hi < lo) throw invalid(key, v, 'a port range low-high with low <= high');
    out.push({ proto: m[1] as 'tcp' | 'udp', ports: [lo, hi] });
  }
  const seen = new Set<string>();
  return out.filter((r) => {
    const k = `${r.proto}/${r.ports?.join('-') ?? ''}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

function mtu(key: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw invalid(key, v, NETWORK_OPTIONS['ledgernet.mtu'] ?? '');
  return n;
}

function bridge(key: string, v: string): string {
  if (!isValidIfName(v) || RESERVED_PREFIXES.some((p) => v.startsWith(p))) throw invalid(key, v, NETWORK_OPTIONS['ledgernet.bridge'] ?? '');
  return v;
}

function hostBinding(key: string, v: string): string {
  const a = parseIp(v);
  if (!a || a.family !== 4 || a.value >= 0xe0000000n) throw invalid(key, v, DOCKER_OPTIONS['com.docker.network.bridge.host_binding_ipv4'] ?? '');
  return v;
}

function ifacePrefix(key: string, v: string): string {
  if (!isValidIfName(v) || Buffer.byteLength(v) > 12) throw invalid(key, v, DOCKER_OPTIONS['com.docker.network.container_iface_prefix'] ?? '');
  return v;
}

/** How each option (by its canonical key) is read. */
const PARSERS: Readonly<Record<string, (key: string, v: string) => unknown>> = {
  'ledgernet.mtu': mtu,
  'ledgernet.bridge': bridge,
  'ledgernet.icc': bool,
  'ledgernet.masquerade': bool,
  'ledgernet.allow': parseAllow,
  'ledgernet.egress_rate': parseRate,
  'ledgernet.ingress_rate': parseRate,
  'com.docker.network.bridge.host_binding_ipv4': hostBinding,
  'com.docker.network.container_iface_prefix': ifacePrefix,
};

type Options = Readonly<Record<string, string>>;

/**
 * The parsed value of an option given under its own name or a Docker alias, or null when not
 * given. Both names given with values that mean different things are refused.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the option(s) and the accepted form.
 */
export function optionValue<T>(options: Options, canonical: string): T | null {
  const parse = PARSERS[canonical];
  if (!parse) throw new Error(`no parser for option ${canonical}`);
  const keys = [canonical, ...Object.keys(DOCKER_ALIASES).filter((k) => DOCKER_ALIASES[k] === canonical)];
  const given = keys
    .filter((k) => Object.hasOwn(options, k))
    .map((k) => ({ key: k, raw: options[k] as string, value: parse(k, options[k] as string) }));
  const [first, ...rest] = given;
  const other = rest.find((g) => !isDeepStrictEqual(g.value, first?.value));
  if (first && other) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `options ${first.key}=${first.raw} and ${other.key}=${other.raw} say different things; give one`,
    );
  }
  return (first?.value as T | undefined) ?? null;
}

/**
 * The policy the options ask for. Keys it does not know are ignored here (the api refuses
 * them before they are recorded; see checkNetworkOptions).
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the option and the accepted form.
 */
export function networkPolicy(options: Options): NetworkPolicy {
  return {
    icc: optionValue<boolean>(options, 'ledgernet.icc') ?? true,
    masquerade: optionValue<boolean>(options, 'ledgernet.masquerade') ?? true,
    allow: optionValue<AllowRule[]>(options, 'ledgernet.allow'),
    egressRate: optionValue<number>(options, 'ledgernet.egress_rate'),
    ingressRate: optionValue<number>(options, 'ledgernet.ingress_rate'),
  };
}

/** The host address of ports published without one, or null (all addresses). */
export function hostBindingIpv4(options: Options): string | null {
  const v = optionValue<string>(options, 'com.docker.network.bridge.host_binding_ipv4');
  return v === null || v === '0.0.0.0' ? null : v;
}

/** What Join answers as DstPrefix: the container's interface is this plus a number. */
export function containerIfacePrefix(options: Options): string {
  return optionValue<string>(options, 'com.docker.network.container_iface_prefix') ?? 'eth';
}

function known(): string {
  return [...Object.entries(NETWORK_OPTIONS), ...Object.entries(DOCKER_OPTIONS)].map(([o, form]) => `${o} (${form})`).join(', ');
}

/**
 * Everything a network's `-o` options may say, checked before the network is recorded: an
 * unknown `ledgernet.*` or `com.docker.network.*` key, a malformed value, and an option given
 * twice (ours and Docker's name) with different values are refused, naming the key.
 * @throws DriverError `LN_ERR_INVALID_OPTION`.
 */
export function checkNetworkOptions(options: Options): { mtu: number; bridge: string | null } {
  for (const k of Object.keys(options)) {
    if (k === '__proto__') throw new DriverError('LN_ERR_INVALID_OPTION', 'option name __proto__ is not allowed');
    if (k.startsWith('ledgernet.') && !Object.hasOwn(NETWORK_OPTIONS, k)) {
      throw new DriverError('LN_ERR_INVALID_OPTION', `unknown option ${k}; ledgernet accepts ${known()}`);
    }
    if (k.startsWith('com.docker.network.') && !Object.hasOwn(DOCKER_ALIASES, k) && !Object.hasOwn(DOCKER_OPTIONS, k)) {
      throw new DriverError(
        'LN_ERR_INVALID_OPTION',
        `option ${k} is not supported by ledgernet (it would be ignored); of Docker's options ledgernet honours ` +
          `${[...Object.keys(DOCKER_ALIASES), ...Object.keys(DOCKER_OPTIONS)].join(', ')}`,
      );
    }
  }
  networkPolicy(options);
  hostBindingIpv4(options);
  containerIfacePrefix(options);
  return { mtu: optionValue<number>(options, 'ledgernet.mtu') ?? DEFAULT_MTU, bridge: optionValue<string>(options, 'ledgernet.bridge') };
}

/**
 * Options recorded by versions that let a ledgernet option and its Docker alias disagree (ours
 * won then): the alias is dropped so the recorded network keeps working. Returns the options
 * unchanged when nothing disagrees, and the dropped keys.
 */
export function legacyOptions(options: Options): { options: Options; dropped: string[] } {
  const dropped: string[] = [];
  for (const [alias, canonical] of Object.entries(DOCKER_ALIASES)) {
    if (!Object.hasOwn(options, alias) || !Object.hasOwn(options, canonical)) continue;
    try {
      optionValue(options, canonical);
    } catch {
      dropped.push(alias);
    }
  }
  if (dropped.length === 0) return { options, dropped };
  return { options: Object.fromEntries(Object.entries(options).filter(([k]) => !dropped.includes(k))), dropped };
}
