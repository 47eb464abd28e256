// The firewall policy as iptables rules, written exactly as `iptables-save` prints them
// (addresses with their prefix length, `-s/-d/-i/-o/-p` before the matches, `-m tcp` spelled
// out) so that a converged kernel plans nothing. test/integration/firewall-rules.test.ts loads
// every shape into a real table and checks it reads back byte for byte.
//
// Why these chains and places:
// - filter LEDGERNET-FORWARD, jumped to from FORWARD right after Docker's `-j DOCKER-USER`: the
//   operator's DOCKER-USER rules still come first, and our isolation drops come before Docker's
//   own `-i br-x ! -o br-x -j ACCEPT`, which would otherwise let Docker's bridges reach ours.
//   Its first rule accepts replies (RELATED,ESTABLISHED), so a packet of an established
//   connection costs one rule with 1 or 500 networks.
// - filter LEDGERNET-INPUT (from INPUT): published ports on 127.0.0.1 need route_localnet on the
//   bridge; this drops what route_localnet would otherwise let containers send to 127.0.0.0/8.
// - nat LEDGERNET-DNAT (from PREROUTING and OUTPUT, for local destinations): published ports,
//   one rule per range. nat LEDGERNET-POSTROUTING: masquerade, and SNAT for 127.0.0.1 and hairpin.
// - ip6tables filter LEDGERNET-FORWARD (table `filter6` here), hooked like the IPv4 one: the same
//   isolation, icc, internal and allow-list policy for IPv6 (bridged IPv6 passes ip6tables FORWARD
//   with bridge-nf-call-ip6tables=1, and is routed between bridges when IPv6 forwarding is on).
//   Published ports and hairpin are accepted as for IPv4 (their NAT is in ip6tables' nat table,
//   nat6.ts); no LEDGERNET-INPUT for localnet (route_localnet is IPv4 only). With icc=false,
//   neighbour solicitations and advertisements still pass inside the bridge, as ARP (which
//   iptables never sees) does for IPv4.
// - filter/filter6 LEDGERNET-EG-<id>: a network's egress policy, entered from LEDGERNET-FORWARD
//   and LEDGERNET-INPUT (filter6 gets a LEDGERNET-INPUT for it); see egress.ts.
// - mangle/mangle6 LEDGERNET-DIRECT (from PREROUTING): direct-access protection of `nat` networks,
//   and what each gateway mode lets in; see gateway-mode.ts.
import { egressChainName, egressJump, egressRules } from './egress.ts';
import { vxlanInputRules } from './vxlan.ts';
import { allowMatch, closeRule, DIRECT_CHAIN, DIRECT_HOOK_MATCH, directRules, openRules } from './gateway-mode.ts';
import type { FirewallNetworkPolicy, FirewallPolicy, PortForward } from '../types.ts';

/** `filter6`, `nat6` and `mangle6` are ip6tables' filter, nat and mangle tables. */
export type Table = 'filter' | 'nat' | 'filter6' | 'nat6' | 'mangle' | 'mangle6';

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
  /** The network whose chain this is (a LEDGERNET-EG-… chain), for plans; absent: shared. */
  readonly networkId?: string;
}

const FORWARD_CHAIN = 'LEDGERNET-FORWARD';
const INPUT_CHAIN = 'LEDGERNET-INPUT';
const DNAT_CHAIN = 'LEDGERNET-DNAT';
const POSTROUTING_CHAIN = 'LEDGERNET-POSTROUTING';
/** Docker's own bridges: the default one, user networks (`br-<id>`), and the swarm gateway bridge. */
const DOCKER_BRIDGES = ['docker0', 'br-+', 'docker_gwbridge'];

type Nets = readonly FirewallNetworkPolicy[];


/** `-m comment` with the policy's owner tag (`ledgernet:` + who the rule is for). */
const tag = (t: string, owner: string) => `-m comment --comment "${t}${owner}"`;

export const hook = (t: string, from: string, chain: string, placement: DesiredHook['placement'], match = ''): DesiredHook => ({
  from,
  rule: `${match}${tag(t, 'hook')} -j ${chain}`,
  placement,
});

