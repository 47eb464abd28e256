import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyMirror } from '../../../src/events/cluster/host-keys.ts';

describe("the watch's mirror of the cluster bucket", () => {
  it('caughtUp waits until the watch delivered a revision (a delete counts), and no longer than its timeout', async () => {
    const m = new KeyMirror();
    m.seen('forgotten.h4', 3, false);
    await m.caughtUp(3, 10_000); // already delivered: at once
    let done = false;
    const waiting = m.caughtUp(5, 10_000).then(() => (done = true));
    m.seen('hosts.h1', 4, true);
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'revision 4 is not 5');
    m.seen('forgotten.h4', null, true, () => '', 5); // a delete at revision 5
    await waiting;
    assert.equal(m.has('forgotten.h4'), false);
    const t0 = Date.now();
    await m.caughtUp(9, 50); // never delivered: the timeout
    assert.ok(Date.now() - t0 >= 45, 'it waited for its timeout');
  });
});
