// Typed changes to batch lines and back (kernel/batch.ts): what the real kernel's applyLinks and
// applyShaping report, by the index of the change a failed line belongs to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runChanges } from '../../../src/kernel/batch.ts';
import { IP_LINE_LINKS } from '../../../src/kernel/iproute/render.ts';
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

  it("after a failed link add (someone else's link holds the name), sends none of its change's later lines nor a later change naming that link; the rest goes on in another process, without -force", async () => {
    const sent: { lines: readonly string[]; force: boolean | undefined }[] = [];
    // `ip` without -force: stops at the first failed line (one failure reported).
    const send = async (lines: readonly string[], force?: boolean): Promise<BatchResult> => {
      sent.push({ lines, force });
      const line = lines.findIndex((l) => l.startsWith('link add name lnb-taken') || l === 'link set dev lnf-bad up');
      return { failures: line < 0 ? [] : [{ line, command: lines[line] ?? '', message: line === 0 ? 'RTNETLINK answers: File exists' : 'RTNETLINK answers: Invalid argument' }] };
    };
    const changes = [
      ['link add name lnb-taken group 99 type bridge', 'link set dev lnb-taken alias ledgernet:network:a group default mtu 1400 up'],
      ['addr add 10.231.7.1/24 dev lnb-taken'],
      ['link add name lnf-bad group 99 type ifb', 'link set dev lnf-bad up', 'link set dev lnf-bad mtu 1400'],
      ['link add name lnv-a mtu 1500 group 99 type veth peer name lnp-a mtu 1500 group 99', 'link set dev lnv-a master lnb-taken up'],
      ['link add name lnf-ok group 99 type ifb', 'link set dev lnf-ok up'],
    ];
    const { failures } = await runChanges(changes, (c) => c, send, IP_LINE_LINKS);
    const notMade = 'not run: lnb-taken was not made (its link add failed: the name is held by another link)';
    assert.deepEqual(failures, [
      { index: 0, message: 'RTNETLINK answers: File exists' },
      { index: 1, message: notMade },
      { index: 2, message: 'RTNETLINK answers: Invalid argument' },
      { index: 3, message: notMade },
    ]);
    assert.deepEqual(sent, [
      { lines: changes.flat(), force: false },
      { lines: changes[2]?.concat(changes[4] ?? []), force: false },
      // Not a link add that failed: the rest of its change still runs, as with -force.
      { lines: ['link set dev lnf-bad mtu 1400', ...(changes[4] ?? [])], force: false },
    ]);
  });

  it('sends a batch that makes no link as before: one process, with -force', async () => {
    const sent: (boolean | undefined)[] = [];
    const send = async (_lines: readonly string[], force?: boolean): Promise<BatchResult> => (sent.push(force), { failures: [{ line: 0, command: '', message: 'failed' }] });
    const { failures } = await runChanges([['link set dev lnb-a up', 'addr add 10.0.0.1/24 dev lnb-a']], (c) => c, send, IP_LINE_LINKS);
    assert.deepEqual([sent, failures], [[undefined], [{ index: 0, message: 'failed' }]]);
  });
});
