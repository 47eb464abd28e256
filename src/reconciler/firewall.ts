// The desired iptables rules, written exactly as `iptables-save` prints them (addresses with
// their prefix length, `-s/-d/-i/-o/-p` before the matches, `-m tcp` spelled out) so that a
// converged kernel plans nothing. test/integration/firewall-rules.test.ts loads every shape into
// a real table and checks it reads back byte for byte.
//
// Why these chains and places:
// - filter LEDGERNET-FORWARD, jumped to from FORWARD right after Docker's `-j DOCKER-USER`: the
//   operator's DOCKER-USER rules still come first, and our isolation drops come before Docker's
//   own `-i br-x ! -o br-x -j ACCEPT`, which would otherwise let Docker's bridges reach ours.
// - filter LEDGERNET-INPUT (from INPUT): published ports on 127.0.0.1 need route_localnet on the
//   bridge; this drops what route_localnet would otherwise let containers send to 127.0.0.0/8.
// - nat LEDGERNET-DNAT (from PREROUTING and OUTPUT, for local destinations): published ports,
//   one rule per range. nat LEDGERNET-POSTROUTING: masquerade, and SNAT for 127.0.0.1 and hairpin.
// - ip6tables filter LEDGERNET-FORWARD (table `filter6` here), hooked like the IPv4 one: the same
//   isolation, icc, internal and allow-list policy for IPv6 (bridged IPv6 passes ip6tables FORWARD
//   with bridge-nf-call-ip6tables=1, and is routed between bridges when IPv6 forwarding is on).
//   No NAT for IPv6: no masquerade, no published ports, so no hairpin/published rules and no
//   LEDGERNET-INPUT (route_localnet is IPv4 only). With icc=false, neighbour solicitations and
//   advertisements still pass inside the bridge, as ARP (which iptables never sees) does for IPv4.
import type { AllowRule, NetworkPolicy } from '../events/domain/options.ts';
import type { EndpointState, NetworkState, PortBinding } from '../events/domain/types.ts';
import { BRIDGE_PREFIX, OWNER_TAG } from '../events/domain/naming.ts';

/** `filter6` is ip6tables' filter table. */
export type Table = 'filter' | 'nat' | 'filter6';

export interface DesiredHook {
  readonly from: string;
  readonly rule: string;
  /** `early`: right after `-j DOCKER-USER` (or first); `append`: anywhere in the chain. */
  readonly placement: 'early' | 'append';
}

export interface DesiredChain {
  readonly table: Table;
  readonly name: string;
  /** Rules as `iptables-save` prints them after `-A <chain> `. */
  readonly rules: readonly string[];
  /** The jumps into this chain from built-in chains. */
  readonly hooks: readonly DesiredHook[];
}

export const FORWARD_CHAIN = 'LEDGERNET-FORWARD';
export const INPUT_CHAIN = 'LEDGERNET-INPUT';
export const DNAT_CHAIN = 'LEDGERNET-DNAT';
export const POSTROUTING_CHAIN = 'LEDGERNET-POSTROUTING';
export const HOOK_COMMENT = `${OWNER_TAG}hook`;
/** Docker's own bridges: the default one, user networks (`br-<id>`), and the swarm gateway bridge. */
const DOCKER_BRIDGES = ['docker0', 'br-+', 'docker_gwbridge'];
const OUR_BRIDGES = `${BRIDGE_PREFIX}+`;

export interface FirewallNetwork {
  readonly net: NetworkState;
  readonly policy: NetworkPolicy;
  readonly endpoints: readonly EndpointState[];
}

const tag = (owner: string) => `-m comment --comment "${OWNER_TAG}${owner}"`;
const hook = (from: string, chain: string, placement: DesiredHook['placement'], match = ''): DesiredHook => ({
  from,
  rule: `${match}-m comment --comment "${HOOK_COMMENT}" -j ${chain}`,
  placement,
});

