// The `-o` options of a network, in one place: which keys exist, the form each accepts, which
// Docker bridge-driver names mean the same, and the one rule for aliases (a ledgernet option and
// its Docker name given with different values are refused). Pure: the api calls
// `checkNetworkOptions` to refuse a bad option before anything is written, the reconciler calls
// `networkPolicy` to build the desired rules from the options recorded in `network.created`.
import { isDeepStrictEqual } from 'node:util';
import { DriverError } from '../../errors.ts';
import { checkHostAddressesFor, HOST_BINDING_FORM, HOST_IPV4_FORM, HOST_IPV6_FORM, parseHostBinding, parseSnatSource } from './host-address.ts';
import { checkEgressFor, EGRESS_FORM, parseEgress, type EgressNetwork, type EgressPolicy, type EgressRule } from './egress.ts';
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

const DEFAULT_MTU = 1500;

const PREFIX_LIST = RESERVED_PREFIXES.join(', ');
const RATE_FORM = 'a rate such as 10mbit, 512kbit, 1gbit or 1000000 (bit/s)';
const ALLOW_FORM = 'a list such as tcp/80,tcp/8000-8100,udp/53,icmp';

/** The Options keys Docker itself sends with CreateNetwork (protocol.md §3), besides `generic`. */
export const DOCKER_NETWORK_FLAGS = [
  'com.docker.network.enable_ipv4',
  'com.docker.network.enable_ipv6',
  'com.docker.network.internal',
] as const;

function invalid(key: string, value: string, form: string): DriverError {
  return new DriverError('LN_ERR_INVALID_OPTION', `option ${key}=${value} is invalid: expected ${form}`);
}

/** As Docker reads its bridge options (Go's strconv.ParseBool). */
function bool(key: string, v: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw invalid(key, v, 'true or false');
}

const UNITS: Readonly<Record<string, number>> = { '': 1, bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/** `10mbit` → 10000000 (bit/s). Bounded to 8 kbit/s … 100 gbit/s. */
export function parseRate(key: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)?$/i.exec(v.trim());
  const n = m ? Math.round(Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] ?? NaN)) : NaN;
  if (!Number.isFinite(n) || n < 8000 || n > 100e9) throw invalid(key, v, RATE_FORM);
  return n;
}

function port(key: string, v: string, s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw invalid(key, v, ALLOW_FORM);
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
    if (!m) throw invalid(key, v, ALLOW_FORM);
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
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw invalid(key, v, OPTIONS['ledgernet.mtu'].form);
  return n;
}

function bridge(key: string, v: string): string {
  if (!isValidIfName(v) || RESERVED_PREFIXES.some((p) => v.startsWith(p))) throw invalid(key, v, OPTIONS['ledgernet.bridge'].form);
  return v;
}

/** Docker 28's gateway modes (bridge driver `gwMode`), for each address family. */
const GATEWAY_MODES = ['nat', 'nat-unprotected', 'routed', 'isolated'] as const;
export type GatewayMode = (typeof GATEWAY_MODES)[number];
const GATEWAY_MODE_FORM = 'nat, nat-unprotected, routed or isolated (isolated only with --internal; default nat)';

function gatewayMode(key: string, v: string): GatewayMode {
  if (!(GATEWAY_MODES as readonly string[]).includes(v)) throw invalid(key, v, GATEWAY_MODE_FORM);
  return v as GatewayMode;
}

/** Docker's list of trusted host interfaces: names separated by `:` (empty items dropped, as Docker does). */
function trustedIfaces(key: string, v: string): string[] {
  const names = v.split(':').filter((n) => n !== '');
  if (names.length === 0 || names.some((n) => !isValidIfName(n))) throw invalid(key, v, OPTIONS['com.docker.network.bridge.trusted_host_interfaces'].form);
  return [...new Set(names)];
}

function ifacePrefix(key: string, v: string): string {
  if (!isValidIfName(v) || Buffer.byteLength(v) > 12) throw invalid(key, v, OPTIONS['com.docker.network.container_iface_prefix'].form);
  return v;
}

function clusterName(key: string, v: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(v)) throw invalid(key, v, OPTIONS['ledgernet.cluster'].form);
  return v;
}

