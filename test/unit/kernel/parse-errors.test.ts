import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IP_BATCH_MARKER, countCompletedLines } from '../../../src/kernel/ip-batch.ts';
import { parseIpBatchErrors } from '../../../src/kernel/parse-errors.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

function plain(scenario: string): [string, string[]] {
  return [readFixture(`ip/batch-stderr.${scenario}.txt`), readFixtureLines(`ip/batch-input.${scenario}.txt`)];
}

describe('parseIpBatchErrors', () => {
  it('reads a link that already exists', () => {
    const [stderr, lines] = plain('link-exists');
    assert.deepEqual(parseIpBatchErrors(stderr, lines), [
      { line: 0, command: 'link add lnb-0123456789a type bridge', message: 'RTNETLINK answers: File exists' },
    ]);
  });

  it('reads a delete of a missing link', () => {
    const [stderr, lines] = plain('delete-missing');
    assert.deepEqual(parseIpBatchErrors(stderr, lines), [
      { line: 0, command: 'link del lnv-missing0000', message: 'Cannot find device "lnv-missing0000"' },
    ]);
  });

  it('reads several failures of a -force batch, each with its line', () => {
    const [stderr, lines] = plain('mixed');
    assert.deepEqual(
      parseIpBatchErrors(stderr, lines).map((f) => [f.line, f.command, f.message]),
      [
        [1, 'link add lnb-0123456789a type bridge', 'RTNETLINK answers: File exists'],
        [3, 'link del lnv-missing0000', 'Cannot find device "lnv-missing0000"'],
        [4, 'addr add 10.231.7.1/24 dev lnb-0123456789a', 'Error: ipv4: Address already assigned.'],
        [5, 'link set lnb-test0000001 mtu 70000', 'Error: mtu greater than device maximum.'],
      ],
    );
  });

  it('reports every line that may have stopped ip when progress is unknown', () => {
    // `master <missing>` makes ip exit at once, -force or not, with no `Command failed` line.
    const [stderr, lines] = plain('master-missing');
    const failures = parseIpBatchErrors(stderr, lines);
    assert.deepEqual(
      failures.map((f) => f.line),
      [0, 1, 2],
    );
    for (const f of failures) {
      assert.match(f.message, /^ip -batch stopped at one of lines 0\.\.2: Error: argument "lnb-missing0000" is wrong/);
    }
  });

  it('pins an early exit to its line with the markers, and reports later lines as not run', () => {
    const sent = readFixtureLines('ip/batch-input.marked-master-missing.txt');
    const lines = sent.filter((l) => l !== IP_BATCH_MARKER);
    const stderr = readFixture('ip/batch-stderr.marked-master-missing.txt');
    const completed = countCompletedLines(readFixture('ip/batch-stdout.marked-master-missing.txt'));
    assert.equal(completed, 3);
    assert.deepEqual(parseIpBatchErrors(stderr, lines, { linesPerCommand: 2, completed }), [
      { line: 1, command: 'link add lnb-0123456789a type bridge', message: 'RTNETLINK answers: File exists' },
      {
        line: 3,
        command: 'link set lnb-mark0000001 master lnb-missing0000',
        message: 'Error: argument "lnb-missing0000" is wrong: Device does not exist',
      },
      { line: 4, command: 'link set lnb-mark0000001 mtu 1400', message: 'not run: ip -batch stopped at line 3' },
    ]);
  });

  it('reads an unterminated quote, which also stops ip', () => {
    const [stderr, lines] = plain('unterminated-quote');
    const failures = parseIpBatchErrors(stderr, lines, { completed: 0 });
    assert.deepEqual(
      failures.map((f) => [f.line, f.message]),
      [
        [0, 'Unterminated quoted string'],
        [1, 'not run: ip -batch stopped at line 0'],
      ],
    );
  });

  it('ignores trailing messages once every line finished (warnings)', () => {
    const stderr = 'RTNETLINK answers: File exists\nCommand failed -:1\nWarning: something\n';
    const failures = parseIpBatchErrors(stderr, ['a', 'b'], { completed: 2 });
    assert.deepEqual(
      failures.map((f) => f.line),
      [0],
    );
  });

  it('gives no failures for empty stderr', () => {
    assert.deepEqual(parseIpBatchErrors('', ['link set lo up']), []);
  });

  it('rejects a Command failed line that names no sent line', () => {
    assert.throws(() => parseIpBatchErrors('oops\nCommand failed -:9\n', ['a', 'b']), {
      name: 'DriverError',
      code: 'LN_ERR_KERNEL_PARSE',
    });
  });
});
