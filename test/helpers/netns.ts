// A network namespace of a test file's own: made before its tests, deleted after them (and
// checked to be gone), whatever they did in it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { execa } from 'execa';

/** Registers the hooks in the enclosing `describe`; returns the namespace's name. */
export function throwawayNetns(prefix: string): string {
  const netns = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
  });
  after(async () => {
    // Deleting the namespace removes its links and its iptables tables with it.
    await execa('ip', ['netns', 'del', netns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`^${netns}\\b`, 'm'), 'test namespace leaked');
  });
  return netns;
}
