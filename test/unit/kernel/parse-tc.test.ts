import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQdiscs, parseTcBatchErrors } from '../../../src/kernel/parse-tc.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

describe('parseQdiscs', () => {
  it('reads tbf (rate in bytes/s, burst) and ingress qdiscs of every device; without -r tc prints no limit', () => {
    assert.deepEqual(parseQdiscs(readFixture('tc/qdisc-show.tbf-ingress.json')), [
      { dev: 'lnv-aaaa', kind: 'tbf', handle: '8004:', root: true, parent: null, rate: 1_250_000, burst: 16_000, limit: null },
      { dev: 'lnv-bbbb', kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null, burst: null, limit: null },
    ]);
  });

  it('reads tbf burst and limit (bytes) raw: as written at MTU 65535, and changed by hand', () => {
    assert.deepEqual(parseQdiscs(readFixture('tc/qdisc-show-raw.tbf-mtu-hand.json')), [
      // Written: rate 10000000bit burst 65549 latency 50ms; the burst comes back from ticks, rounded down.
      { dev: 'lnv-aaaa', kind: 'tbf', handle: '8211:', root: true, parent: null, rate: 1_250_000, burst: 65_548, limit: 128_049 },
      // Written by hand: rate 8000000bit burst 20mb latency 10s.
      { dev: 'lnv-bbbb', kind: 'tbf', handle: '8212:', root: true, parent: null, rate: 1_000_000, burst: 20_971_520, limit: 30_971_520 },
      { dev: 'lnv-bbbb', kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null, burst: null, limit: null },
    ]);
  });

  it('reads empty output as no qdiscs, and refuses what is not tc JSON', () => {
    assert.deepEqual(parseQdiscs(''), []);
    assert.throws(() => parseQdiscs('{"kind":1}'), { name: 'DriverError', code: 'LN_ERR_KERNEL_PARSE' });
    assert.throws(() => parseQdiscs('[{"kind":"tbf"}]'), { code: 'LN_ERR_KERNEL_PARSE' });
  });
});

describe('parseTcBatchErrors', () => {
  it('maps "Command failed -:N" to the failed lines with their messages', () => {
    const lines = readFixtureLines('tc/batch-input.missing-dev.txt');
    assert.deepEqual(parseTcBatchErrors(readFixture('tc/batch-stderr.missing-dev.txt'), lines), [
      { line: 1, command: 'qdisc del dev lnv-cccc root', message: 'Cannot find device "lnv-cccc"' },
      { line: 2, command: 'qdisc del dev lnv-bbbb root', message: 'Error: Cannot delete qdisc with handle of zero.' },
    ]);
  });
});
