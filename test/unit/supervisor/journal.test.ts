// The supervisor's request journal: what an earlier supervisor left unanswered, and which empty
// Docker retry may be answered from it (never a wrong pick).
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Journal, RETRY_WINDOW_MS, endedUncleanly, liveEntries, matchEmptyRetries, teardownReply, type Entry } from '../../../src/supervisor/journal.ts';

const dir = mkdtempSync(join(tmpdir(), 'ledgernet-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const JOIN = 'NetworkDriver.Join';
const CE = 'NetworkDriver.CreateEndpoint';
const e = (id: string, method: string, t: number, body = `{"id":"${id}"}\n`): Entry => ({ id, method, t, body });

describe('liveEntries', () => {
  const req = (id: string, m: string, t: number) => JSON.stringify({ k: 'req', id, t, m, b: `{"x":"${id}"}\n` });
  const ans = (id: string) => JSON.stringify({ k: 'ans', id });

  it('keeps requests never answered and younger than the retry window, oldest first', () => {
    const text = [req('b', JOIN, 2000), req('a', CE, 1000), ans('b'), req('c', JOIN, 3000)].join('\n') + '\n';
    assert.deepEqual(
      liveEntries(text, 4000).map((x) => [x.id, x.method, x.body]),
      [
        ['a', CE, '{"x":"a"}\n'],
        ['c', JOIN, '{"x":"c"}\n'],
      ],
    );
  });

  it('drops entries older than the retry window (Docker has given up on them)', () => {
    const text = `${req('old', JOIN, 0)}\n${req('new', JOIN, RETRY_WINDOW_MS)}\n`;
    assert.deepEqual(liveEntries(text, RETRY_WINDOW_MS + 1).map((x) => x.id), ['new']);
  });

  it('skips a torn last line and lines that are not entries', () => {
    const text = `${req('a', JOIN, 10)}\n{"k":"req","id":"b","t":11,"m":"Net\n[]\n{"k":"req"}\n`;
    assert.deepEqual(liveEntries(text, 20).map((x) => x.id), ['a']);
  });
});

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

describe('Journal (file)', () => {
  it('a later supervisor sees what an earlier one left unanswered, once', () => {
    const path = join(dir, 'j1');
    let clock = 100_000;
    const first = Journal.open(path, () => clock);
    const a = first.received(JOIN, '{"EndpointID":"a"}\n');
    const b = first.received(CE, '{"EndpointID":"b"}\n');
    first.answered(b as string);
    void a; // a: cut off (the supervisor dies before answering)
    first.close();

    clock += 1000;
    const second = Journal.open(path, () => clock);
    assert.deepEqual(second.pending.map((x) => [x.method, x.body]), [[JOIN, '{"EndpointID":"a"}\n']]);
    const m = second.claim(JOIN);
    assert.equal(m.kind === 'replay' && m.entry.body, '{"EndpointID":"a"}\n');
    assert.deepEqual(second.claim(JOIN), { kind: 'none' }, 'a call is replayed for one retry only');
    if (m.kind === 'replay') second.answered(m.entry.id);
    second.close();

    const third = Journal.open(path, () => clock);
    assert.deepEqual(third.pending, [], 'answered: nothing left');
    third.close();
  });

  it('calls received in one turn share a write, each is on disk before its promise resolves, and answers likewise', async () => {
    const path = join(dir, 'jb');
    const clock = 100_000;
    const j = Journal.open(path, () => clock);
    const ids = Promise.all(['a', 'b', 'c'].map((x) => j.receivedSoon(JOIN, `{"EndpointID":"${x}"}\n`)));
    assert.equal(readFileSync(path, 'utf8'), '', 'not written within the turn');
    const [a, b, c] = await ids;
    assert.deepEqual(liveEntries(readFileSync(path, 'utf8'), clock).map((x) => x.id), [a, b, c], 'all three on disk once resolved');
    await Promise.all([j.answeredSoon(a as string), j.answeredSoon(c as string)]);
    j.close();
    const next = Journal.open(path, () => clock);
    assert.deepEqual(next.pending.map((x) => x.body), ['{"EndpointID":"b"}\n'], 'only the unanswered one is left for a retry');
    next.close();
  });

  it('entries survive a torn write at the end, and expire after the retry window', () => {
    const path = join(dir, 'j2');
    let clock = 5_000;
    const j = Journal.open(path, () => clock);
    j.received(JOIN, '{"EndpointID":"x"}\n');
    j.close();
    appendFileSync(path, '{"k":"ans","id":');
    const reopened = Journal.open(path, () => clock);
    assert.equal(reopened.pending.length, 1);
    reopened.close();
    clock += RETRY_WINDOW_MS;
    const later = Journal.open(path, () => clock);
    assert.equal(later.pending.length, 0);
    later.close();
    assert.equal(readFileSync(path, 'utf8'), '', 'the rewritten file keeps only live entries');
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

  it('a journal without the clean-stop marker means its supervisor died; a clean stop or no journal means it did not', () => {
    assert.equal(endedUncleanly(''), false);
    assert.equal(endedUncleanly('{"k":"req","id":"a","t":1,"m":"x","b":""}\n'), true);
    assert.equal(endedUncleanly('{"k":"ans","id":"a"}\n{"k":"end"}\n'), false);
    const path = join(dir, 'j3');
    let clock = Date.now();
    const a = Journal.open(path, () => clock);
    a.received(JOIN, '{}');
    a.close(true);
    const clean = Journal.open(path, () => clock);
    assert.equal(clean.recentCrash(), false, 'clean stop');
    clean.close(true);
    const b = Journal.open(path, () => clock);
    b.received(JOIN, '{}');
    b.close(); // as if killed
    const c = Journal.open(path, () => clock);
    assert.equal(c.recentCrash(), true);
    clock += RETRY_WINDOW_MS + 1000; // the crash time is the file's mtime (wall clock)
    assert.equal(c.recentCrash(), false, 'Docker has given up on its calls by now');
    c.close(true);
  });
});
