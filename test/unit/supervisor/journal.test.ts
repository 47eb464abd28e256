// The supervisor's request journal (the file): what an earlier supervisor left unanswered, what
// is on disk when, and whether its writer died.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Journal, KEEP_MS, endedUncleanly, keptEntries, liveEntries, trailingAnswers } from '../../../src/supervisor/journal.ts';
import { CREATE_RETRY, DELETE_RETRY, EXTERNAL_RETRY, JOIN_RETRY, NETWORK_RETRY, emptyRetries } from '../../../src/supervisor/retries.ts';
import { pino } from 'pino';
import { RETRY_BATCH_MS, RETRY_GATHER_MS, RETRY_WINDOW_MS } from '../../../src/supervisor/retry-match.ts';

const dir = mkdtempSync(join(tmpdir(), 'ledgernet-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const JOIN = 'NetworkDriver.Join';
const CE = 'NetworkDriver.CreateEndpoint';
const PEC = 'NetworkDriver.ProgramExternalConnectivity';

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
    const text = `${req('a', JOIN, 10)}\n{"k":"req","id":"b","t":11,"m":"Net\n[]\nnull\n7\n{"k":"req"}\n`;
    assert.deepEqual(liveEntries(text, 20).map((x) => x.id), ['a']);
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

  it('retries refused as ambiguous use up the entries they could repeat: a later lone retry is not answered from another call\'s body, nor is the next supervisor\'s', () => {
    const path = join(dir, 'j-ambiguous');
    let clock = 200_000;
    const first = Journal.open(path, () => clock);
    first.received(PEC, '{"EndpointID":"a"}\n'); // journaled, then the supervisor is killed
    first.close();

    clock += 1_000;
    const second = Journal.open(path, () => clock);
    // Two empty retries in one batch (the journaled call's and one cut off before it was journaled).
    assert.deepEqual(second.claim(PEC, 2), { kind: 'ambiguous', count: 2 });
    assert.deepEqual(second.pending, [], 'both got the Err: Docker retries neither again');
    // Seconds later, another call is cut off before it was journaled; its lone empty retry:
    clock += 5_000;
    assert.deepEqual(second.claim(PEC), { kind: 'none' }, 'not the refused call\'s body: the worker\'s rules decide');
    // killed again: the next supervisor does not inherit the used-up entry either
    const third = Journal.open(path, () => clock);
    assert.deepEqual(third.pending, []);
    third.close();
    second.close();
  });

  it('each call is on disk when received returns; the answers of one turn share a write, each on disk before its promise resolves', async () => {
    const path = join(dir, 'jb');
    const clock = 100_000;
    const j = Journal.open(path, () => clock);
    const ids = ['a', 'b', 'c'].map((x) => {
      const id = j.received(JOIN, `{"EndpointID":"${x}"}\n`);
      assert.deepEqual(liveEntries(readFileSync(path, 'utf8'), clock).at(-1)?.id, id, 'written at once, not at the end of the turn');
      return id;
    });
    const [a, , c] = ids;
    const answers = Promise.all([j.answeredSoon(a as string), j.answeredSoon(c as string)]);
    assert.equal(liveEntries(readFileSync(path, 'utf8'), clock).length, 3, 'answers are not written within the turn');
    await answers;
    assert.equal(liveEntries(readFileSync(path, 'utf8'), clock).length, 1, 'both answers on disk once resolved');
    j.close();
    const next = Journal.open(path, () => clock);
    assert.deepEqual(next.pending.map((x) => x.body), ['{"EndpointID":"b"}\n'], 'only the unanswered one is left for a retry');
    next.close();
  });

  it("the rewrite a call's own line starts (the file past 4 MiB) keeps that call, and every call in flight", () => {
    const path = join(dir, 'jcompact');
    const clock = 100_000;
    const j = Journal.open(path, () => clock);
    const body = (i: number) => `{"EndpointID":"${i}","pad":"${'x'.repeat(300 * 1024)}"}\n`;
    let rewrites = 0;
    let size = 0;
    for (let i = 0; i < 40; i++) {
      const id = j.received(CE, body(i));
      const now = readFileSync(path, 'utf8');
      if (now.length < size) rewrites++;
      size = now.length;
      const live = liveEntries(now, clock).map((e) => e.id);
      assert.ok(live.includes(id as string), `call ${i} is in the journal when received returns (after ${rewrites} rewrites)`);
      // Every other call is answered; the ones left open stay in the file across rewrites.
      if (i % 2 === 1) j.answered(id as string);
    }
    assert.ok(rewrites >= 2, `the file was rewritten (${rewrites})`);
    j.close();
    const next = Journal.open(path, () => clock);
    assert.deepEqual(next.pending.map((e) => JSON.parse(e.body).EndpointID), Array.from({ length: 20 }, (_, k) => String(2 * k)));
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
    const kept = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { k: string });
    assert.deepEqual(kept.map((l) => l.k), ['req', 'ans', 'kept'], 'the rewritten file keeps it only as answered (a Join, kept for KEEP_MS)');
    clock = 5_000 + KEEP_MS;
    Journal.open(path, () => clock).close();
    assert.equal(readFileSync(path, 'utf8'), '', 'the rewritten file keeps only live entries');
  });
});

