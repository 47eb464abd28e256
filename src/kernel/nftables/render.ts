// The firewall policy as one nftables table, `inet ledgernet` (IPv4 and IPv6 in one policy).
//
// Why this shape (see also README "Firewall"): a packet costs the same with 1 or 500 networks,
// and a change touches only what it is about.
// - Base chains hold a constant number of rules; per-network chains are reached through verdict
//   maps keyed by interface name (`iifname vmap @from`, `oifname vmap @to`): one hash lookup
//   each, whatever the number of networks. A network added or removed is a map element and its
//   own chains; no shared chain is rewritten.
// - Published ports are map elements (`meta l4proto . th dport` → address, and → port; nft 1.0's
//   JSON cannot declare a map whose value is a concatenation, hence two maps): a port added is one
//   element in each, not a chain rewrite (Docker's nftables backend rewrites a chain per rule,
//   moby#53466). Ranges are one element per port.
// - `@bridges` (interval set: `lnb-*` and the custom bridge names) is the isolation set.
// The verdicts match the iptables backend's (kernel/iptables/render.ts) rule for rule; one
// difference by design: traffic DNATed from one ledgernet network into another always meets the
// destination network's ingress rules (iptables: whichever network comes first in its chain).
import { dockerBridgePatterns } from '../docker-bridges.ts';
import type { FirewallAllow, FirewallNetworkPolicy, FirewallPolicy, NftHook, NftRule, NftSetSpec } from '../types.ts';
import { egressChainName, egressJump, egressLookup, egressPolicyRules, hasEgressChain } from './egress.ts';
import * as x from './expr.ts';
import { vxlanInput } from './vxlan.ts';
import { DNAT6_RULES, hairpin6, MASQ6_RULE, NAT6_SETS, nat6Network } from './nat6.ts';
import { portElements } from './port-elements.ts';
import { DIRECT_SETS, directChain, directElements, directRules, openRules, unprotectedRules } from './gateway-mode.ts';

export interface Owner {
  readonly networkId: string | null;
  readonly endpointId: string | null;
}

interface DesiredSet {
  readonly spec: NftSetSpec;
  readonly elements: readonly { readonly value: unknown; readonly owner: Owner }[];
}

export interface DesiredChain {
  readonly hook: NftHook | null;
  readonly rules: readonly NftRule[];
  readonly owner: Owner;
}

export interface DesiredTable {
  readonly sets: ReadonlyMap<string, DesiredSet>;
  readonly chains: ReadonlyMap<string, DesiredChain>;
}

const SHARED: Owner = { networkId: null, endpointId: null };
/** Docker's own bridges (set `docker_bridges`, with the custom names of FirewallPolicy.dockerBridges). */
const DOCKER_BRIDGES = dockerBridgePatterns('*');
/** ICMPv6 neighbour solicitation and advertisement: pass inside a bridge even with icc=false. */
const ND_TYPES = { set: ['nd-neighbor-solicit', 'nd-neighbor-advert'] };
const LOCALHOST = '127.0.0.0/8';

const VERDICT_MAP = (type: string, flags?: string[]): NftSetSpec => ({ is: 'map', type, map: 'verdict', ...(flags ? { flags } : {}) });
const PORT_KEY = ['inet_proto', 'inet_service'];
const BOUND_KEY = ['ipv4_addr', 'inet_proto', 'inet_service'];
const SETS: Readonly<Record<string, NftSetSpec>> = {
  bridges: { is: 'set', type: 'ifname', flags: ['interval'] },
  docker_bridges: { is: 'set', type: 'ifname', flags: ['interval'] },
  from: VERDICT_MAP('ifname'),
  to: VERDICT_MAP('ifname'),
  nat_to: VERDICT_MAP('ifname'),
  masq: VERDICT_MAP('ipv4_addr', ['interval']),
  dnat_addr: { is: 'map', type: PORT_KEY, map: 'ipv4_addr' },
  dnat_port: { is: 'map', type: PORT_KEY, map: 'inet_service' },
  bound_addr: { is: 'map', type: BOUND_KEY, map: 'ipv4_addr' },
  bound_port: { is: 'map', type: BOUND_KEY, map: 'inet_service' },
  ...NAT6_SETS,
  ...DIRECT_SETS,
};

const hook = (type: NftHook['type'], name: string, prio: number): NftHook => ({ type, hook: name, prio, policy: 'accept' });

