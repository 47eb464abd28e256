// The FORWARD policy of one family (filter LEDGERNET-FORWARD, or filter6's), as chains:
//
//   LEDGERNET-FORWARD  -> LEDGERNET-SEALED-<c>  per internal network: drop what crosses its bridge
//                      replies (RELATED,ESTABLISHED) to our bridges: one rule per packet of a connection
//                      -> LEDGERNET-EARLY-<c>   per network: jump to LEDGERNET-LAN-<id>
//                      isolation between bridges (shared, a few rules whatever the count)
//                      -> LEDGERNET-EGRESS-<c>  per network with an egress policy: jump to LEDGERNET-EG-<id>
//                      -> LEDGERNET-LATE-<c>    per network: jump to LEDGERNET-ING-<id>, then its egress accept
//   LEDGERNET-LAN-<id>  inside the network: icc, or hairpin only; internal drops
//   LEDGERNET-ING-<id>  what may enter it from outside (published ports, gateway mode, allow-list)
//
// The order is the one of a single chain with every network's rules (inside rules, isolation,
// egress jumps, ingress rules and egress accepts), which it was until the per-network chains: the
// buckets (dispatch.ts) keep the networks in bridge order, and a network's early and late lines
// match only its own bridge. So a packet meets the same rules in the same order, and a network's
// create or remove writes its own chains and a line or two in one bucket of about networks/16.
import { dockerBridgePatterns } from '../docker-bridges.ts';
import { egressJump } from './egress.ts';
import { dispatch, type StageLines } from './dispatch.ts';
import { allowMatch, closeRule, openRules } from './gateway-mode.ts';
import { bridgePatterns, owned, perNetwork, tag, type DesiredChain } from './shared.ts';
import type { FirewallNetworkPolicy, FirewallPolicy } from '../types.ts';

export const FORWARD_CHAIN = 'LEDGERNET-FORWARD';
const DOCKER_BRIDGES = dockerBridgePatterns('+');
/** ICMPv6 neighbour solicitation and advertisement, as ip6tables-save prints their types. */
const ND_TYPES = [135, 136];

const lanChain = (n: FirewallNetworkPolicy) => `LEDGERNET-LAN-${n.networkId.slice(0, 12)}`;
const ingressChain = (n: FirewallNetworkPolicy) => `LEDGERNET-ING-${n.networkId.slice(0, 12)}`;

/**
 * LEDGERNET-FORWARD, its buckets and the networks' own chains for one family. A network without
 * IPv6 data has only two drops in filter6 (noIpv6); the shared isolation and reply rules are
 * written whenever any network exists.
 */
export function forwardChains(policy: FirewallPolicy, family: 4 | 6): DesiredChain[] {
  const table = family === 4 ? 'filter' : 'filter6';
  const nets = family === 4 ? policy.networks : policy.networks.filter((n) => n.ipv6);
  const t = policy.ownerTag;
  const ours = bridgePatterns(policy.bridgePrefix, nets);
  const parts = policy.networks.map((n) => ({ bridge: n.bridge, p: family === 6 && !n.ipv6 ? noIpv6(t, n) : networkForward(t, n, family) }));
  const bucketed = (prefix: string, lines: (p: NetworkForward) => readonly string[], dirs: readonly ('-i' | '-o')[]) =>
    dispatch(table, prefix, policy.bridgePrefix, parts.map(({ bridge, p }): StageLines => ({ bridge, lines: lines(p) })), dirs, tag(t, 'dispatch'));
  const early = bucketed('LEDGERNET-EARLY-', (p) => p.early, ['-i', '-o']);
  const egress = bucketed('LEDGERNET-EGRESS-', (p) => p.egress, ['-i']);
  const late = bucketed('LEDGERNET-LATE-', (p) => p.late, ['-i', '-o']);
  // An internal network's drops come before the replies: a connection tracked before the network
  // was internal (a network made again on the same subnet, an address given again) must not go on
  // crossing its bridge. Only internal networks have lines here; the others keep the fast path.
  const sealed = bucketed('LEDGERNET-SEALED-', (p) => p.sealed, ['-i', '-o']);
  // Replies next: after its first packet, every packet of a connection costs one rule, however
  // many networks the host has. Only a first packet that was let through confirms a connection,
  // so this lets nothing through that the rules below drop as long as no connection outlives the
  // rules it was let through by (an internal network's drops stand above for that reason).
  const replies = ours.map((b) => `-o ${b} -m conntrack --ctstate RELATED,ESTABLISHED ${tag(t, 'established')} -j ACCEPT`);
  // What conntrack marks INVALID (no connection: an ICMP echo reply with no request) would pass
  // the egress policy (entered for NEW only) and leave by a network's egress accept: dropped here.
  const invalid = ours.map((b) => `-i ${b} -m conntrack --ctstate INVALID ${tag(t, 'invalid')} -j DROP`);
  const rules = [...sealed.rules, ...replies, ...early.rules, ...isolationRules(t, ours, [...DOCKER_BRIDGES, ...(policy.dockerBridges ?? [])]), ...invalid, ...egress.rules, ...late.rules];
  const own = [...parts.flatMap(({ p }) => (p.lan ? [p.lan] : [])), ...parts.flatMap(({ p }) => (p.ingress ? [p.ingress] : []))];
  return [{ table, name: FORWARD_CHAIN, rules, hooks: [] }, ...sealed.chains, ...early.chains, ...egress.chains, ...late.chains, ...own];
}

