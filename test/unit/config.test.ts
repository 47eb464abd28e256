import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeNats, parseDuration, parseRetention } from '../../src/config.ts';

describe('NATS config', () => {
  const base = { url: 'nats://127.0.0.1:4222', token: undefined, credsFile: undefined, tlsCa: undefined, tlsCert: undefined, tlsKey: undefined };

  it('describes the servers without secrets', () => {
    const d = describeNats({ ...base, url: 'nats://alice:s3cret@a:4222,tls://bob:pw@b:4222', token: 'tok-123' });
    assert.equal(d, 'nats://***@a:4222,tls://***@b:4222 (auth token)');
    assert.doesNotMatch(d, /s3cret|pw|tok-123/);
    assert.equal(describeNats({ ...base, credsFile: '/etc/x.creds', tlsCa: '/ca.pem' }), 'nats://127.0.0.1:4222 (auth creds, tls)');
  });

  it('parses durations and retention', () => {
    assert.equal(parseDuration('d', '1s'), 1000);
    assert.equal(parseDuration('d', '500ms'), 500);
    assert.equal(parseDuration('d', '2m'), 120_000);
    assert.equal(parseDuration('d', '30d'), 30 * 86_400_000);
    assert.equal(parseDuration('d', '3'), 3000);
    assert.throws(() => parseDuration('nats-dup-window', 'soon'), /--nats-dup-window must be a duration/);
    assert.equal(parseRetention('interest'), 'interest');
    assert.throws(() => parseRetention('forever'), /limits, interest or workqueue/);
  });
});
