// Ingress redirects from rtnetlink filter dumps (kernel/parse-filter-dump.ts) against what
// `tc -j -batch` printed for the same devices at the same moment (fixtures/netlink/capture-filters.py):
// ledgernet's redirect to an ifb, a mirror then a redirect in one filter, a second filter that only
// mirrors, an ingress qdisc without filters, an ingress redirect.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { filterOf, ingressFilterDumpRequest, namedRedirects, type DumpedFilter } from '../../../src/kernel/parse-filter-dump.ts';
import { parseIngressRedirects } from '../../../src/kernel/parse-tc.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

const DEVS = ['lnv-aaaa', 'lnv-bbbb', 'lnv-cccc', 'lnv-dddd'];
const dumped = (): DumpedFilter[] =>
  readFixtureLines('netlink/filter-dump.hex').flatMap((line) => {
    const b = Buffer.from(line.split(' ')[1] ?? '', 'hex');
    const f = filterOf({ type: b.readUInt16LE(0), payload: b.subarray(2) });
    return f === null ? [] : [f];
  });
const names = () => new Map(JSON.parse(readFixture('netlink/filter-dump.links.json')) as [number, string][]);
const asked = () => {
  const byName = new Map([...names()].map(([i, n]) => [n, i]));
  return new Map(DEVS.map((d) => [byName.get(d) ?? -1, d]));
};

describe('ingress redirects from the kernel filter dumps', () => {
  it('gives each device the targets tc -j filter show names: redirects only, egress or ingress, in order', () => {
    const read = namedRedirects(dumped(), asked(), names());
    assert.deepEqual(read, parseIngressRedirects(readFixture('netlink/filter-dump.tc.json'), DEVS));
    assert.deepEqual(read, { 'lnv-aaaa': ['lnf-aaaa'], 'lnv-bbbb': ['lnf-aaaa'], 'lnv-cccc': [], 'lnv-dddd': ['lnf-dddd'] });
  });

  it('names a device it does not know as tc does (if<N>), and ignores filters of devices not asked for', () => {
    const known = names();
    const lnfAaaa = [...known].find(([, n]) => n === 'lnf-aaaa')?.[0] ?? -1;
    known.delete(lnfAaaa);
    assert.deepEqual(namedRedirects(dumped(), asked(), known)?.['lnv-aaaa'], [`if${lnfAaaa}`]);
    const one = new Map([...asked()].filter(([, d]) => d === 'lnv-cccc'));
    assert.deepEqual(namedRedirects(dumped(), one, names()), { 'lnv-cccc': [] });
  });

  it('answers nothing when a filter is of a kind it does not read (tc is asked then)', () => {
    const [first, ...rest] = dumped();
    assert.ok(first);
    assert.equal(namedRedirects([{ ...first, kind: 'matchall' }, ...rest], asked(), names()), null);
    assert.equal(filterOf({ type: 36, payload: Buffer.alloc(24) }), null, 'a qdisc message is no filter');
  });

  it('asks as tc filter show dev D ingress does: struct tcmsg with the device and parent ffff:fff2', () => {
    assert.deepEqual([...ingressFilterDumpRequest(6)], [0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0xf2, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  });
});
