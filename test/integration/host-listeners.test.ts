// The host's listeners as the daemon reads them before it publishes a port, in a namespace this
// test makes (and deletes): a script holds listening, bound-only, connected and established
// sockets of both families there; sock_diag must find exactly the listeners, the same ones
// /proc/net lists for that namespace, and none of the hundreds of connections. Needs root.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { readDiagListeners, readProcNetListeners } from '../../src/kernel/host-listeners.ts';
import { SCRIPT, SCRIPT_LISTENERS, sorted } from '../helpers/listeners.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const CONNECTIONS = 500;

describe('host listeners in a throwaway namespace', { skip }, () => {
  const netns = throwawayNetns('lnlisten');

  it('sock_diag lists exactly the listeners, as /proc/net does, and no connection', async () => {
    assert.deepEqual(await readDiagListeners(netns), [], 'a fresh namespace has no listener');
    await execa('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const holder = execa('ip', ['netns', 'exec', netns, 'python3', '-c', SCRIPT, String(CONNECTIONS)], { stdin: 'pipe', reject: false });
    try {
      const out = holder.stdout;
      assert.ok(out, 'the script has a stdout');
      let seen = '';
      while (!seen.includes('ready')) {
        const [chunk] = (await Promise.race([once(out, 'data'), holder.then((r) => assert.fail(`the socket script ended: ${r.stderr}`))])) as [Buffer];
        seen += chunk.toString();
      }
      const diag = await readDiagListeners(netns);
      assert.ok(diag, 'netlink can be used here');
      assert.deepEqual(sorted(diag), SCRIPT_LISTENERS);
      const proc = await readProcNetListeners(`/proc/${holder.pid}/net`);
      assert.deepEqual(sorted(diag), sorted(proc), 'sock_diag and /proc/net agree');
      const { stdout: est } = await execa('ip', ['netns', 'exec', netns, 'ss', '-Htn', 'state', 'established']);
      assert.equal(est.split('\n').length, 2 * CONNECTIONS, 'the connections were there, and not listed');
    } finally {
      holder.stdin?.end();
      await holder;
    }
    assert.deepEqual(await readDiagListeners(netns), [], 'the listeners are gone with the script');
  });
});