/** Per-network chain names: `net-<network id>-<role>`. */
const netChain = (n: FirewallNetworkPolicy, role: 'from' | 'to' | 'masq' | 'nat' | 'masq6' | 'direct') => `net-${n.networkId}-${role}`;

/** The whole table for the policy; null when there are no networks (then there is no table). */
export function renderTable(policy: FirewallPolicy): DesiredTable | null {
  if (policy.networks.length === 0) return null;
  const shared = renderShared(policy);
  const sets = new Map(Object.entries(shared.specs).map(([name, spec]) => [name, { spec, elements: [] as { value: unknown; owner: Owner }[] }]));
  const chains = new Map<string, DesiredChain>(shared.chains);
  for (const part of [shared, ...policy.networks.map(networkPart)]) {
    for (const [name, chain] of part.chains) chains.set(name, chain);
    for (const e of part.elements) sets.get(e.set)?.elements.push({ value: e.value, owner: e.owner });
  }
  return { sets, chains };
}

/**
 * What the table holds besides the networks' parts: the declarations of its sets and maps, the
 * base chains, and the elements of `bridges` and `docker_bridges`. Small, whatever the networks.
 */
export function renderShared(policy: FirewallPolicy): NetworkPart & { readonly specs: Readonly<Record<string, NftSetSpec>> } {
  const nets = policy.networks;
  // The egress map only while a network has an egress policy: other tables stay as they were.
  const specs = { ...SETS, ...(nets.some(hasEgressChain) ? { egress: VERDICT_MAP('ifname') } : {}) };
  const custom = nets.map((n) => n.bridge).filter((b) => !b.startsWith(policy.bridgePrefix));
  const elements = [
    ...[`${policy.bridgePrefix}*`, ...new Set(custom)].map((value) => ({ set: 'bridges', value, owner: SHARED })),
    ...[...DOCKER_BRIDGES, ...(policy.dockerBridges ?? [])].map((value) => ({ set: 'docker_bridges', value, owner: SHARED })),
  ];
  return { specs, chains: baseChainsOf(policy), elements };
}

/** What one network adds to the table: its chains and its elements of the shared sets and maps. */
export interface NetworkPart {
  readonly chains: readonly (readonly [string, DesiredChain])[];
  readonly elements: readonly { readonly set: string; readonly value: unknown; readonly owner: Owner }[];
}

/**
 * Why a memo: a network's part is a pure function of its policy object, which the reconciler
 * keeps while the network does not change (reconciler/scope.ts). Made once, its rules and
 * elements are the same objects pass after pass, so the diff's canonical keys (canon.ts, memoised
 * per object) are computed once too: at 200 networks the plan of a Docker call that changed the
 * firewall took ~60 ms, most of it the keys of every rule rendered anew.
 */
const parts = new WeakMap<FirewallNetworkPolicy, NetworkPart>();

export function networkPart(n: FirewallNetworkPolicy): NetworkPart {
  let part = parts.get(n);
  if (part === undefined) parts.set(n, (part = renderNetwork(n)));
  return part;
}

function renderNetwork(n: FirewallNetworkPolicy): NetworkPart {
  const chains: [string, DesiredChain][] = [];
  const elements: { set: string; value: unknown; owner: Owner }[] = [];
  const add = (set: string, value: unknown, owner: Owner) => elements.push({ set, value, owner });
  const owner: Owner = { networkId: n.networkId, endpointId: null };
  const chain = (role: Parameters<typeof netChain>[1], rules: NftRule[]) => chains.push([netChain(n, role), { hook: null, rules, owner }]);
  chain('from', fromRules(n));
  chain('to', toRules(n));
  add('from', [n.bridge, x.jump(netChain(n, 'from'))], owner);
  add('to', [n.bridge, x.jump(netChain(n, 'to'))], owner);
  if (hasEgressChain(n)) {
    chains.push([egressChainName(n.networkId), { hook: null, rules: egressPolicyRules(n), owner }]);
    add('egress', [n.bridge, x.jump(egressChainName(n.networkId))], owner);
  }
  if (n.masquerade.length > 0) {
    chain('masq', [[x.oifname(n.bridge), x.ret], [x.natTo('ip', n.snat4 ?? null)]]);
    for (const pool of n.masquerade) add('masq', [x.prefix(pool), x.jump(netChain(n, 'masq'))], owner);
  }
  const masq6 = nat6Network(n, netChain(n, 'masq6'), (set, value, endpointId) => add(set, value, { networkId: n.networkId, endpointId: endpointId ?? null }));
  if (masq6 !== null) chain('masq6', masq6);
  const guarded = directElements(n);
  if (guarded.length > 0) chain('direct', directRules(n));
  for (const g of guarded) add(g.set, [g.key, x.jump(netChain(n, 'direct'))], owner);
  const nat = [...natRules(n), ...hairpin6(n)];
  if (nat.length > 0) {
    chain('nat', nat);
    add('nat_to', [n.bridge, x.jump(netChain(n, 'nat'))], owner);
  }
  for (const f of n.forwards) {
    const who = { networkId: n.networkId, endpointId: f.endpointId };
    const { addrs, ports } = portElements(f);
    for (const e of addrs) add(f.hostIp === '' ? 'dnat_addr' : 'bound_addr', e, who);
    for (const e of ports) add(f.hostIp === '' ? 'dnat_port' : 'bound_port', e, who);
  }
  return { chains, elements };
}