/** All ledgernet chains for these networks (sorted by bridge). Chains with no rules are left out. */
export function desiredChains(nets: readonly FirewallNetwork[]): DesiredChain[] {
  if (nets.length === 0) return [];
  const chains: DesiredChain[] = [
    { table: 'filter', name: FORWARD_CHAIN, rules: forwardRules(nets, 4), hooks: [hook('FORWARD', FORWARD_CHAIN, 'early')] },
    { table: 'filter6', name: FORWARD_CHAIN, rules: forwardRules(nets, 6), hooks: [hook('FORWARD', FORWARD_CHAIN, 'early')] },
    { table: 'filter', name: INPUT_CHAIN, rules: inputRules(nets), hooks: [hook('INPUT', INPUT_CHAIN, 'early')] },
    {
      table: 'nat',
      name: DNAT_CHAIN,
      rules: nets.flatMap(dnatRules),
      hooks: ['PREROUTING', 'OUTPUT'].map((from) => hook(from, DNAT_CHAIN, 'append', '-m addrtype --dst-type LOCAL ')),
    },
    { table: 'nat', name: POSTROUTING_CHAIN, rules: nets.flatMap(postroutingRules), hooks: [hook('POSTROUTING', POSTROUTING_CHAIN, 'append')] },
  ];
  return chains.filter((c) => c.rules.length > 0);
}

/** ICMPv6 neighbour solicitation and advertisement, as ip6tables-save prints their types. */
const ND_TYPES = [135, 136];

/**
 * The FORWARD policy for one family. IPv6 rules are written only for networks with IPv6 data
 * (the shared isolation and reply rules whenever any network exists); IPv6 has no DNAT of ours,
 * so the hairpin and published-port accepts are IPv4 only.
 */
function forwardRules(all: readonly FirewallNetwork[], family: 4 | 6): string[] {
  const nets = family === 4 ? all : all.filter((n) => n.net.ipv6Data.length > 0);
  const rules: string[] = [];
  // Inside each network first: icc, or only hairpin through a published port without it.
  for (const { net, policy } of nets) {
    const b = net.bridge;
    const who = (role: string) => tag(`network:${net.networkId}:${role}`);
    if (policy.icc) rules.push(`-i ${b} -o ${b} ${who('icc')} -j ACCEPT`);
    else {
      if (family === 4) rules.push(`-i ${b} -o ${b} -m conntrack --ctstate DNAT ${who('hairpin')} -j ACCEPT`);
      else rules.push(...ND_TYPES.map((t) => `-i ${b} -o ${b} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} ${who('nd')} -j ACCEPT`));
      rules.push(`-i ${b} -o ${b} ${who('no-icc')} -j DROP`);
    }
    if (net.internal) rules.push(`-i ${b} ${who('internal')} -j DROP`, `-o ${b} ${who('internal')} -j DROP`);
  }
  // Replies to what was let through; then no network reaches another, or one of Docker's
  // bridges, or the reverse, except through a published port (as Docker's own bridges do).
  const ours = bridgePatterns(nets);
  for (const b of ours) rules.push(`-o ${b} -m conntrack --ctstate RELATED,ESTABLISHED ${tag('established')} -j ACCEPT`);
  for (const b of ours) {
    for (const other of [...ours, ...DOCKER_BRIDGES]) {
      rules.push(`-i ${b} -o ${other} -m conntrack ! --ctstate DNAT ${tag('isolation')} -j DROP`);
      if (!ours.includes(other)) rules.push(`-i ${other} -o ${b} -m conntrack ! --ctstate DNAT ${tag('isolation')} -j DROP`);
    }
  }
  for (const { net, policy } of nets) {
    if (net.internal) continue;
    const b = net.bridge;
    const who = (role: string) => tag(`network:${net.networkId}:${role}`);
    if (policy.allow === null) {
      if (family === 4) rules.push(`-o ${b} -m conntrack --ctstate DNAT ${who('published')} -j ACCEPT`);
    } else rules.push(...policy.allow.map((a) => `-o ${b} ${allowMatch(a, family)} ${who('allow')} -j ACCEPT`));
    rules.push(`-o ${b} ${who('ingress')} -j DROP`, `-i ${b} ${who('egress')} -j ACCEPT`);
  }
  return rules;
}

function allowMatch(a: AllowRule, family: 4 | 6): string {
  if (a.ports === null) return family === 4 ? `-p ${a.proto}` : '-p ipv6-icmp';
  const [lo, hi] = a.ports;
  return `-p ${a.proto} -m ${a.proto} --dport ${lo === hi ? lo : `${lo}:${hi}`}`;
}

