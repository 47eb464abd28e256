// docs/events.md is the event catalog observers read: it must show every event type, and every
// example must be a real CloudEvent that verifies (its hash, and the chain between examples).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fromCloudEvent, toCloudEvent } from '../../../src/events/audit/cloudevents.ts';
import { eventHash } from '../../../src/events/log/hash.ts';
import { EventVersions, GENESIS_HASH, type StoredEvent } from '../../../src/events/domain/types.ts';
import { REPO_ROOT } from '../../helpers/daemon.ts';

const doc = readFileSync(join(REPO_ROOT, 'docs', 'events.md'), 'utf8');
const examples = [...doc.matchAll(/```json\n(.*?)\n```/gs)].map((m) => JSON.parse(m[1] ?? '') as unknown);

describe('docs/events.md', () => {
  it('has an example of every event type', () => {
    const events = examples.map((e) => fromCloudEvent(e)).filter((e): e is StoredEvent => typeof e !== 'string');
    const shown = new Set(events.map((e) => e.type));
    for (const type of Object.keys(EventVersions)) assert.ok(shown.has(type as StoredEvent['type']), `docs/events.md shows ${type}`);
  });

  it('every example verifies: its own hash, the chain, and the mapping both ways', () => {
    let prev = GENESIS_HASH;
    let seq = 0;
    for (const raw of examples) {
      const ev = fromCloudEvent(raw);
      if (typeof ev === 'string') continue; // not an event example (e.g. a subject listing)
      assert.equal(eventHash(ev), ev.hash, `${ev.id} hash`);
      assert.equal(ev.prevhash, prev, `${ev.id} links to the example before it`);
      assert.equal(ev.seq, seq + 1);
      assert.deepEqual(JSON.parse(JSON.stringify(toCloudEvent(ev))), raw);
      prev = ev.hash;
      seq = ev.seq;
    }
    assert.ok(seq >= Object.keys(EventVersions).length);
  });
});
