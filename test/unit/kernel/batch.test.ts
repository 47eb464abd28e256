// Typed changes to batch lines and back (kernel/batch.ts): what the real kernel's applyLinks and
// applyShaping report, by the index of the change a failed line belongs to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runChanges } from '../../../src/kernel/batch.ts';
import type { BatchResult } from '../../../src/kernel/types.ts';

/** A change renders to `lines` lines named `<change>.<n>`. */
const toLines = (c: { name: string; lines: number }) => Array.from({ length: c.lines }, (_, n) => `${c.name}.${n}`);

describe('runChanges', () => {
  it('sends the lines of every change in one batch and maps each failed line to its change, once', async () => {
    const sent: (readonly string[])[] = [];
    const send = async (lines: readonly string[]): Promise<BatchResult> => {
      sent.push(lines);
      const failed = ['a.1', 'c.0', 'c.1'].map((l) => lines.indexOf(l));
      return { failures: failed.map((line) => ({ line, command: lines[line] ?? '', message: `failed ${lines[line]}` })) };
    };
    const changes = [
      { name: 'a', lines: 2 },
      { name: 'b', lines: 1 },
      { name: 'none', lines: 0 },
      { name: 'c', lines: 3 },
    ];
    const { failures } = await runChanges(changes, toLines, send);
    assert.deepEqual(sent, [['a.0', 'a.1', 'b.0', 'c.0', 'c.1', 'c.2']]);
    assert.deepEqual(failures, [
      { index: 0, message: 'failed a.1' },
      { index: 3, message: 'failed c.0' },
    ]);
  });

  it('runs nothing when no change has a line', async () => {
    const send = async (): Promise<BatchResult> => assert.fail('nothing to send');
    assert.deepEqual(await runChanges([{ name: 'none', lines: 0 }], toLines, send), { failures: [] });
  });

  it('lets a batch that could not run throw (the caller fails every change)', async () => {
    const send = async (): Promise<BatchResult> => {
      throw new Error('ip did not run');
    };
    await assert.rejects(runChanges([{ name: 'a', lines: 1 }], toLines, send), /ip did not run/);
  });
});