/** The base chains, the same objects for the same inputs (so the diff's keys are memo hits). */
const bases = new Map<string, readonly (readonly [string, DesiredChain])[]>();
function baseChainsOf(policy: FirewallPolicy): readonly (readonly [string, DesiredChain])[] {
  const nets = policy.networks;
  const published = nets.some((n) => n.published);
  const egress = nets.some(hasEgressChain);
  const key = JSON.stringify([published, egress, policy.vxlanPeers ?? []]);
  let chains = bases.get(key);
  if (chains === undefined) {
    chains = baseChains(published, egress, vxlanInput(policy));
    // A few keys in practice (vxlan peers come and go): bounded all the same.
    if (bases.size >= 64) bases.clear();
    bases.set(key, chains);
  }
  return chains;
}

function baseChains(published: boolean, egress: boolean, vxlan: readonly NftRule[]): [string, DesiredChain][] {
  // From prerouting, not to 127.0.0.0/8: DNAT there comes before routing, so a port published on
  // 127.0.0.1 would be reachable from the LAN and other containers (moby#41872). The host's own
  // connections to 127.0.0.1 (output) keep their DNAT.
  const notLoopback = x.match(x.payload('ip', 'daddr'), x.prefix(LOCALHOST), '!=');
  const dnat = (from: readonly x.Expr[]): NftRule[] => [
    [...from, x.localDst, x.dnatVia(x.portKey(false), 'dnat_addr', 'dnat_port')],
    [...from, x.localDst, x.dnatVia(x.portKey(true), 'bound_addr', 'bound_port')],
  ];
  // route_localnet lets a container address 127.0.0.0/8 on the bridge; only replies may pass.
  const localnet = [x.iifname('@bridges'), x.match(x.payload('ip', 'saddr'), x.prefix(LOCALHOST), '!='), x.match(x.payload('ip', 'daddr'), x.prefix(LOCALHOST)), x.notEstablished, x.notCtDnat, x.drop];
  const base = (h: NftHook, rules: NftRule[]): DesiredChain => ({ hook: h, rules, owner: SHARED });
  return [
    ['forward', base(hook('filter', 'forward', 0), [[x.vmap(x.meta('iifname'), 'from')], [x.vmap(x.meta('oifname'), 'to')]])],
    ['input', base(hook('filter', 'input', 0), [...vxlan, ...(published ? [localnet] : []), ...(egress ? [egressLookup] : [])])],
    ['prerouting', base(hook('nat', 'prerouting', -100), [...dnat([notLoopback]), ...DNAT6_RULES])],
    ['output', base(hook('nat', 'output', -100), [...dnat([]), ...DNAT6_RULES])],
    ['direct', { ...directChain(), owner: SHARED }],
    ['postrouting', base(hook('nat', 'postrouting', 100), [[x.vmap(x.meta('oifname'), 'nat_to')], [x.vmap(x.payload('ip', 'saddr'), 'masq')], MASQ6_RULE])],
  ];
}

/**
 * What conntrack marks INVALID (no connection: an ICMP echo reply with no request, a stray TCP
 * segment) is dropped before the egress policy and isolation: `ct state new` and `ct status dnat`
 * never match it, so it would otherwise leave by the accepts that follow (past egress_deny and
 * egress_allow, unmasqueraded) or reach Docker's bridges.
 */
const INVALID: NftRule = [x.ctInvalid, x.drop];

