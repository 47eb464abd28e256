// Which empty Docker retry may be answered from the request journal (never a wrong pick), and
// which may be answered without it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RETRY_WINDOW_MS, matchEmptyRetries, teardownReply, type Entry } from '../../../src/supervisor/retry-match.ts';

const JOIN = 'NetworkDriver.Join';
const CE = 'NetworkDriver.CreateEndpoint';
const e = (id: string, method: string, t: number, body = `{"id":"${id}"}\n`): Entry => ({ id, method, t, body });

describe('matchEmptyRetries: never hands Docker another call\'s answer', () => {
  const now = 10_000;
  it('one retry and one journaled call of that method: replay that call', () => {
    const m = matchEmptyRetries([e('a', JOIN, now - 1500), e('b', CE, now - 1500)], JOIN, now, 1);
    assert.equal(m.kind, 'replay');
    assert.equal(m.kind === 'replay' && m.entry.id, 'a');
  });

  it('no journaled call of that method: none (the worker refuses the empty body)', () => {
    assert.deepEqual(matchEmptyRetries([e('b', CE, now - 1000)], JOIN, now, 1), { kind: 'none' });
    assert.deepEqual(matchEmptyRetries([e('a', JOIN, now - RETRY_WINDOW_MS)], JOIN, now, 1), { kind: 'none' }, 'too old');
  });

  it('two journaled calls of that method would need different replies (SrcName): refused', () => {
    assert.deepEqual(matchEmptyRetries([e('a', JOIN, now - 1000), e('b', JOIN, now - 900)], JOIN, now, 1), { kind: 'ambiguous', count: 2 });
  });

  it('more retries than journaled calls (one was cut off before it was journaled): refused, even with one candidate', () => {
    assert.deepEqual(matchEmptyRetries([e('a', JOIN, now - 1000)], JOIN, now, 2), { kind: 'ambiguous', count: 2 });
  });

  it('CreateEndpoint (the same answer, {}, for every call once done): as many retries as calls redo them all', () => {
    const cands = [e('a', CE, now - 1000), e('b', CE, now - 900), e('c', JOIN, now - 900)];
    const m = matchEmptyRetries(cands, CE, now, 2);
    assert.equal(m.kind, 'redoAll');
    assert.deepEqual(m.kind === 'redoAll' && [m.entries.map((x) => x.id), m.reply], [['a', 'b'], '{}']);
    assert.deepEqual(matchEmptyRetries(cands, CE, now, 3), { kind: 'ambiguous', count: 3 }, 'a retry more than calls journaled: one was never journaled, so not done again');
    assert.deepEqual(matchEmptyRetries(cands, CE, now, 1), { kind: 'ambiguous', count: 2 }, 'fewer: the batch is not the whole set cut off');
    assert.deepEqual(matchEmptyRetries([e('a', JOIN, now - 1000), e('b', JOIN, now - 900)], JOIN, now, 2), { kind: 'ambiguous', count: 2 }, 'Join answers differ (SrcName): never');
    const PEC = 'NetworkDriver.ProgramExternalConnectivity';
    assert.equal(matchEmptyRetries([e('a', PEC, now - 1000), e('b', PEC, now - 900)], PEC, now, 2).kind, 'redoAll', 'ProgramExternalConnectivity: {} once its ports are programmed');
    const RA = 'IpamDriver.RequestAddress';
    assert.equal(matchEmptyRetries([e('a', RA, now - 1000), e('b', RA, now - 900)], RA, now, 2).kind, 'ambiguous', 'RequestAddress answers differ: never');
  });

  it('more retries than calls, where the worker has rules for the extra ones (`inferable`): every call redone and each extra asked; never for Join or RequestAddress', () => {
    const PEC = 'NetworkDriver.ProgramExternalConnectivity';
    const m = matchEmptyRetries([e('a', PEC, now - 1000)], PEC, now, 2, true);
    assert.deepEqual(m.kind === 'redoAll' && [m.entries.map((x) => x.id), m.reply, m.anyway, m.inferred], [['a'], '{}', false, 1]);
    assert.deepEqual(matchEmptyRetries([e('a', PEC, now - 1000)], PEC, now, 2), { kind: 'ambiguous', count: 2 }, 'not inferable: refused as before');
    assert.equal(matchEmptyRetries([e('a', CE, now - 1000), e('b', CE, now - 900)], CE, now, 1, true).kind, 'ambiguous', 'fewer retries than calls: still refused');
    assert.equal(matchEmptyRetries([e('a', JOIN, now - 1000)], JOIN, now, 2, true).kind, 'ambiguous', 'Join answers differ');
    const RA = 'IpamDriver.RequestAddress';
    assert.equal(matchEmptyRetries([e('a', RA, now - 1000)], RA, now, 2, true).kind, 'ambiguous');
  });

  it('teardown calls (Docker only logs their errors): every journaled one is redone whatever the count, each retry answered {}', () => {
    const DE = 'NetworkDriver.DeleteEndpoint';
    const cands = [e('a', DE, now - 1000), e('b', DE, now - 900)];
    for (const retries of [1, 2, 3]) {
      const m = matchEmptyRetries(cands, DE, now, retries);
      assert.deepEqual(m.kind === 'redoAll' && [m.entries.map((x) => x.id), m.reply, m.anyway], [['a', 'b'], '{}', true], `${retries} retries`);
    }
    assert.equal(matchEmptyRetries([e('a', DE, now - 1000)], DE, now, 1).kind, 'replay', 'one and one: the call itself, with its own answer');
    assert.equal(matchEmptyRetries([e('a', DE, now - 1000)], DE, now, 2).kind, 'redoAll');
  });
});


describe('after a supervisor crash, unidentifiable teardown retries', () => {
  it('only read-only and teardown calls get a reply without knowing the call; the rest get none (an Err)', () => {
    assert.equal(teardownReply('NetworkDriver.EndpointOperInfo'), '{"Value":{}}');
    assert.equal(teardownReply('NetworkDriver.Leave'), '{}');
    assert.equal(teardownReply('NetworkDriver.RevokeExternalConnectivity'), '{}');
    for (const m of [JOIN, CE, 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.ProgramExternalConnectivity', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress', 'NetworkDriver.CreateNetwork']) {
      assert.equal(teardownReply(m), null, m);
    }
  });

});
