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
//   connection costs one rule with 1 or 500 networks. Each network's rules are in chains of its
//   own, reached through buckets of networks (forward.ts, dispatch.ts).
// - filter LEDGERNET-INPUT (from INPUT): published ports on 127.0.0.1 need route_localnet on the
//   bridge; this drops what route_localnet would otherwise let containers send to 127.0.0.0/8.
// - nat LEDGERNET-DNAT (from PREROUTING and OUTPUT, for local destinations; from PREROUTING not
//   for 127.0.0.0/8): published ports, one rule per range. nat LEDGERNET-POSTROUTING:
//   masquerade, and SNAT for 127.0.0.1 and hairpin.
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
//   and what each gateway mode lets in; see gateway-mode.ts. Its rules, and those of nat
//   LEDGERNET-POSTROUTING, match one network's own subnet, pool or bridge, so their order across
//   networks does not matter: they stand in buckets (LEDGERNET-DIRECT-<c>, …), each entered by
//   one jump, so that a network's create or remove edits a chain of about networks/16 rules.
import { dispatch } from './dispatch.ts';
import { egressChainName, egressJump, egressRules } from './egress.ts';
import { FORWARD_CHAIN, forwardChains } from './forward.ts';
import { vxlanInputRules } from './vxlan.ts';
import { DIRECT_CHAIN, DIRECT_HOOK_MATCH, directRules } from './gateway-mode.ts';
import { bridgePatterns, owned, perNetwork, tag, type DesiredChain, type DesiredHook } from './shared.ts';
import type { FirewallNetworkPolicy, FirewallPolicy, PortForward } from '../types.ts';

const INPUT_CHAIN = 'LEDGERNET-INPUT';
const DNAT_CHAIN = 'LEDGERNET-DNAT';
const POSTROUTING_CHAIN = 'LEDGERNET-POSTROUTING';
const LOCALHOST = '127.0.0.0/8';
const LOCAL_DST = '-m addrtype --dst-type LOCAL ';

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
    ...([4, 6] as const).flatMap((f) => forwardChains(policy, f).map((c) => (c.name === FORWARD_CHAIN ? { ...c, hooks: [hook(t, 'FORWARD', FORWARD_CHAIN, 'early')] } : c))),
    { table: 'filter', name: INPUT_CHAIN, rules: [...vxlanInputRules(policy), ...inputRules(policy)], hooks: [hook(t, 'INPUT', INPUT_CHAIN, 'early')] },
    {
      table: 'filter6',
      name: INPUT_CHAIN,
      rules: nets.filter((n) => n.ipv6).flatMap((n) => networkRules(t, n).input[6]),
      hooks: [hook(t, 'INPUT', INPUT_CHAIN, 'early')],
    },
    ...nets.flatMap((n) => networkRules(t, n).egress),
    {
      table: 'nat',
      name: DNAT_CHAIN,
      rules: nets.flatMap((n) => networkRules(t, n).dnat),
      // Not from PREROUTING to 127.0.0.0/8: DNAT there comes before routing, so a port published
      // on 127.0.0.1 would be reachable from the LAN and other containers (moby#41872). The
      // host's own connections to 127.0.0.1 (OUTPUT) keep their DNAT.
      hooks: [hook(t, 'PREROUTING', DNAT_CHAIN, 'append', `! -d ${LOCALHOST} ${LOCAL_DST}`), hook(t, 'OUTPUT', DNAT_CHAIN, 'append', LOCAL_DST)],
    },
    ...bucketed(policy, 'nat', POSTROUTING_CHAIN, (n) => networkRules(t, n).postrouting, hook(t, 'POSTROUTING', POSTROUTING_CHAIN, 'append')),
    ...([4, 6] as const).flatMap((f) =>
      bucketed(policy, f === 4 ? 'mangle' : 'mangle6', DIRECT_CHAIN, (n) => networkRules(t, n).direct[f], hook(t, 'PREROUTING', DIRECT_CHAIN, 'append', DIRECT_HOOK_MATCH)),
    ),
  ];
  return chains.filter((c) => c.rules.length > 0);
}

/** One network's rules outside FORWARD: its egress chains, its jumps to them from INPUT, its DNAT, masquerade and direct-access rules. */
interface NetworkRules {
  readonly egress: readonly DesiredChain[];
  readonly input: Readonly<Record<4 | 6, readonly string[]>>;
  readonly dnat: readonly string[];
  readonly postrouting: readonly string[];
  readonly direct: Readonly<Record<4 | 6, readonly string[]>>;
}

/** Made once per network policy object (shared.ts: perNetwork). */
function networkRules(t: string, n: FirewallNetworkPolicy): NetworkRules {
  return perNetwork(n, `rules ${t}`, () => {
    const who = owned(t, n);
    const egress = ([4, 6] as const).map((f): DesiredChain => ({
      table: f === 4 ? 'filter' : 'filter6',
      name: egressChainName(n.networkId),
      rules: egressRules(n, f, who),
      hooks: [],
      networkId: n.networkId,
    }));
    return {
      egress,
      input: { 4: egressJump(n, 4, who), 6: egressJump(n, 6, who) },
      dnat: n.forwards.map((f) => dnatRule(t, f)),
      postrouting: postroutingRules(t, n),
      direct: { 4: directRules(n, 4, who), 6: directRules(n, 6, who) },
    };
  });
}

/** A chain whose networks' rules may stand in any order across networks, spread over buckets `<name>-<c>`. */
function bucketed(policy: FirewallPolicy, table: DesiredChain['table'], name: string, rules: (n: FirewallNetworkPolicy) => readonly string[], h: DesiredHook): DesiredChain[] {
  const stage = policy.networks.map((n) => ({ bridge: n.bridge, lines: rules(n) }));
  const d = dispatch(table, `${name}-`, policy.bridgePrefix, stage, [], tag(policy.ownerTag, 'dispatch'));
  return [{ table, name, rules: d.rules, hooks: [h] }, ...d.chains];
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
  // The same few accepts in filter6, whatever the networks: a network without IPv6 forwards none,
  // and the nftables table drops that (net-<id>-from/-to start with it; a drop in any table is
  // final), so filter6 needs no line per network (a network's create or rm rewrites no shared
  // chain here, and a packet meets as many rules with 1 network as with 500).
  const forward = (['filter', 'filter6'] as const).map((table) => ({
    table,
    name: FORWARD_CHAIN,
    rules,
    hooks: [hook(t, 'FORWARD', FORWARD_CHAIN, 'early')],
  }));
  const vxlan = vxlanInputRules(policy);
  return [...forward, ...(vxlan.length > 0 ? [{ table: 'filter' as const, name: INPUT_CHAIN, rules: vxlan, hooks: [hook(t, 'INPUT', INPUT_CHAIN, 'early')] }] : [])];
}

function inputRules({ bridgePrefix, ownerTag, networks }: FirewallPolicy): string[] {
  const egress = networks.flatMap((n) => networkRules(ownerTag, n).input[4]);
  // route_localnet lets a container address 127.0.0.0/8 on the bridge; only replies may pass.
  if (!networks.some((n) => n.published)) return egress;
  const localnet = bridgePatterns(bridgePrefix, networks).map(
    (b) => `! -s 127.0.0.0/8 -d 127.0.0.0/8 -i ${b} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ${tag(ownerTag, 'localnet')} -j DROP`,
  );
  return [...localnet, ...egress];
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
