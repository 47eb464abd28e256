// The nf_tables notices (kernel/nf-changes.ts) read from a real capture
// (fixtures/netlink/nft-notices.hex: what a socket bound to NFNLGRP_NFTABLES received after each
// step), and what a cut or unknown notice makes of them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readNotices, type NetlinkMessage } from '../../../src/kernel/netlink.ts';
import { changedTables, noteNotice, noticesRead } from '../../../src/kernel/nf-changes.ts';
import { readFixtureLines } from '../../helpers/fixtures.ts';

/** Each step's datagrams, in order. */
function steps(): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  for (const line of readFixtureLines('netlink/nft-notices.hex')) {
    const [name = '', hex = ''] = line.split(' ');
    out.set(name, [...(out.get(name) ?? []), Buffer.from(hex, 'hex')]);
  }
  return out;
}

/** What the datagrams say: the tables named, their committers, the last generation, whether every notice named a table. */
function noted(datagrams: readonly Buffer[]): { tables: string[]; by: (number | null)[]; generation: number | null; named: boolean; whole: boolean } {
  const seen = noticesRead();
  let named = true;
  let whole = true;
  for (const d of datagrams) {
    if (!readNotices(d, (m) => void (noteNotice(m, seen) || (named = false)))) whole = false;
  }
  const tables = changedTables(seen);
  return { tables: [...tables.keys()].sort(), by: [...new Set([...tables.values()].flatMap((s) => [...s]))], generation: seen.generation, named, whole };
}

describe('the nf_tables notices of a real kernel', () => {
  it('name the table each commit changed, then its generation', () => {
    const all = steps();
    const expected: Record<string, string[]> = {
      'iptables-A': ['ip filter'],
      'ip6tables-A': ['ip6 filter'],
      table: ['inet ledgernet'],
      chain: ['inet ledgernet'],
      rule: ['inet ledgernet'],
      set: ['inet ledgernet'],
      element: ['inet ledgernet'],
      'other-table': ['inet lnother'],
      delete: ['inet ledgernet'],
    };
    assert.deepEqual([...all.keys()], Object.keys(expected), 'every step of the capture');
    let generation: number | null = null;
    for (const [step, tables] of Object.entries(expected)) {
      const n = noted(all.get(step) ?? []);
      assert.deepEqual(n, { tables, by: n.by, generation: n.generation, named: true, whole: true }, step);
      // One committer a step: the process that ran the command (its thread id: a process of one thread).
      assert.equal(n.by.length, 1, `${step}: one committer`);
      assert.ok(typeof n.by[0] === 'number' && n.by[0] > 1, `${step}: the committer named`);
      // Without the NEWGEN the commit has not ended: its tables, committer unknown.
      const first = all.get(step)?.slice(0, -1) ?? [];
      assert.deepEqual(noted(first).by, [null], `${step}: before the NEWGEN`);
      // One commit a step: the generation moves by one, and its NEWGEN comes last.
      assert.ok(n.generation !== null, `${step}: a NEWGEN`);
      if (generation !== null) assert.equal(n.generation, generation + 1, `${step}: the next generation`);
      generation = n.generation;
      const last = all.get(step)?.at(-1);
      assert.deepEqual(noted(last === undefined ? [] : [last]).tables, [], `${step}: the last datagram is the NEWGEN alone`);
    }
  });

  it('says so when a datagram is cut short or a notice names no table', () => {
    const rule = steps().get('rule')?.[0];
    assert.ok(rule);
    assert.equal(noted([rule.subarray(0, rule.length - 8)]).whole, false, 'a message longer than its datagram');
    // The rule's notice with its attributes cut off: the nfgenmsg alone names no table.
    const bare = Buffer.from(rule.subarray(0, 20));
    bare.writeUInt32LE(20, 0);
    assert.deepEqual(noted([bare]), { tables: [], by: [], generation: null, named: false, whole: true });
    // A family nft has no name for.
    const odd = Buffer.from(rule);
    odd[16] = 99;
    assert.equal(noted([odd]).named, false);
  });

  it('leaves out netlink’s own messages and other subsystems', () => {
    const seen = noticesRead();
    const conntrack: NetlinkMessage = { type: (1 << 8) | 0, payload: Buffer.from([2, 0, 0, 0]) };
    assert.equal(noteNotice(conntrack, seen), true);
    const done = Buffer.alloc(20);
    done.writeUInt32LE(20, 0);
    done.writeUInt16LE(3, 4);
    const messages: NetlinkMessage[] = [];
    assert.equal(readNotices(done, (m) => messages.push(m)), true);
    assert.deepEqual([messages, [...changedTables(seen).keys()]], [[], []]);
  });
});