interface OptionSpec {
  /** The form it accepts, for messages. */
  readonly form: string;
  readonly parse: (key: string, v: string) => unknown;
  /** A Docker bridge-driver option name with the same meaning, if any. */
  readonly alias?: string;
}

/**
 * Every `-o` option ledgernet understands, by its canonical key: the ledgernet.* keys (with the
 * Docker bridge-driver name that means the same, if any), then Docker's own options ledgernet
 * honours that have no ledgernet twin. The order is the order of messages.
 */
const OPTIONS = {
  'ledgernet.mtu': { form: 'an integer from 68 to 65535', parse: mtu, alias: 'com.docker.network.driver.mtu' },
  'ledgernet.bridge': {
    form: `an interface name of 1 to 15 bytes of A-Z a-z 0-9 _ . - not starting with ${PREFIX_LIST}`,
    parse: bridge,
    alias: 'com.docker.network.bridge.name',
  },
  'ledgernet.icc': { form: 'true or false (default true)', parse: bool, alias: 'com.docker.network.bridge.enable_icc' },
  'ledgernet.masquerade': { form: 'true or false (default true)', parse: bool, alias: 'com.docker.network.bridge.enable_ip_masquerade' },
  'ledgernet.allow': { form: ALLOW_FORM, parse: parseAllow },
  'ledgernet.egress_rate': { form: RATE_FORM, parse: parseRate },
  'ledgernet.egress_deny': { form: EGRESS_FORM, parse: parseEgress },
  'ledgernet.egress_allow': { form: EGRESS_FORM, parse: parseEgress },
  'ledgernet.ingress_rate': { form: RATE_FORM, parse: parseRate },
  'ledgernet.cluster': {
    form: 'a cluster network name of 1 to 63 characters A-Z a-z 0-9 _ - (the same on every host, also given as --ipam-opt)',
    parse: clusterName,
  },
  'com.docker.network.bridge.host_binding_ipv4': { form: HOST_BINDING_FORM, parse: parseHostBinding },
  'com.docker.network.host_ipv4': { form: HOST_IPV4_FORM, parse: parseSnatSource(4) },
  'com.docker.network.host_ipv6': { form: HOST_IPV6_FORM, parse: parseSnatSource(6) },
  'com.docker.network.container_iface_prefix': {
    form: 'an interface name prefix of 1 to 12 bytes of A-Z a-z 0-9 _ . - (default eth)',
    parse: ifacePrefix,
  },
  'com.docker.network.bridge.gateway_mode_ipv4': { form: GATEWAY_MODE_FORM, parse: gatewayMode },
  'com.docker.network.bridge.gateway_mode_ipv6': { form: GATEWAY_MODE_FORM, parse: gatewayMode },
  'com.docker.network.bridge.inhibit_ipv4': {
    form: 'true or false (default false): the bridge gets no IPv4 address; one you add to it yourself is kept',
    parse: bool,
  },
  'com.docker.network.bridge.trusted_host_interfaces': {
    form: 'host interface names separated by colons (eth1:wg0): packets from them may address containers directly',
    parse: trustedIfaces,
  },
} as const satisfies Readonly<Record<string, OptionSpec>>;

type OptionKey = keyof typeof OPTIONS;
const SPECS: readonly (readonly [OptionKey, OptionSpec])[] = Object.entries(OPTIONS) as [OptionKey, OptionSpec][];

/** ledgernet.* keys this version understands, with the form each accepts. */
const NETWORK_OPTIONS: Readonly<Record<string, string>> = Object.fromEntries(
  SPECS.filter(([k]) => k.startsWith('ledgernet.')).map(([k, o]) => [k, o.form]),
);

/** Docker bridge-driver option names with the same meaning as a ledgernet option. */
const DOCKER_ALIASES: Readonly<Record<string, OptionKey>> = Object.fromEntries(
  SPECS.flatMap(([k, o]) => (o.alias === undefined ? [] : [[o.alias, k]])),
);

/** Docker option names ledgernet honours that have no ledgernet twin, with their form. */
const DOCKER_OPTIONS: Readonly<Record<string, string>> = Object.fromEntries(
  SPECS.filter(([k]) => !k.startsWith('ledgernet.')).map(([k, o]) => [k, o.form]),
);