/** All ledgernet chains for the policy. Chains with no rules are left out. */
export function renderChains(policy: FirewallPolicy): DesiredChain[] {
  const nets = policy.networks;
  if (nets.length === 0) return [];
  const t = policy.ownerTag;
  const chains: DesiredChain[] = [
    { table: 'filter', name: FORWARD_CHAIN, rules: forwardRules(policy, 4), hooks: [hook(t, 'FORWARD', FORWARD_CHAIN, 'early')] },
    { table: 'filter6', name: FORWARD_CHAIN, rules: forwardRules(policy, 6), hooks: [hook(t, 'FORWARD', FORWARD_CHAIN, 'early')] },
    { table: 'filter', name: INPUT_CHAIN, rules: [...vxlanInputRules(policy), ...inputRules(policy)], hooks: [hook(t, 'INPUT', INPUT_CHAIN, 'early')] },
    {
      table: 'filter6',
      name: INPUT_CHAIN,
      rules: nets.filter((n) => n.ipv6).flatMap((n) => egressJump(n, 6, owned(t, n))),
      hooks: [hook(t, 'INPUT', INPUT_CHAIN, 'early')],
    },
    ...nets.flatMap((n) =>
      ([4, 6] as const).map((f): DesiredChain => ({
        table: f === 4 ? 'filter' : 'filter6',
        name: egressChainName(n.networkId),
        rules: egressRules(n, f, owned(t, n)),
        hooks: [],
        networkId: n.networkId,
      })),
    ),
    {
      table: 'nat',
      name: DNAT_CHAIN,
      rules: nets.flatMap((n) => n.forwards.map((f) => dnatRule(t, f))),
      hooks: ['PREROUTING', 'OUTPUT'].map((from) => hook(t, from, DNAT_CHAIN, 'append', '-m addrtype --dst-type LOCAL ')),
    },
    { table: 'nat', name: POSTROUTING_CHAIN, rules: nets.flatMap((n) => postroutingRules(t, n)), hooks: [hook(t, 'POSTROUTING', POSTROUTING_CHAIN, 'append')] },
    ...([4, 6] as const).map((f): DesiredChain => ({
      table: f === 4 ? 'mangle' : 'mangle6',
      name: DIRECT_CHAIN,
      rules: nets.flatMap((n) => directRules(n, f, owned(t, n))),
      hooks: [hook(t, 'PREROUTING', DIRECT_CHAIN, 'append', DIRECT_HOOK_MATCH)],
    })),
  ];
  return chains.filter((c) => c.rules.length > 0);
}

/**
 * What a backend that filters elsewhere (nftables) needs of iptables on a Docker host: Docker
 * sets FORWARD's policy to DROP, and a drop in any table is final, so ledgernet's bridges are
 * accepted here (after DOCKER-USER, like the full policy) and nothing else is written.
 */
export function renderAcceptOnly(policy: FirewallPolicy, role: string): DesiredChain[] {
  if (policy.networks.length === 0) return [];
  const t = policy.ownerTag;
  const rules = bridgePatterns(policy.bridgePrefix, policy.networks).flatMap((b) => [`-i ${b} ${tag(t, role)} -j ACCEPT`, `-o ${b} ${tag(t, role)} -j ACCEPT`]);
  const forward = (['filter', 'filter6'] as const).map((table) => ({ table, name: FORWARD_CHAIN, rules, hooks: [hook(t, 'FORWARD', FORWARD_CHAIN, 'early')] }));
  const vxlan = vxlanInputRules(policy);
  return [...forward, ...(vxlan.length > 0 ? [{ table: 'filter' as const, name: INPUT_CHAIN, rules: vxlan, hooks: [hook(t, 'INPUT', INPUT_CHAIN, 'early')] }] : [])];
}

/** ICMPv6 neighbour solicitation and advertisement, as ip6tables-save prints their types. */
const ND_TYPES = [135, 136];

export const owned = (t: string, n: FirewallNetworkPolicy) => (role: string) => tag(t, `network:${n.networkId}:${role}`);

/**
 * The FORWARD policy for one family. IPv6 rules are written only for networks with IPv6 data
 * (the shared isolation and reply rules whenever any network exists).
 */
function forwardRules(policy: FirewallPolicy, family: 4 | 6): string[] {
  const nets = family === 4 ? policy.networks : policy.networks.filter((n) => n.ipv6);
  const t = policy.ownerTag;
  const ours = bridgePatterns(policy.bridgePrefix, nets);
  // Replies first: after its first packet, every packet of a connection costs one rule, however
  // many networks the host has (the rules below grow with them). Only a first packet that was
  // let through confirms a connection, so this lets nothing through that the rules below drop.
  const replies = ours.map((b) => `-o ${b} -m conntrack --ctstate RELATED,ESTABLISHED ${tag(t, 'established')} -j ACCEPT`);
  const egress = nets.flatMap((n) => egressJump(n, family, owned(t, n)));
  return [...replies, ...nets.flatMap((n) => insideRules(t, n, family)), ...isolationRules(t, ours), ...egress, ...nets.flatMap((n) => ingressRules(t, n, family))];
}

