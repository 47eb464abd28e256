import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IP_BATCH_MARKER, countCompletedLines, renderIpBatch } from '../../../src/kernel/ip-batch.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

describe('renderIpBatch', () => {
  it('follows every line with the marker', () => {
    const lines = [
      'link add lnb-mark0000001 type bridge',
      'link add lnb-0123456789a type bridge',
      'link set lnb-mark0000001 up',
      'link set lnb-mark0000001 master lnb-missing0000',
      'link set lnb-mark0000001 mtu 1400',
    ];
    // The captured input is exactly what renderIpBatch sends.
    assert.equal(renderIpBatch(lines), readFixture('ip/batch-input.marked-master-missing.txt'));
    assert.equal(readFixtureLines('ip/batch-input.marked-master-missing.txt')[1], IP_BATCH_MARKER);
  });

  for (const [label, line] of [
    ['a newline', 'link set a up\nlink del b'],
    ['a #, which ip reads as a comment even inside quotes', 'link set a alias "x#y"'],
    ['a trailing backslash, which joins the next line', 'link set a up \\'],
  ] as const) {
    it(`refuses a line with ${label}`, () => {
      assert.throws(() => renderIpBatch(['link set lo up', line]), {
        name: 'DriverError',
        code: 'LN_ERR_INTERNAL',
        message: /line 1/,
      });
    });
  }
});

describe('countCompletedLines', () => {
  it('counts marker lines of ip -o output', () => {
    assert.equal(countCompletedLines(readFixture('ip/batch-stdout.marked-master-missing.txt')), 3);
    assert.equal(countCompletedLines(''), 0);
  });
});
