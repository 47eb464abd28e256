// A network namespace of the benchmark's own: the reconciler and the daemon work on its links and
// iptables, never on the host's. Deleting it removes everything made in it; `withNetns` always does.
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

export async function withNetns<T>(prefix: string, fn: (netns: string) => Promise<T>): Promise<T> {
  const netns = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  await execa('ip', ['netns', 'add', netns]);
  try {
    await execa('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    return await fn(netns);
  } finally {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  }
}
