// Who made an event happen (the envelope's `cause`): recorded by the store, kept by the log and
// its hash chain, carried losslessly by the CloudEvent, shown in words, and, for an operator's
// command, built only from what the command may state (checked) and what the kernel says.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { describeEvent, fromCloudEvent, toCloudEvent } from '../../../src/events/audit/cloudevents.ts';
import { byDocker, byLedgernet, checkReason, describeCause, REASON_MAX } from '../../../src/events/domain/cause.ts';
import type { Cause, StoredEvent } from '../../../src/events/domain/types.ts';
import { eventHash } from '../../../src/events/log/hash.ts';
import { openStore } from '../../../src/events/log/open.ts';
import { readLog } from '../../../src/events/log/read.ts';
import { operatorCause } from '../../../src/operator/operator-cause.ts';
import { stamp } from '../../helpers/chain.ts';
import { NET_A, networkSpec } from '../../helpers/events.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const OPERATOR: Cause = { by: 'operator', command: 'release', uid: 0, pid: 4242, user: 'alice', reason: 'ticket LN-42: a ghost of a crash' };

describe('causes in the log', () => {
  it('the store records each event with its cause; the log keeps it across a reopen and its hash chain covers it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledgernet-cause-'));
    dirs.push(dir);
    const { store } = await openStore(dir, { host: 'h1' });
    const [created] = await store.execute({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, byDocker('NetworkDriver.CreateNetwork'));
    const [deleted] = await store.execute({ type: 'DeleteNetwork', networkId: NET_A }, OPERATOR);
    assert.deepEqual(created?.cause, { by: 'docker', call: 'NetworkDriver.CreateNetwork' });
    assert.deepEqual(deleted?.cause, OPERATOR);
    await store.close();

    const back = await readLog(dir);
    assert.deepEqual(back.events.map((e) => e.cause), [created?.cause, OPERATOR]);
    for (const e of back.events) assert.equal(eventHash(e), e.hash, 'the hash covers the cause');
    // Another cause under the same hash is another event: the chain tells.
    const forged = { ...(back.events[1] as StoredEvent), cause: { ...OPERATOR, user: 'mallory' } } as StoredEvent;
    assert.notEqual(eventHash(forged), forged.hash);
  });
});

describe('causes on the wire (CloudEvents)', () => {
  const events = stamp('h1', [
    { type: 'network.created', data: networkSpec(NET_A) },
    { type: 'network.deleted', data: { networkId: NET_A } },
  ]);
  // stamp() makes events without a cause (as records older than causes): give them one and rehash.
  const caused = (ev: StoredEvent, cause: Cause): StoredEvent => {
    const { hash: _h, ...rest } = { ...ev, cause };
    return { ...rest, hash: eventHash(rest as Omit<StoredEvent, 'hash'>) } as StoredEvent;
  };

  it('carries every field of the cause as an extension attribute and rebuilds the event exactly', () => {
    for (const cause of [OPERATOR, byDocker('NetworkDriver.Join'), byLedgernet('docker-sync'), { by: 'operator', command: 'repair' } as Cause]) {
      const ev = caused(events[1] as StoredEvent, cause);
      const ce = JSON.parse(JSON.stringify(toCloudEvent(ev))) as Record<string, unknown>;
      for (const [k, v] of Object.entries(cause)) assert.equal(ce[`cause${k}`], v, `cause${k}`);
      const back = fromCloudEvent(ce);
      assert.deepEqual(back, ev);
      assert.equal(eventHash(back as StoredEvent), ev.hash);
    }
  });

  it('an event without a cause has no cause attributes; one dropped on the way fails the hash', () => {
    const old = events[0] as StoredEvent;
    const ce = JSON.parse(JSON.stringify(toCloudEvent(old))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(ce).filter((k) => k.startsWith('cause')), []);
    assert.deepEqual(fromCloudEvent(ce), old);
    const ev = caused(events[1] as StoredEvent, OPERATOR);
    const stripped = JSON.parse(JSON.stringify(toCloudEvent(ev))) as Record<string, unknown>;
    delete stripped['causereason'];
    assert.notEqual(eventHash(fromCloudEvent(stripped) as StoredEvent), ev.hash);
  });

  it('refuses cause attributes that are not a cause', () => {
    const ce = JSON.parse(JSON.stringify(toCloudEvent(caused(events[1] as StoredEvent, OPERATOR)))) as Record<string, unknown>;
    assert.equal(fromCloudEvent({ ...ce, causeuid: { n: 0 } }), 'causeuid is not a string or a number');
    const { causeby: _b, ...noBy } = ce;
    assert.equal(fromCloudEvent(noBy), 'causeby is missing or not a string');
  });

  it('says the cause in words', () => {
    assert.equal(describeCause(byDocker('NetworkDriver.CreateNetwork')), 'docker NetworkDriver.CreateNetwork');
    assert.equal(describeCause(OPERATOR), 'operator alice (uid 0, pid 4242) release: "ticket LN-42: a ghost of a crash"');
    assert.equal(describeCause({ by: 'operator', command: 'repair' }), 'operator repair');
    assert.equal(describeCause(byLedgernet('reconciler')), 'ledgernet reconciler');
    assert.equal(describeCause({ by: 'someone-new', what: 'x' } as unknown as Cause), '{"by":"someone-new","what":"x"}');
    assert.equal(describeEvent(caused(events[1] as StoredEvent, OPERATOR)), `2026-11-23T13:02:12Z h1 network aaaaaaaa0000 deleted (by ${describeCause(OPERATOR)})`);
  });
});

describe("an operator's cause", () => {
  it('takes uid and pid from the kernel and the name, command and reason the command stated', () => {
    assert.deepEqual(operatorCause({ command: 'release', user: 'alice', reason: 'ticket 42' }, { uid: 0, pid: 77 }), { by: 'operator', command: 'release', uid: 0, pid: 77, user: 'alice', reason: 'ticket 42' });
    // pid 0: the peer is in another pid namespace (a managed plugin's control socket), unknown here.
    assert.deepEqual(operatorCause({ command: 'repair' }, { uid: 0, pid: 0 }), { by: 'operator', command: 'repair', uid: 0 });
    assert.deepEqual(operatorCause(undefined, null), { by: 'operator', command: 'release' });
  });

  it('refuses what a command may not state, naming it', () => {
    const refused = (body: unknown, re: RegExp) => assert.throws(() => operatorCause(body, null), (e: Error) => re.test(e.message));
    refused([], /must be a JSON object/);
    refused({ command: 'release', uid: 0 }, /unknown field\(s\) uid/);
    refused({ command: 'reconcile' }, /command must be one of release, repair, events archive, cluster forget, got "reconcile"/);
    refused({ user: 'root; rm -rf /' }, /user must be a login name/);
    refused({ user: 'x'.repeat(65) }, /user must be a login name/);
    refused({ reason: 42 }, /reason must be a string/);
    refused({ reason: '  ' }, /--reason is empty/);
    refused({ reason: 'two\nlines' }, /control character/);
    refused({ reason: 'esc\u001b[31m' }, /control character/);
    refused({ reason: 'r'.repeat(REASON_MAX + 1) }, new RegExp(`${REASON_MAX + 1} characters long; at most ${REASON_MAX}`));
    assert.equal(checkReason('r'.repeat(REASON_MAX)), null);
    assert.equal(checkReason('Änderung für Ticket 42 — ok'), null);
  });
});