/** An option's names for messages: `ledgernet.bridge / com.docker.network.bridge.name`. */
export function optionNames(canonical: OptionKey): string {
  const alias: string | undefined = (OPTIONS[canonical] as OptionSpec).alias;
  return alias === undefined ? canonical : `${canonical} / ${alias}`;
}

type Options = Readonly<Record<string, string>>;

/** The MTU given (`ledgernet.mtu` or `com.docker.network.driver.mtu`), null when none was. */
export function givenMtu(options: Options): number | null {
  return optionValue<number>(options, 'ledgernet.mtu');
}

/**
 * The parsed value of an option given under its own name or a Docker alias, or null when not
 * given. Both names given with values that mean different things are refused.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the option(s) and the accepted form.
 */
function optionValue<T>(options: Options, canonical: OptionKey): T | null {
  const { parse, alias }: OptionSpec = OPTIONS[canonical];
  const keys = alias === undefined ? [canonical] : [canonical, alias];
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

/** The host address of ports published without one (IPv4, or IPv6 as Docker 27+ allows), or null (all addresses of both families). */
export function hostBindingIpv4(options: Options): string | null {
  const v = optionValue<string>(options, 'com.docker.network.bridge.host_binding_ipv4');
  return v === null || v === '0.0.0.0' ? null : v;
}

/**
 * `com.docker.network.bridge.inhibit_ipv4`: ledgernet puts no IPv4 address on the bridge, and
 * the IPv4 addresses found on it are the operator's (neither added nor removed), as Docker's
 * bridge driver does; containers still get the network's gateway as their default route.
 */
export function inhibitIpv4(options: Options): boolean {
  return optionValue<boolean>(options, 'com.docker.network.bridge.inhibit_ipv4') ?? false;
}

/** The SNAT source of each family (`com.docker.network.host_ipv4` / `host_ipv6`); null: masquerade. */
export function natSources(options: Options): { readonly v4: string | null; readonly v6: string | null } {
  return { v4: optionValue<string>(options, 'com.docker.network.host_ipv4'), v6: optionValue<string>(options, 'com.docker.network.host_ipv6') };
}

/**
 * The egress policy (`ledgernet.egress_deny`, `ledgernet.egress_allow`; both at once: deny wins),
 * or null when neither is given. See egress.ts.
 */
export function egressPolicy(options: Options): EgressPolicy | null {
  const deny = optionValue<EgressRule[]>(options, 'ledgernet.egress_deny');
  const allow = optionValue<EgressRule[]>(options, 'ledgernet.egress_allow');
  return deny === null && allow === null ? null : { deny: deny ?? [], allow };
}

/** What Join answers as DstPrefix: the container's interface is this plus a number. */
export function containerIfacePrefix(options: Options): string {
  return optionValue<string>(options, 'com.docker.network.container_iface_prefix') ?? 'eth';
}

/**
 * The gateway mode of each family (`com.docker.network.bridge.gateway_mode_ipv4`/`_ipv6`).
 * Refused, as Docker's bridge driver refuses them: `isolated` unless the network is internal;
 * ledgernet's own: `ledgernet.allow` with `nat-unprotected` (a list of what may come in, on a
 * network that lets everything in).
 * @throws DriverError `LN_ERR_INVALID_OPTION`.
 */
export function gatewayModes(options: Options, internal: boolean): { readonly v4: GatewayMode; readonly v6: GatewayMode } {
  const v4 = optionValue<GatewayMode>(options, 'com.docker.network.bridge.gateway_mode_ipv4') ?? 'nat';
  const v6 = optionValue<GatewayMode>(options, 'com.docker.network.bridge.gateway_mode_ipv6') ?? 'nat';
  for (const [family, mode] of [['ipv4', v4], ['ipv6', v6]] as const) {
    const given = `option com.docker.network.bridge.gateway_mode_${family}=${mode}`;
    if (mode === 'isolated' && !internal) {
      throw new DriverError('LN_ERR_INVALID_OPTION', `${given} can only be used for an internal network (--internal)`);
    }
    if (mode === 'nat-unprotected' && optionValue(options, 'ledgernet.allow') !== null) {
      throw new DriverError('LN_ERR_INVALID_OPTION', `${given} lets everything in; it cannot be combined with ledgernet.allow (give one)`);
    }
  }
  return { v4, v6 };
}

/** `com.docker.network.bridge.trusted_host_interfaces`: interfaces whose packets may address containers directly. */
export function trustedHostInterfaces(options: Options): string[] {
  return optionValue<string[]>(options, 'com.docker.network.bridge.trusted_host_interfaces') ?? [];
}

/** The cluster network a network (or an IPAM pool's --ipam-opt) belongs to, or null. */
export function clusterOf(options: Options): string | null {
  return optionValue<string>(options, 'ledgernet.cluster');
}

function known(): string {
  return [...Object.entries(NETWORK_OPTIONS), ...Object.entries(DOCKER_OPTIONS)].map(([o, form]) => `${o} (${form})`).join(', ');
}

/**
 * Everything a network's `-o` options may say, checked before the network is recorded: an
 * unknown `ledgernet.*` or `com.docker.network.*` key, a malformed value, and an option given
 * twice (ours and Docker's name) with different values are refused, naming the key. With `net`,
 * options the network cannot use are refused too (an IPv6 egress item without IPv6, …).
 * @throws DriverError `LN_ERR_INVALID_OPTION`.
 */
export function checkNetworkOptions(options: Options, net?: EgressNetwork): { mtu: number; bridge: string | null } {
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
  const { masquerade } = networkPolicy(options);
  const binding = hostBindingIpv4(options);
  containerIfacePrefix(options);
  const egress = egressPolicy(options);
  if (net) checkEgressFor(egress, net);
  const snat = natSources(options);
  if (net) checkHostAddressesFor({ binding, snat4: snat.v4, snat6: snat.v6 }, { ...net, masquerade });
  // Any option of the table that the readers above do not read (mtu, bridge, a new one).
  for (const [k] of SPECS) optionValue(options, k);
  const mtu = optionValue<number>(options, 'ledgernet.mtu') ?? DEFAULT_MTU;
  // The kernel refuses an IPv6 address on a link below IPv6's minimum MTU (EINVAL for the gateway).
  if (net && mtu < IPV6_MIN_MTU && net.subnets.some((s) => s.includes(':'))) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `option ${optionNames('ledgernet.mtu')}=${mtu} is below ${IPV6_MIN_MTU}, the least IPv6 allows, and the network has IPv6; give ${IPV6_MIN_MTU} or more`);
  }
  return { mtu, bridge: optionValue<string>(options, 'ledgernet.bridge') };
}