function inputRules(nets: readonly FirewallNetwork[]): string[] {
  // route_localnet lets a container address 127.0.0.0/8 on the bridge; only replies may pass.
  if (!nets.some(needsLocalnet)) return [];
  return bridgePatterns(nets).map(
    (b) => `! -s 127.0.0.0/8 -d 127.0.0.0/8 -i ${b} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ${tag('localnet')} -j DROP`,
  );
}

/**
 * Interface patterns that cover every ledgernet bridge: `lnb-+`, plus each custom bridge name
 * (`ledgernet.bridge`) that the wildcard does not match, sorted.
 */
function bridgePatterns(nets: readonly FirewallNetwork[]): string[] {
  const custom = nets.map((n) => n.net.bridge).filter((b) => !b.startsWith(BRIDGE_PREFIX));
  return [OUR_BRIDGES, ...[...new Set(custom)].sort()];
}

/** A network whose bridge needs route_localnet=1: it has published ports (reachable on 127.0.0.1). */
export function needsLocalnet(n: FirewallNetwork): boolean {
  return !n.net.internal && n.endpoints.some((ep) => ep.portmap.length > 0 && ep.address !== null);
}

function postroutingRules({ net, policy, endpoints }: FirewallNetwork): string[] {
  if (net.internal) return [];
  const b = net.bridge;
  const who = (role: string) => tag(`network:${net.networkId}:${role}`);
  const rules: string[] = [];
  if (policy.masquerade) {
    for (const d of net.ipv4Data) rules.push(`-s ${d.pool} ! -o ${b} ${who('masquerade')} -j MASQUERADE`);
  }
  if (endpoints.some((ep) => ep.portmap.length > 0 && ep.address !== null)) {
    rules.push(`-s 127.0.0.0/8 -o ${b} ${who('localhost')} -j MASQUERADE`);
    for (const d of net.ipv4Data) rules.push(`-s ${d.pool} -o ${b} -m conntrack --ctstate DNAT ${who('hairpin')} -j MASQUERADE`);
  }
  return rules;
}

const PROTO: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

interface PortRange {
  readonly proto: string;
  readonly hostIp: string;
  readonly hostLo: number;
  readonly hostHi: number;
  readonly port: number;
}

/**
 * Docker expands `-p 9000-9002:8000-8002` into one binding per port; consecutive bindings with
 * the same offset become one range again, so one rule serves the whole range.
 */
export function portRanges(portmap: readonly PortBinding[]): PortRange[] {
  const singles = portmap
    .filter((p) => PROTO[p.proto] !== undefined && p.hostPort > 0 && !p.hostIp.includes(':'))
    .map((p) => ({ proto: PROTO[p.proto] ?? '', hostIp: p.hostIp === '0.0.0.0' ? '' : p.hostIp, hostLo: p.hostPort, hostHi: p.hostPort, port: p.port }))
    .sort((a, b) => (a.proto + a.hostIp < b.proto + b.hostIp ? -1 : a.proto + a.hostIp > b.proto + b.hostIp ? 1 : a.hostLo - b.hostLo));
  const out: PortRange[] = [];
  for (const s of singles) {
    const last = out[out.length - 1];
    if (last && last.proto === s.proto && last.hostIp === s.hostIp && s.hostLo === last.hostHi + 1 && s.port - last.port === s.hostLo - last.hostLo) {
      out[out.length - 1] = { ...last, hostHi: s.hostLo };
    } else if (!(last && last.proto === s.proto && last.hostIp === s.hostIp && s.hostLo <= last.hostHi)) out.push(s);
  }
  return out;
}

function dnatRules({ net, endpoints }: FirewallNetwork): string[] {
  if (net.internal) return [];
  const rules: string[] = [];
  for (const ep of endpoints) {
    const ip = ep.address?.split('/')[0];
    if (ip === undefined) continue;
    for (const r of portRanges(ep.portmap)) {
      const dst = r.hostIp === '' ? '' : `-d ${r.hostIp}/32 `;
      const dport = r.hostLo === r.hostHi ? `${r.hostLo}` : `${r.hostLo}:${r.hostHi}`;
      const to = r.hostLo === r.hostHi ? `${ip}:${r.port}` : `${ip}:${r.port}-${r.port + r.hostHi - r.hostLo}/${r.hostLo}`;
      rules.push(`${dst}-p ${r.proto} -m ${r.proto} --dport ${dport} ${tag(`endpoint:${ep.endpointId}:port`)} -j DNAT --to-destination ${to}`);
    }
  }
  return rules;
}