/** Statements that keep a rule to IPv4 when the network has no IPv6 data (as ip6tables has no rule for it). */
const family = (n: FirewallNetworkPolicy): x.Expr[] => (n.ipv6 ? [] : [x.ipv4Only]);

/**
 * What leaves bridge `n` (jumped to from `forward` by `iifname`): inside the network, then
 * --internal, then isolation from the other networks and Docker's bridges, then the egress
 * policy (egress.ts) for new connections, then what may leave.
 * Each part is one function, so another per-network rule kind is one more line here.
 */
function fromRules(n: FirewallNetworkPolicy): NftRule[] {
  return [...noIpv6(n, x.oifname(n.bridge, '!=')), ...insideRules(n), ...internalRules(n), INVALID, ...isolationRules(), ...egressJump(n), ...leaveRules(n)];
}

/** What enters bridge `n` from elsewhere (jumped to by `oifname`). */
function toRules(n: FirewallNetworkPolicy): NftRule[] {
  const others = [x.established, x.accept];
  const isolation = [
    [x.iifname('@docker_bridges'), x.notCtDnat, x.drop],
    [x.iifname('@bridges'), x.notCtDnat, x.drop],
  ];
  return [...noIpv6(n, x.iifname(n.bridge, '!=')), ...internalRules(n), INVALID, others, ...isolation, ...ingressRules(n)];
}

/**
 * A network without IPv6 forwards no IPv6, either way (internal or not, whatever its egress
 * policy): a container that gives itself an address (NET_ADMIN, a rogue router advertisement)
 * must not leave through the host. IPv6 inside the bridge (neighbour discovery) is not forwarded.
 */
function noIpv6(n: FirewallNetworkPolicy, elsewhere: x.Expr): NftRule[] {
  return n.ipv6 ? [] : [[x.match(x.meta('nfproto'), 'ipv6'), elsewhere, x.drop]];
}

/** icc, or only hairpin through a published port and neighbour discovery (IPv6) without it. */
function insideRules(n: FirewallNetworkPolicy): NftRule[] {
  const here = [...family(n), x.oifname(n.bridge)];
  if (n.icc) return [[...here, x.accept]];
  return [
    [x.oifname(n.bridge), ...family(n), x.ctDnat, x.accept],
    ...(n.ipv6 ? [[x.oifname(n.bridge), x.match(x.payload('icmpv6', 'type'), ND_TYPES), x.accept]] : []),
    [...here, x.drop],
  ];
}

function internalRules(n: FirewallNetworkPolicy): NftRule[] {
  return n.internal ? [[...family(n), x.drop]] : [];
}

/** Replies to what was let through; else no network reaches another or Docker's bridges but through a published port. */
function isolationRules(): NftRule[] {
  return [
    [x.oifname('@bridges'), x.established, x.accept],
    [x.oifname('@bridges'), x.notCtDnat, x.drop],
    [x.oifname('@docker_bridges'), x.notCtDnat, x.drop],
  ];
}

/** Out of the network to anywhere but another ledgernet network (whose `to` chain decides). */
function leaveRules(n: FirewallNetworkPolicy): NftRule[] {
  return n.internal ? [] : [[...family(n), x.oifname('@bridges', '!='), x.accept]];
}

/** What the gateway modes let in (gateway-mode.ts) or the allow-list; nothing else comes in. */
function ingressRules(n: FirewallNetworkPolicy): NftRule[] {
  if (n.internal) return [];
  const allowed = n.allow === null ? openRules(n) : n.allow.flatMap((a) => allowRules(n, a));
  return [...allowed, ...unprotectedRules(n), [...family(n), x.drop]];
}

function allowRules(n: FirewallNetworkPolicy, a: FirewallAllow): NftRule[] {
  if (a.ports !== null) return [[...family(n), x.dport(a.proto, a.ports), x.accept]];
  // `icmp` means ICMPv6 too on a network with IPv6 data.
  return [[x.l4proto('icmp'), x.accept], ...(n.ipv6 ? [[x.l4proto('ipv6-icmp'), x.accept]] : [])];
}

/** SNAT for 127.0.0.1 and hairpin connections into a network with published ports (IPv4). */
function natRules(n: FirewallNetworkPolicy): NftRule[] {
  if (!n.published) return [];
  const from = (cidr: string) => x.match(x.payload('ip', 'saddr'), x.prefix(cidr));
  return [[from(LOCALHOST), x.masquerade], ...n.pools.map((pool) => [from(pool), x.ctDnat, x.masquerade])];
}
