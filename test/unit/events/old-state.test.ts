// State dirs written by earlier ledgernet versions (fixtures/state/, captured from those versions
// running with the real dockerd: see its README) are taken over by this one. An upgrade must lose
// no event, keep the hash chain, and want exactly the links the old version made, by name,
// alias and master, and the bridges' addresses: a veth whose container side sits in a container
// cannot be made again, and a link whose alias this version did not recognise would be left alone
// as foreign. The journal of a supervisor stopped cleanly must not look like a crash.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_POOLS } from '../../../src/api/ipam.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';
import { openStore } from '../../../src/events/log/open.ts';
import { LOG_START, readLog } from '../../../src/events/log/read.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { Journal, JOURNAL_FILE } from '../../../src/supervisor/journal.ts';

const FIXTURES = join(import.meta.dirname, '../../../fixtures/state');

/** What the capture's Docker said (docker.json). */
interface DockerView {
  readonly networks: Record<string, { readonly id: string }>;
  readonly containers: Record<string, Record<string, { readonly endpointId: string; readonly ipv4: string; readonly ipv6: string | null }>>;
}

/** One ledgernet link as `ip -j -d addr show` showed it under the old version (links.json). */
interface KernelLink {
  readonly ifname: string;
  readonly ifalias: string;
  readonly mtu: number;
  readonly master: string | null;
  readonly addrs: readonly string[];
}

const versions = (await readdir(FIXTURES, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();

describe('state dirs of earlier versions (fixtures/state)', () => {
  it('there are captures to read', () => {
    assert.ok(versions.length >= 2, versions.join(' '));
  });

  for (const version of versions) {
    it(`${version}: every event verifies and folds into the networks, endpoints and port Docker had; the same links are wanted; the allocator goes on`, async () => {
      const src = join(FIXTURES, version);
      const docker = JSON.parse(await readFile(join(src, 'docker.json'), 'utf8')) as DockerView;
      const links = JSON.parse(await readFile(join(src, 'links.json'), 'utf8')) as KernelLink[];
      const dir = await mkdtemp(join(tmpdir(), 'ln-old-state-'));
      try {
        await cp(src, dir, { recursive: true });
        // What `events verify` reads: the whole log, every hash recomputed.
        const read = await readLog(dir, LOG_START, { rehash: true });
        assert.equal(read.end.kind, 'clean', JSON.stringify(read.end));
        assert.ok(read.events.length > 30, `${read.events.length} events`);
        assert.deepEqual(read.events.map((e) => e.seq), read.events.map((_, i) => i + 1), 'no seq missing');

        const { store, state, warnings } = await openStore(dir, { host: 'upgrade-test' });
        try {
          assert.deepEqual(warnings, [], 'nothing in the old log needed changing');
          assert.deepEqual(Object.keys(state.networks).sort(), Object.values(docker.networks).map((n) => n.id).sort());
          const held = Object.values(docker.containers).flatMap((nets) => Object.values(nets));
          assert.deepEqual(Object.keys(state.endpoints).sort(), held.map((h) => h.endpointId).sort(), 'the endpoints Docker held, and no other');
          for (const [container, nets] of Object.entries(docker.containers)) {
            for (const [net, h] of Object.entries(nets)) {
              const ep = state.endpoints[h.endpointId];
              assert.ok(ep, `${container} on ${net}: endpoint ${h.endpointId}`);
              assert.equal(ep.networkId, docker.networks[net]?.id, `${container} on ${net}`);
              assert.equal(ep.address?.split('/')[0], h.ipv4, `${container} on ${net}: IPv4`);
              assert.equal(ep.addressV6?.split('/')[0] ?? null, h.ipv6, `${container} on ${net}: IPv6`);
              assert.equal(ep.joined, true, `${container} on ${net}: joined`);
            }
          }
          const u1 = state.endpoints[docker.containers.u1!.up1!.endpointId]!;
          assert.deepEqual(
            u1.portmap.map((p) => `${p.hostIp}:${p.hostPort}->${p.port}/${p.proto}`),
            ['127.0.0.1:18200->80/6'],
            "u1's published port",
          );

          // The links the old version made are the ones this version wants: same names, aliases,
          // masters and bridge addresses (the bridges' MTU too).
          const desired = desiredFromState(state);
          const wanted = [
            ...desired.bridges.map((b) => ({ ifname: b.name, ifalias: b.alias, mtu: b.mtu, master: null, addrs: [...b.addrs].sort() })),
            ...desired.veths.map((v) => ({ ifname: v.name, ifalias: v.alias, mtu: v.mtu, master: v.master, addrs: [] })),
          ].sort((a, b) => a.ifname.localeCompare(b.ifname));
          assert.deepEqual(wanted, [...links].map((l) => ({ ...l, addrs: [...l.addrs].sort() })).sort((a, b) => a.ifname.localeCompare(b.ifname)));

          // IPAM goes on where the old version left off: the next address of up2's pool is new.
          const pool = Object.entries(state.pools).find(([, p]) => p.pool === '10.231.0.0/24');
          assert.ok(pool, Object.values(state.pools).map((p) => p.pool).join(' '));
          const events = await store.execute({ type: 'RequestAddress', poolId: pool[0], address: null, gateway: false, name: null }, byLedgernet('test'));
          const given = events.find((e) => e.type === 'address.requested');
          assert.equal(given?.type === 'address.requested' ? given.data.address : null, '10.231.0.4');
          const next = await store.execute({ type: 'RequestPool', request: { pool: null, subPool: null, v6: false, defaults: DEFAULT_POOLS.v4, occupied: [] } }, byLedgernet('test'));
          assert.equal(next[0]?.type === 'pool.requested' ? next[0].data.pool : null, '10.231.1.0/24');
        } finally {
          await store.close();
        }
        const again = await readLog(dir, LOG_START, { rehash: true });
        assert.equal(again.events.length, read.events.length + 2, 'appended after the old events, chain unbroken');

        // A supervisor that was stopped cleanly left nothing for Docker's retries.
        const journal = Journal.open(join(dir, JOURNAL_FILE));
        try {
          assert.equal(journal.recentCrash(), false);
          assert.deepEqual(journal.pending, []);
        } finally {
          journal.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