/** One network's part of the FORWARD policy of a family: its own chains and its lines in each stage's buckets. */
interface NetworkForward {
  /** Null for a network without IPv6 in filter6 (it has only its drops). */
  readonly lan: DesiredChain | null;
  /** Null for an internal network (nothing enters it). */
  readonly ingress: DesiredChain | null;
  /** An internal network's drops of what crosses its bridge, ahead of the replies' accept. */
  readonly sealed: readonly string[];
  readonly early: readonly string[];
  readonly egress: readonly string[];
  readonly late: readonly string[];
}

/** Made once per network policy object (shared.ts: perNetwork). */
function networkForward(t: string, n: FirewallNetworkPolicy, family: 4 | 6): NetworkForward {
  return perNetwork(n, `forward${family} ${t}`, () => {
    const table = family === 4 ? 'filter' : 'filter6';
    const chain = (name: string, rules: string[]): DesiredChain => ({ table, name, rules, hooks: [], networkId: n.networkId });
    const lan = chain(lanChain(n), insideRules(t, n, family));
    const ingress = n.internal ? null : chain(ingressChain(n), ingressRules(t, n, family));
    const who = owned(t, n);
    const b = n.bridge;
    const sealed = n.internal ? [`-i ${b} ! -o ${b} ${who('sealed')} -j DROP`, `! -i ${b} -o ${b} ${who('sealed')} -j DROP`] : [];
    return { lan, ingress, sealed, early: lanJumps(t, n, lan.name), egress: egressJump(n, family, who), late: ingress ? lateLines(t, n, ingress.name) : [] };
  });
}

/**
 * A network without IPv6 forwards no IPv6, either way (internal or not, whatever its egress
 * policy): a container that gives itself an address (NET_ADMIN, a rogue router advertisement)
 * must not leave through the host. IPv6 inside the bridge (neighbour discovery) is not forwarded
 * and stays as it was.
 */
function noIpv6(t: string, n: FirewallNetworkPolicy): NetworkForward {
  return perNetwork(n, `no-ipv6 ${t}`, () => {
    const b = n.bridge;
    const who = owned(t, n);
    const early = [`-i ${b} ! -o ${b} ${who('no-ipv6')} -j DROP`, `! -i ${b} -o ${b} ${who('no-ipv6')} -j DROP`];
    return { lan: null, ingress: null, sealed: [], early, egress: [], late: [] };
  });
}

/** The jumps to a network's inside chain: its own traffic, and for an internal one all of its bridge's. */
function lanJumps(t: string, n: FirewallNetworkPolicy, chain: string): string[] {
  const b = n.bridge;
  const who = owned(t, n);
  return n.internal ? [`-i ${b} ${who('lan')} -j ${chain}`, `-o ${b} ${who('lan')} -j ${chain}`] : [`-i ${b} -o ${b} ${who('lan')} -j ${chain}`];
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
function isolationRules(t: string, ours: readonly string[], docker: readonly string[]): string[] {
  const rules: string[] = [];
  for (const b of ours) {
    for (const other of [...ours, ...docker]) {
      rules.push(`-i ${b} -o ${other} -m conntrack ! --ctstate DNAT ${tag(t, 'isolation')} -j DROP`);
      if (!ours.includes(other)) rules.push(`-i ${other} -o ${b} -m conntrack ! --ctstate DNAT ${tag(t, 'isolation')} -j DROP`);
    }
  }
  return rules;
}

/** What may enter a network from outside (published ports or the allow-list); ends in a drop or an accept. */
function ingressRules(t: string, n: FirewallNetworkPolicy, family: 4 | 6): string[] {
  const who = owned(t, n);
  const open = n.allow === null ? openRules(n, family, who) : n.allow.map((a) => `-o ${n.bridge} ${allowMatch(a, family)} ${who('allow')} -j ACCEPT`);
  return [...open, closeRule(n, family, who)];
}

/** The jump into a network's ingress chain, then its egress accept (not for an internal one: it has neither). */
function lateLines(t: string, n: FirewallNetworkPolicy, ingress: string): string[] {
  const b = n.bridge;
  const who = owned(t, n);
  return [`-o ${b} ${who('inbound')} -j ${ingress}`, `-i ${b} ${who('egress')} -j ACCEPT`];
}
