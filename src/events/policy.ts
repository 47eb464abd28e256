// The per-network firewall and traffic options, read from the `-o` options a network was created
// with. Pure: the api calls it to refuse a bad option before anything is written, the reconciler
// calls it to build the desired rules from the options recorded in `network.created`.
import { DriverError } from '../errors.ts';

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

/** Option keys and the form each accepts (for messages and the README). */
export const POLICY_OPTIONS: Readonly<Record<string, string>> = {
  'ledgernet.icc': 'true or false (default true)',
  'ledgernet.masquerade': 'true or false (default true)',
  'ledgernet.allow': 'a list such as tcp/80,tcp/8000-8100,udp/53,icmp',
  'ledgernet.egress_rate': 'a rate such as 10mbit, 512kbit, 1gbit or 1000000 (bit/s)',
  'ledgernet.ingress_rate': 'a rate such as 10mbit, 512kbit, 1gbit or 1000000 (bit/s)',
};

/** Docker bridge-driver option names with the same meaning as ours. */
const ALIASES: Readonly<Record<string, string>> = {
  'com.docker.network.bridge.enable_icc': 'ledgernet.icc',
  'com.docker.network.bridge.enable_ip_masquerade': 'ledgernet.masquerade',
};

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

/**
 * The policy the options ask for. Our own key wins over Docker's alias when both are given.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the option and the accepted form.
 */
export function networkPolicy(options: Readonly<Record<string, string>>): NetworkPolicy {
  const get = (key: string): [string, string] | null => {
    const alias = Object.keys(ALIASES).find((a) => ALIASES[a] === key);
    if (options[key] !== undefined) return [key, options[key]];
    if (alias !== undefined && options[alias] !== undefined) return [alias, options[alias]];
    return null;
  };
  const icc = get('ledgernet.icc');
  const masq = get('ledgernet.masquerade');
  const allow = get('ledgernet.allow');
  const egress = get('ledgernet.egress_rate');
  const ingress = get('ledgernet.ingress_rate');
  return {
    icc: icc ? bool(...icc) : true,
    masquerade: masq ? bool(...masq) : true,
    allow: allow ? parseAllow(...allow) : null,
    egressRate: egress ? parseRate(...egress) : null,
    ingressRate: ingress ? parseRate(...ingress) : null,
  };
}
