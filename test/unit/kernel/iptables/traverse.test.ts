// What a packet costs in filter FORWARD with 200 networks, before and after the per-network
// chains: a small model of the rule walk (interfaces with `+`, conntrack states, jumps, RETURN)
// over the chains as rendered and over the same rules as one chain (flattened). Both must give
// every packet the same verdict; the chains must cost a packet far fewer rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../../src/events/domain/commands.ts';
import { renderChains } from '../../../../src/kernel/iptables/render.ts';
import { desiredFromState } from '../../../../src/reconciler/desired.ts';
import { networkSpec } from '../../../helpers/events.ts';
import { flatChain } from '../../../helpers/iptables-flat.ts';
import { given } from '../../../helpers/state.ts';

interface Packet {
  readonly i: string;
  readonly o: string;
  readonly state: string;
}
type Chains = ReadonlyMap<string, readonly string[]>;

const iface = (pattern: string, name: string) => (pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : pattern === name);

function matches(rule: string, p: Packet): boolean {
  const i = /(?:^| )(! )?-i (\S+)/.exec(rule);
  if (i && iface(i[2] ?? '', p.i) === (i[1] !== undefined)) return false;
  const o = /(?:^| )(! )?-o (\S+)/.exec(rule);
  if (o && iface(o[2] ?? '', p.o) === (o[1] !== undefined)) return false;
  const c = /(! )?--ctstate (\S+)/.exec(rule);
  if (c && (c[2] ?? '').split(',').includes(p.state) === (c[1] !== undefined)) return false;
  // Addresses, protocols and ports: these packets are addressed to none of the containers' ports.
  return !/(?:^| )(?:-[dsp]) /.test(rule);
}

/** The verdict and the number of rules the packet met. */
function walk(chains: Chains, name: string, p: Packet): [string, number] {
  let met = 0;
  for (const rule of chains.get(name) ?? []) {
    met++;
    if (!matches(rule, p)) continue;
    const target = /-j (\S+)/.exec(rule)?.[1] ?? '';
    if (chains.has(target)) {
      const [verdict, n] = walk(chains, target, p);
      met += n;
      if (verdict !== 'RETURN') return [verdict, met];
    } else if (target !== '') return [target, met];
  }
  return ['RETURN', met];
}

describe('filter FORWARD with 200 networks', () => {
  const id = (i: number) => ((i * 2654435761) >>> 0).toString(16).padStart(8, '0').repeat(8);
  const net = (i: number): Command => ({ type: 'CreateNetwork', spec: networkSpec(id(i), `10.${100 + (i >> 8)}.${i & 255}.0/24`, `10.${100 + (i >> 8)}.${i & 255}.1/24`) });
  const chains = renderChains(desiredFromState(given(...Array.from({ length: 200 }, (_, i) => net(i + 1)))).firewall);
  const filter: Chains = new Map(chains.filter((c) => c.table === 'filter').map((c) => [c.name, c.rules] as const));
  const flat: Chains = new Map([['LEDGERNET-FORWARD', flatChain(filter, 'LEDGERNET-FORWARD')]]);
  const bridges = chains.flatMap((c) => (c.name.startsWith('LEDGERNET-LAN-') ? [/-i (\S+)/.exec(c.rules[0] ?? '')?.[1] ?? ''] : [])).sort();
  const [x = '', y = ''] = [bridges[100], bridges[60]];
  const packets: Record<string, Packet> = {
    'new, container to outside': { i: x, o: 'eth0', state: 'NEW' },
    'new, outside to a published port': { i: 'eth0', o: x, state: 'DNAT' },
    'new, outside to a container, not published': { i: 'eth0', o: x, state: 'NEW' },
    'new, inside a network': { i: x, o: x, state: 'NEW' },
    'new, to another network': { i: x, o: y, state: 'NEW' },
    'new, to another network through a published port': { i: x, o: y, state: 'DNAT' },
    'established, container to outside': { i: x, o: 'eth0', state: 'ESTABLISHED' },
    'established, reply into a container': { i: 'eth0', o: x, state: 'ESTABLISHED' },
  };
  const costs: Record<string, string> = {};
  for (const [what, p] of Object.entries(packets)) {
    it(`${what}: the same verdict as one chain, at no more rules`, () => {
      const [before, metBefore] = walk(flat, 'LEDGERNET-FORWARD', p);
      const [after, metAfter] = walk(filter, 'LEDGERNET-FORWARD', p);
      assert.equal(after, before);
      assert.ok(metAfter <= metBefore, `${metAfter} rules, against ${metBefore}`);
      costs[what] = `${metBefore} -> ${metAfter}`;
    });
  }
  it('a container talking to the outside meets under 100 rules (512 in one chain)', () => {
    assert.ok(walk(filter, 'LEDGERNET-FORWARD', packets['established, container to outside']!)[1] < 100, JSON.stringify(costs));
    assert.equal(walk(flat, 'LEDGERNET-FORWARD', packets['established, container to outside']!)[1], 512);
  });
});