const IPV6_MIN_MTU = 1280;

/**
 * Every `ledgernet.*` network option an earlier version of ledgernet accepted, and so may have
 * recorded in `network.created`: each key the option table ever held (`git log -p` of this file
 * and, before it, of src/events/policy.ts and src/api/wire.ts; every version refused other
 * `ledgernet.*` keys). A key taken out of OPTIONS stays here: a replay reads every log an
 * earlier version wrote.
 */
export const EVER_ACCEPTED_OPTIONS: readonly string[] = [
  'ledgernet.mtu',
  'ledgernet.bridge',
  'ledgernet.icc',
  'ledgernet.masquerade',
  'ledgernet.allow',
  'ledgernet.egress_rate',
  'ledgernet.ingress_rate',
  'ledgernet.egress_deny',
  'ledgernet.egress_allow',
  'ledgernet.cluster',
];

/**
 * The keys of a recorded network's options that only a newer ledgernet can have written: a
 * `ledgernet.*` key the live CreateNetwork refuses as unknown that no earlier version accepted.
 * Every other key is read as before: Docker's `com.docker.network.*` names (versions before
 * 2026-11-30 recorded any of them), labels and other names (CreateNetwork ignores them).
 */
export function newerOptions(options: Options): string[] {
  return Object.keys(options).filter((k) => k.startsWith('ledgernet.') && !Object.hasOwn(NETWORK_OPTIONS, k) && !EVER_ACCEPTED_OPTIONS.includes(k));
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
