// The NATS publisher's line of `ledgernet status`, from the outbox's stats as the daemon reports them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { natsLine, type AuditStatus } from '../../../src/operator/nats-status.ts';

const publishing: AuditStatus = { target: 'nats://127.0.0.1:4222 (auth none)', backlog: 0, connected: true, state: 'publishing', lastError: null, conflict: null, elided: 0, lastElided: null };

describe('status: the NATS publisher line', () => {
  it('says whether a daemon answered and has a publisher', () => {
    assert.equal(natsLine(undefined, false, false), 'NATS publisher not running (no daemon)');
    assert.equal(natsLine(undefined, false, true), 'NATS publisher unknown (daemon not answering)');
    assert.equal(natsLine(null, true, false), 'NATS publisher off');
    assert.equal(natsLine(publishing, true, false), 'NATS nats://127.0.0.1:4222 (auth none) connected, publishing, backlog 0 event(s)');
  });

  it('names the events published without their data (over the stream\'s message limit), and the last of them', () => {
    assert.equal(
      natsLine({ ...publishing, elided: 3, lastElided: 'host1:4711' }, true, false),
      "NATS nats://127.0.0.1:4222 (auth none) connected, publishing, backlog 0 event(s); 3 event(s) published WITHOUT their data since the start (over the stream's message limit; the last host1:4711)",
    );
  });

  it('tells a refusing stream, an unreachable server and a stopped publisher apart', () => {
    assert.match(natsLine({ ...publishing, connected: false, state: 'refused', lastError: 'maximum messages exceeded' }, true, false), /reachable, but the stream REFUSES events \(maximum messages exceeded\), backlog 0/);
    assert.match(natsLine({ ...publishing, connected: false, state: 'unreachable', lastError: 'ECONNREFUSED', backlog: 12 }, true, false), /NOT reachable \(ECONNREFUSED\), backlog 12 event\(s\)$/);
    assert.match(natsLine({ ...publishing, conflict: { reason: 'other-events', message: 'the stream holds other events' } }, true, false), /publishing STOPPED, backlog 0 event\(s\): the stream holds other events$/);
  });
});
