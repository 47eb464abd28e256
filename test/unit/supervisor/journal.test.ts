// The supervisor's request journal (the file): what an earlier supervisor left unanswered, what
// is on disk when, and whether its writer died.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Journal, endedUncleanly, liveEntries } from '../../../src/supervisor/journal.ts';
import { RETRY_WINDOW_MS } from '../../../src/supervisor/retry-match.ts';

const dir = mkdtempSync(join(tmpdir(), 'ledgernet-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const JOIN = 'NetworkDriver.Join';
const CE = 'NetworkDriver.CreateEndpoint';

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
