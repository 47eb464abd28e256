// Per-network chains reached through buckets (forward.ts, dispatch.ts): a packet meets the same
// rules in the same order as in the one chain per table that held every network's rules before
// (the golden files were written by that renderer, at 8060a91), and a network's create or remove
// touches its own chains and one bucket.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../../src/events/domain/commands.ts';
import { bridgeName } from '../../../../src/events/domain/naming.ts';
import { renderChains } from '../../../../src/kernel/iptables/render.ts';
import { applyActions } from '../../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../../src/reconciler/desired.ts';
import { plan } from '../../../../src/reconciler/plan.ts';
import { networkSpec } from '../../../helpers/events.ts';
import { FakeKernel } from '../../../helpers/fake-kernel.ts';
import { EGRESS_COMMANDS, FIREWALL_COMMANDS, GATEWAY_COMMANDS } from '../../../helpers/firewall-states.ts';
import { assertGolden } from '../../../helpers/golden.ts';
import { flatChain } from '../../../helpers/iptables-flat.ts';
import { given } from '../../../helpers/state.ts';

const STATES: Readonly<Record<string, readonly Command[]>> = { firewall: FIREWALL_COMMANDS, egress: EGRESS_COMMANDS, gateway: GATEWAY_COMMANDS };
const firewallOnly = (a: { kind: string }) => a.kind.startsWith('chain.') || a.kind.startsWith('hook.');
const ENTRIES = [
  ['filter', 'LEDGERNET-FORWARD'],
  ['filter6', 'LEDGERNET-FORWARD'],
  ['mangle', 'LEDGERNET-DIRECT'],
  ['mangle6', 'LEDGERNET-DIRECT'],
  ['nat', 'LEDGERNET-POSTROUTING'],
] as const;

describe('iptables chains per network', () => {
  for (const [name, commands] of Object.entries(STATES)) {
    it(`${name}: every chain, flattened, is the one chain of before, rule for rule`, () => {
      const chains = renderChains(desiredFromState(given(...commands)).firewall);
      const text = ENTRIES.map(([table, entry]) => {
        const mine = new Map(chains.filter((c) => c.table === table).map((c) => [c.name, c.rules] as const));
        return [`# ${table} ${entry}`, ...flatChain(mine, entry)].join('\n');
      });
      assertGolden(`iptables/flat,${name}.txt`, `${text.join('\n')}\n`);
    });
  }
});

describe('a network created or removed among 64 others', () => {
  // Ids spread over the buckets, as Docker's random ones are.
  const id = (i: number) => ((i * 2654435761) >>> 0).toString(16).padStart(8, '0').repeat(8);
  const create = (i: number): Command => ({ type: 'CreateNetwork', spec: networkSpec(id(i), `10.${100 + (i >> 8)}.${i & 255}.0/24`, `10.${100 + (i >> 8)}.${i & 255}.1/24`) });
  const others = Array.from({ length: 64 }, (_, i) => create(i + 1));

  it('writes its own chains and edits one bucket per stage: no shared chain, nothing else', async () => {
    const k = new FakeKernel();
    assert.deepEqual((await applyActions(plan(desiredFromState(given(...others)), await k.observe()), k)).failures, []);
    const added = plan(desiredFromState(given(...others, create(200))), await k.observe()).filter(firewallOnly);
    const b = 'lnb-'.length;
    const key = bridgeName(id(200)).charAt(b);
    assert.deepEqual(
      added.map((a) => (a.kind === 'chain.write' ? `${a.table}/${a.chain} ${a.reason}${a.edits ? ` -${a.edits.deletes.length} +${a.edits.inserts.length}` : ''}` : `${a.kind}`)).sort(),
      [
        `filter/LEDGERNET-EARLY-${key} drifted -0 +1`,
        `filter/LEDGERNET-ING-${id(200).slice(0, 12)} missing`,
        `filter/LEDGERNET-LAN-${id(200).slice(0, 12)} missing`,
        `filter/LEDGERNET-LATE-${key} drifted -0 +2`,
        `filter6/LEDGERNET-EARLY-${key} drifted -0 +2`,
        `mangle/LEDGERNET-DIRECT-${key} drifted -0 +2`,
        `nat/LEDGERNET-POSTROUTING-${key} drifted -0 +1`,
      ],
    );
    assert.deepEqual((await applyActions(added, k)).failures, []);
    const removed = plan(desiredFromState(given(...others)), await k.observe()).filter(firewallOnly);
    assert.deepEqual(
      removed.map((a) => (a.kind === 'chain.write' || a.kind === 'chain.delete' ? `${a.kind} ${a.table}/${a.chain}` : a.kind)).sort(),
      [
        `chain.delete filter/LEDGERNET-ING-${id(200).slice(0, 12)}`,
        `chain.delete filter/LEDGERNET-LAN-${id(200).slice(0, 12)}`,
        `chain.write filter/LEDGERNET-EARLY-${key}`,
        `chain.write filter/LEDGERNET-LATE-${key}`,
        `chain.write filter6/LEDGERNET-EARLY-${key}`,
        `chain.write mangle/LEDGERNET-DIRECT-${key}`,
        `chain.write nat/LEDGERNET-POSTROUTING-${key}`,
      ],
    );
  });
});
