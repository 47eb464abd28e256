// The supervisor's log without pino (src/supervisor/log.ts): the same lines pino writes for the
// same calls (what an operator's log shipper parses), levels filtered, a bad level refused.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { DriverError } from '../../../src/errors.ts';
import { jsonLog, type Log } from '../../../src/supervisor/log.ts';

function calls(log: Log): void {
  const child = log.child({ component: 'supervisor' });
  child.info({ workerPid: 42, generation: 1 }, 'worker ready');
  child.debug({ skipped: true }, 'below the level');
  log.warn('plain message');
  child.error({ err: new DriverError('LN_ERR_TIMEOUT', 'no answer'), code: 1 }, 'worker died');
  log.info({ only: 'fields' });
}

const parse = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).map(({ time, ...rest }) => (assert.match(String(time), /^\d{4}-\d\d-\d\dT.*Z$/), rest));

describe('the supervisor log', () => {
  it("writes pino's lines for pino's calls", () => {
    const ours: string[] = [];
    calls(jsonLog('info', (l) => ours.push(l)));
    const theirs: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (theirs.push(...c.toString().split('\n').filter(Boolean)), cb()) });
    calls(pino({ level: 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, sink));
    assert.equal(ours.length, 4);
    assert.ok(ours.every((l) => l.endsWith('\n')));
    const [a, b] = [parse(ours), parse(theirs)];
    assert.deepEqual(a.map((o) => Object.keys(o)), b.map((o) => Object.keys(o)), 'same keys in the same order');
    assert.deepEqual(a.map(({ err, ...o }) => o), b.map(({ err, ...o }) => o));
    const err = (x: Record<string, unknown>[]) => x[2]?.['err'] as Record<string, unknown>;
    assert.deepEqual([err(a)['type'], err(a)['message'], err(a)['code']], [err(b)['type'], err(b)['message'], err(b)['code']]);
    assert.match(String(err(a)['stack']), /no answer/);
  });

  it('writes nothing when silent, and refuses a level pino does not know', () => {
    const lines: string[] = [];
    calls(jsonLog('silent', (l) => lines.push(l)));
    assert.deepEqual(lines, []);
    assert.throws(() => jsonLog('loud'), /--log-level must be one of trace, debug, info, warn, error, fatal, silent; got loud/);
  });
});
