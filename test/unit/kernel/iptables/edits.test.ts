import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { editLines, ruleEdits } from '../../../../src/kernel/iptables/edits.ts';
import { restoreInput } from '../../../../src/kernel/iptables/restore.ts';
import type { FirewallChange } from '../../../../src/kernel/types.ts';

const rules = (...ids: string[]) => ids.map((id) => `-i lnb-${id} -m comment --comment "ledgernet:network:${id}:icc" -j ACCEPT`);

/** What iptables-restore does with the lines, on a plain array. */
function applyLines(chain: readonly string[], lines: readonly string[]): string[] {
  const out = [...chain];
  for (const l of lines) {
    const m = /^-(D|I|A) C (?:(\d+) )?(.*)$/.exec(l);
    assert.ok(m, l);
    const [, op, pos, rule] = m as unknown as [string, string, string | undefined, string];
    if (op === 'D') out.splice(out.indexOf(rule), 1);
    else if (op === 'A') out.push(rule);
    else out.splice(Number(pos) - 1, 0, rule);
  }
  return out;
}

describe('ruleEdits: a shared chain changed rule by rule', () => {
  it('a network added in the middle and at the end: inserts at their places, an append at the end', () => {
    const have = rules('a', 'c', 'e', 'g', 'i', 'k');
    const want = rules('a', 'b', 'c', 'e', 'g', 'i', 'k', 'z');
    const edits = ruleEdits(have, want);
    assert.ok(edits);
    assert.deepEqual(edits.deletes, []);
    const lines = editLines('C', edits, want.length);
    assert.match(lines[0] ?? '', /^-I C 2 /);
    assert.match(lines[1] ?? '', /^-A C /);
    assert.deepEqual(applyLines(have, lines), want);
  });

  it('a network removed and another added: -D by rule, then the insert', () => {
    const have = rules('a', 'b', 'c', 'd', 'e', 'f', 'g');
    const want = rules('a', 'c', 'd', 'e', 'f', 'g', 'h');
    const edits = ruleEdits(have, want);
    assert.ok(edits);
    assert.deepEqual(applyLines(have, editLines('C', edits, want.length)), want);
  });

  it('falls back to a rewrite when the kept rules change order, a rule stands twice, or most rules change', () => {
    assert.equal(ruleEdits(rules('a', 'b', 'c', 'd', 'e'), rules('b', 'a', 'c', 'd', 'e')), null);
    assert.equal(ruleEdits(rules('a', 'a', 'c', 'd', 'e'), rules('a', 'c', 'd', 'e')), null);
    assert.equal(ruleEdits(rules('a'), rules('a', 'b')), null);
  });

  it('restoreInput writes the edits without flushing the chain', () => {
    const have = rules('a', 'c', 'd', 'e');
    const want = rules('a', 'b', 'c', 'd', 'e');
    const edits = ruleEdits(have, want);
    assert.ok(edits);
    const change: FirewallChange = {
      kind: 'chain.write',
      table: 'filter',
      chain: 'LEDGERNET-FORWARD',
      rules: want,
      edits,
      owner: { networkId: null, endpointId: null },
      reason: 'drifted',
    };
    assert.equal(restoreInput([change], 'filter'), `*filter\n-I LEDGERNET-FORWARD 2 ${want[1]}\nCOMMIT\n`);
  });
});