describe('after a supervisor crash, unidentifiable teardown retries', () => {
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

describe('the Joins, Leaves and Revokes kept after their answer (for an empty ProgramExternalConnectivity retry)', () => {
  const LEAVE = 'NetworkDriver.Leave';
  const REVOKE = 'NetworkDriver.RevokeExternalConnectivity';

  it('keptEntries: those three methods, answered or not, younger than KEEP_MS', () => {
    const req = (id: string, m: string, t: number) => JSON.stringify({ k: 'req', id, t, m, b: `{"x":"${id}"}\n` });
    const text = [req('j', JOIN, 5000), JSON.stringify({ k: 'ans', id: 'j' }), req('c', CE, 5000), req('l', LEAVE, 6000), req('r', REVOKE, 7000), req('old', JOIN, 0)].join('\n') + '\n';
    assert.deepEqual(keptEntries(text, KEEP_MS + 1000).map((x) => x.id), ['j', 'l', 'r']);
  });

  it('they survive the rewrite of every later supervisor until KEEP_MS has passed; other answered calls do not', () => {
    const path = join(dir, 'kept');
    let clock = 500_000;
    const first = Journal.open(path, () => clock);
    const j = first.received(JOIN, '{"EndpointID":"a"}\n') as string;
    first.answered(j);
    const ce = first.received(CE, '{"EndpointID":"b"}\n') as string;
    first.answered(ce);
    const l = first.received(LEAVE, '{"EndpointID":"c"}\n') as string;
    first.answered(l);
    assert.deepEqual(first.recent.map((e) => e.method), [JOIN, LEAVE]);
    first.close();
    clock += 1000;
    // Two later supervisors, each rewriting the file at its start.
    const second = Journal.open(path, () => clock);
    assert.deepEqual(second.recent.map((e) => e.body), ['{"EndpointID":"a"}\n', '{"EndpointID":"c"}\n']);
    assert.deepEqual(second.pending, [], 'kept, not pending: no retry is answered from them');
    second.close();
    clock += 1000;
    const third = Journal.open(path, () => clock);
    assert.deepEqual(third.recent.map((e) => e.method), [JOIN, LEAVE]);
    assert.deepEqual(third.pending, []);
    clock = 500_000 + KEEP_MS;
    assert.deepEqual(third.recent, [], 'gone after KEEP_MS');
    third.close();
    assert.ok(!readFileSync(path, 'utf8').includes('"EndpointID\\":\\"b'), 'the answered CreateEndpoint was not carried over');
  });
});

describe('an empty retry no journal entry matches, after a crash: asked of the worker, unless a reply may have been lost', () => {
  const req = (id: string, m: string) => JSON.stringify({ k: 'req', id, t: Date.now(), m, b: `{"NetworkID":"n","EndpointID":"${id}","Options":{}}\n` });
  const ans = (id: string) => JSON.stringify({ k: 'ans', id });
  const PEC = 'NetworkDriver.ProgramExternalConnectivity';

  it('trailingAnswers: the methods of the answers after the last request line', () => {
    assert.deepEqual(trailingAnswers([req('a', JOIN), ans('a'), req('b', CE), ans('b')].join('\n') + '\n'), [CE]);
    assert.deepEqual(trailingAnswers([req('a', JOIN), req('b', CE), ans('b'), ans('a')].join('\n') + '\n'), [CE, JOIN]);
    assert.deepEqual(trailingAnswers([req('a', JOIN), ans('a'), req('b', CE)].join('\n') + '\n'), [], 'a request after: every answer before it was delivered');
    assert.deepEqual(trailingAnswers(''), []);
  });

  /** A journal as a killed supervisor left it, opened by the next, and what an empty retry of `method` does with it. */
  async function retryAfter(lines: string[], method: string): Promise<{ asked: [string, string][]; reply: unknown }> {
    const path = join(dir, `dead-${Math.random().toString(16).slice(2)}`);
    writeFileSync(path, lines.join('\n') + '\n');
    const journal = Journal.open(path);
    const asked: [string, string][] = [];
    const retry = emptyRetries(journal, async (m, b) => (asked.push([m, b]), { status: 200, body: '{"asked":true}' }), pino({ level: 'silent' }));
    const reply = await retry(method);
    journal.close(true);
    return { asked, reply };
  }

  it('a Join: the worker is asked (JOIN_RETRY)', async () => {
    const r = await retryAfter([req('a', CE), ans('a'), req('x', CE)], JOIN);
    assert.deepEqual(r.asked, [[JOIN_RETRY, '{"answered":[]}']]);
    assert.deepEqual(r.reply, { status: 200, body: '{"asked":true}' });
  });

  it('a ProgramExternalConnectivity: asked with the kept Joins, Leaves and Revokes', async () => {
    const r = await retryAfter([req('j', JOIN), ans('j'), req('l', 'NetworkDriver.Leave'), ans('l'), req('x', CE)], PEC);
    assert.equal(r.asked.length, 1);
    assert.equal(r.asked[0]?.[0], EXTERNAL_RETRY);
    assert.deepEqual(JSON.parse(r.asked[0]?.[1] ?? ''), { joins: [{ NetworkID: 'n', EndpointID: 'j', Options: {} }], teardowns: [{ NetworkID: 'n', EndpointID: 'l', Options: {} }] });
  });

  it('a CreateEndpoint: the worker is asked (CREATE_RETRY), even when a CreateEndpoint was answered last (a done one needs no Join-time creation)', async () => {
    const r = await retryAfter([req('j', JOIN), ans('j'), req('x', JOIN)], CE);
    assert.deepEqual(r.asked, [[CREATE_RETRY, '{}']]);
    const last = await retryAfter([req('a', JOIN), req('b', CE), ans('a'), ans('b')], CE);
    assert.deepEqual(last.asked, [[CREATE_RETRY, '{}']]);
  });

  it('a DeleteEndpoint: the worker is asked (DELETE_RETRY), even when a DeleteEndpoint was answered last', async () => {
    const DE = 'NetworkDriver.DeleteEndpoint';
    assert.deepEqual((await retryAfter([req('j', JOIN), ans('j'), req('x', JOIN)], DE)).asked, [[DELETE_RETRY, '{}']]);
    assert.deepEqual((await retryAfter([req('a', JOIN), req('b', DE), ans('a'), ans('b')], DE)).asked, [[DELETE_RETRY, '{}']]);
  });

  /** Like retryAfter, with `n` empty retries of `method` at once (one batch). */
  async function retriesAfter(lines: string[], method: string, n: number): Promise<{ asked: [string, string][]; replies: unknown[] }> {
    const path = join(dir, `dead-${Math.random().toString(16).slice(2)}`);
    writeFileSync(path, lines.join('\n') + '\n');
    const journal = Journal.open(path);
    const asked: [string, string][] = [];
    const retry = emptyRetries(journal, async (m, b) => (asked.push([m, b]), { status: 200, body: '{}' }), pino({ level: 'silent' }));
    const replies = await Promise.all(Array.from({ length: n }, () => retry(method)));
    journal.close(true);
    return { asked, replies };
  }

  it('more retries than journaled calls of a method the worker has rules for: the journaled ones done again, each extra one asked of the worker, all answered {}', async () => {
    const body = (id: string) => `{"NetworkID":"n","EndpointID":"${id}","Options":{}}\n`;
    const pec = await retriesAfter([req('j', JOIN), ans('j'), req('x', PEC)], PEC, 2);
    assert.deepEqual(pec.asked.map(([m, b]) => [m, m === PEC ? b : '']), [[PEC, body('x')], [EXTERNAL_RETRY, '']], 'the journaled call first, then the worker\'s rules');
    assert.deepEqual(pec.replies, [{ status: 200, body: '{}' }, { status: 200, body: '{}' }]);
    const ce = await retriesAfter([req('x', CE), req('y', CE)], CE, 3);
    assert.deepEqual(ce.asked.map(([m]) => m), [CE, CE, CREATE_RETRY]);
    assert.ok(ce.replies.every((r) => JSON.stringify(r) === JSON.stringify({ status: 200, body: '{}' })));
    // Join has no common answer: still refused, and the entry is used up
    const join2 = await retriesAfter([req('x', JOIN)], JOIN, 2);
    assert.deepEqual(join2.asked, []);
    assert.ok(join2.replies.every((r) => /2 such calls were cut off at once/.test(JSON.stringify(r))));
  });

  it("fewer retries than journaled calls at first: the batch waits for the late ones (up to RETRY_GATHER_MS), then all are done again and answered; one that never comes: refused", async () => {
    const path = join(dir, `dead-${Math.random().toString(16).slice(2)}`);
    writeFileSync(path, [req('x', CE), req('y', CE)].join('\n') + '\n');
    const journal = Journal.open(path);
    const asked: string[] = [];
    const retry = emptyRetries(journal, async (m) => (asked.push(m), { status: 200, body: '{}' }), pino({ level: 'silent' }));
    const t0 = Date.now();
    const first = retry(CE);
    await new Promise((r) => setTimeout(r, RETRY_BATCH_MS + 300));
    assert.deepEqual(asked, [], 'not decided while a journaled call has no retry yet');
    const late = retry(CE);
    assert.deepEqual(await Promise.all([first, late]), [{ status: 200, body: '{}' }, { status: 200, body: '{}' }]);
    assert.deepEqual(asked, [CE, CE], 'both journaled calls done again');
    assert.ok(Date.now() - t0 < RETRY_GATHER_MS);
    journal.close(true);
    // The other retry never comes: refused once the gathering is over, as before.
    const lone = await retriesAfter([req('x', CE), req('y', CE)], CE, 1);
    assert.deepEqual(lone.asked, []);
    assert.match(JSON.stringify(lone.replies[0]), /2 such calls were cut off at once/);
  });

  it('a CreateNetwork no entry matches: the worker is asked (NETWORK_RETRY), even when a CreateNetwork was answered last', async () => {
    const CN = 'NetworkDriver.CreateNetwork';
    assert.deepEqual((await retryAfter([req('j', JOIN), ans('j'), req('x', JOIN)], CN)).asked, [[NETWORK_RETRY, '{}']]);
    assert.deepEqual((await retryAfter([req('a', JOIN), req('b', CN), ans('a'), ans('b')], CN)).asked, [[NETWORK_RETRY, '{}']]);
  });

  it('more retries than journaled calls, and a call of the method answered just as the supervisor died: refused, nothing done', async () => {
    const r = await retriesAfter([req('a', PEC), req('x', PEC), ans('a')], PEC, 2);
    assert.deepEqual(r.asked, []);
    assert.ok(r.replies.every((x) => /2 such calls were cut off at once/.test(JSON.stringify(x))), JSON.stringify(r.replies));
  });

  it('a call of the same method among the last answers (its reply may never have left): refused, the worker not asked', async () => {
    const r = await retryAfter([req('a', CE), req('b', PEC), ans('a'), ans('b')], PEC);
    assert.deepEqual(r.asked, []);
    assert.match(JSON.stringify(r.reply), /answered just as ledgernet was stopped/);
  });

  it('a Join among the last answers: the worker is asked and told those Joins (each a candidate of its own)', async () => {
    const r = await retryAfter([req('a', CE), req('b', JOIN), req('c', JOIN), ans('c'), ans('a'), ans('b')], JOIN);
    const body = (id: string) => ({ NetworkID: 'n', EndpointID: id, Options: {} });
    assert.deepEqual(r.asked.map(([m, b]) => [m, JSON.parse(b)]), [[JOIN_RETRY, { answered: [body('c'), body('b')] }]], 'the answers after the last request line: c, a (not a Join), b');
    const before = await retryAfter([req('b', JOIN), ans('b'), req('x', CE)], JOIN);
    assert.deepEqual(before.asked.map(([m, b]) => [m, JSON.parse(b)]), [[JOIN_RETRY, { answered: [] }]], 'an answer before a later request was delivered');
  });

  it('the answers a rewrite carried over are not taken for the last ones: a supervisor killed before any call of its own leaves no doubt', () => {
    const path = join(dir, 'carried');
    writeFileSync(path, [req('a', JOIN), ans('a')].join('\n') + '\n');
    const first = Journal.open(path);
    assert.deepEqual([...first.undelivered], [JOIN], 'its writer died right after answering a Join');
    first.close(); // killed before any call of its own
    const second = Journal.open(path);
    assert.equal(second.recentCrash(), true);
    assert.deepEqual([...second.undelivered], [], 'the Join carried over was answered by an earlier supervisor');
    assert.deepEqual(second.recent.map((e) => e.method), [JOIN], 'and is still kept');
    second.close(true);
  });

  it('without a crash (a clean stop): the worker refuses the empty body as before, nothing is asked', async () => {
    const r = await retryAfter([req('a', CE), ans('a'), '{"k":"end"}'], JOIN);
    assert.deepEqual(r.asked, []);
    assert.equal(r.reply, null);
  });
});


describe('journal errors (review of 2026-12-06, finding 8)', () => {
  it('a journal that cannot be read: the error names the file and what to do', () => {
    const path = join(dir, 'jdir');
    mkdirSync(path);
    assert.throws(() => Journal.open(path), (e: Error & { code?: string }) => e.code === 'LN_ERR_LOG_IO' && e.message.includes(`cannot read the request journal ${path}: EISDIR`) && e.message.includes('move it aside'));
  });

  it('a rewrite that fails leaves no requests.journal.new behind, and the journal goes on', () => {
    const path = join(dir, 'jfail');
    const j = Journal.open(path, () => 100_000);
    // The journal's name taken by a non-empty directory: renaming the rewrite over it fails.
    rmSync(path);
    mkdirSync(path);
    writeFileSync(join(path, 'x'), '');
    const big = `{"pad":"${'x'.repeat(600 * 1024)}"}\n`;
    for (let i = 0; i < 8 && !j.lastError; i++) assert.ok(j.received(CE, big));
    assert.match(String(j.lastError), /ENOTEMPTY|EISDIR|EEXIST/);
    assert.equal(existsSync(`${path}.new`), false);
    assert.ok(j.received(CE, '{}\n'), 'still appends');
    j.close();
  });
});