/** Inside one network: icc, or only hairpin through a published port without it. */
function insideRules(t: string, n: FirewallNetworkPolicy, family: 4 | 6): string[] {
  const b = n.bridge;
  const who = owned(t, n);
  const rules: string[] = [];
  if (n.icc) rules.push(`-i ${b} -o ${b} ${who('icc')} -j ACCEPT`);
  else {
    rules.push(`-i ${b} -o ${b} -m conntrack --ctstate DNAT ${who('hairpin')} -j ACCEPT`);
    if (family === 6) rules.push(...ND_TYPES.map((t) => `-i ${b} -o ${b} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} ${who('nd')} -j ACCEPT`));
    rules.push(`-i ${b} -o ${b} ${who('no-icc')} -j DROP`);
  }
  if (n.internal) rules.push(`-i ${b} ${who('internal')} -j DROP`, `-o ${b} ${who('internal')} -j DROP`);
  return rules;
}

/**
 * No network reaches another, or one of Docker's bridges, or the reverse, except through a
 * published port (as Docker's own bridges do).
 */
function isolationRules(t: string, ours: readonly string[]): string[] {
  const rules: string[] = [];
  for (const b of ours) {
    for (const other of [...ours, ...DOCKER_BRIDGES]) {
      rules.push(`-i ${b} -o ${other} -m conntrack ! --ctstate DNAT ${tag(t, 'isolation')} -j DROP`);
      if (!ours.includes(other)) rules.push(`-i ${other} -o ${b} -m conntrack ! --ctstate DNAT ${tag(t, 'isolation')} -j DROP`);
    }
  }
  return rules;
}

/** What may enter a network from outside (published ports or the allow-list), and egress. */
function ingressRules(t: string, n: FirewallNetworkPolicy, family: 4 | 6): string[] {
  if (n.internal) return [];
  const b = n.bridge;
  const who = owned(t, n);
  const open = n.allow === null ? openRules(n, family, who) : n.allow.map((a) => `-o ${b} ${allowMatch(a, family)} ${who('allow')} -j ACCEPT`);
  return [...open, closeRule(n, family, who), `-i ${b} ${who('egress')} -j ACCEPT`];
}

function inputRules({ bridgePrefix, ownerTag, networks }: FirewallPolicy): string[] {
  const egress = networks.flatMap((n) => egressJump(n, 4, owned(ownerTag, n)));
  // route_localnet lets a container address 127.0.0.0/8 on the bridge; only replies may pass.
  if (!networks.some((n) => n.published)) return egress;
  const localnet = bridgePatterns(bridgePrefix, networks).map(
    (b) => `! -s 127.0.0.0/8 -d 127.0.0.0/8 -i ${b} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ${tag(ownerTag, 'localnet')} -j DROP`,
  );
  return [...localnet, ...egress];
}

/**
 * Interface patterns that cover every ledgernet bridge: the prefix wildcard (`lnb-+`), plus each
 * custom bridge name (`ledgernet.bridge`) that the wildcard does not match, sorted.
 */
function bridgePatterns(prefix: string, nets: Nets): string[] {
  const custom = nets.map((n) => n.bridge).filter((b) => !b.startsWith(prefix));
  return [`${prefix}+`, ...[...new Set(custom)].sort()];
}

function postroutingRules(t: string, n: FirewallNetworkPolicy): string[] {
  const b = n.bridge;
  const who = owned(t, n);
  const rules = n.masquerade.map((pool) => `-s ${pool} ! -o ${b} ${who('masquerade')} ${natTarget(n.snat4 ?? null)}`);
  if (n.published) {
    rules.push(`-s 127.0.0.0/8 -o ${b} ${who('localhost')} -j MASQUERADE`);
    for (const pool of n.pools) rules.push(`-s ${pool} -o ${b} -m conntrack --ctstate DNAT ${who('hairpin')} -j MASQUERADE`);
  }
  return rules;
}

/** Egress leaves with the host's address (MASQUERADE) or, with host_ipv4/host_ipv6, with that one. */
export function natTarget(snat: string | null): string {
  return snat === null ? '-j MASQUERADE' : `-j SNAT --to-source ${snat}`;
}

/** One published range, IPv4 or IPv6 (`[addr]:port`, `-d addr/128`), as iptables-save prints it. */
export function dnatRule(t: string, f: PortForward, family: 4 | 6 = 4): string {
  const [lo, hi] = f.hostPorts;
  const dst = f.hostIp === '' ? '' : `-d ${f.hostIp}/${family === 4 ? 32 : 128} `;
  const dport = lo === hi ? `${lo}` : `${lo}:${hi}`;
  const ip = family === 4 ? f.ip : `[${f.ip}]`;
  const to = lo === hi ? `${ip}:${f.port}` : `${ip}:${f.port}-${f.port + hi - lo}/${lo}`;
  return `${dst}-p ${f.proto} -m ${f.proto} --dport ${dport} ${tag(t, `endpoint:${f.endpointId}:port`)} -j DNAT --to-destination ${to}`;
}
