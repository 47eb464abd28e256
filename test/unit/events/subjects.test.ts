import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { subjectsOverlap } from '../../../src/events/audit/subjects.ts';

describe('subjectsOverlap', () => {
  it('says whether one subject can match both patterns', () => {
    const cases: [string, string, boolean][] = [
      ['ledgernet.>', 'ledgernet.>', true],
      ['ledgernet.>', 'ledgernet.h1.events.network.created', true],
      ['ledgernet.h1.events.*.*', 'ledgernet.h1.events.network.created', true],
      ['>', 'ledgernet.>', true],
      ['*.>', 'ledgernet.>', true],
      ['orders.>', 'ledgernet.>', false],
      ['ledgernet', 'ledgernet.>', false],
      ['ledgernet.*', 'ledgernet.h1.events.network.created', false],
      ['ledgernet.h2.>', 'ledgernet.h1.events.network.created', false],
    ];
    for (const [a, b, want] of cases) {
      assert.equal(subjectsOverlap(a, b), want, `${a} ~ ${b}`);
      assert.equal(subjectsOverlap(b, a), want, `${b} ~ ${a}`);
    }
  });
});
