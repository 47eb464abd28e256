// The restart tests decide "nothing was recreated" with recreated(): it must see every way an
// object can be recreated (another ifindex, a counter back at 0, gone, new).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recreated, type KernelObjects } from '../helpers/kernel-objects.ts';

const look = (links: string[], rules: [string, number][], qdiscs: [string, number][]): KernelObjects => ({
  links,
  rules: new Map(rules),
  qdiscs: new Map(qdiscs),
});

describe('recreated', () => {
  const before = look(['lnb-a#10', 'lnv-b#12'], [['iptables-save -t filter -A LEDGERNET-FORWARD -i lnb-a -j ACCEPT', 50]], [['lnv-b tbf 8001: root', 40]]);

  it('is empty when the same objects only counted more packets', () => {
    assert.deepEqual(recreated(before, look(['lnb-a#10', 'lnv-b#12'], [['iptables-save -t filter -A LEDGERNET-FORWARD -i lnb-a -j ACCEPT', 90]], [['lnv-b tbf 8001: root', 41]])), []);
  });

  it('names a link with another ifindex, a rule or qdisc whose counter restarted, and what is gone or new', () => {
    const after = look(['lnb-a#10', 'lnv-b#15'], [['iptables-save -t filter -A LEDGERNET-FORWARD -i lnb-a -j ACCEPT', 3]], [['lnv-b tbf 8002: root', 1]]);
    assert.deepEqual(recreated(before, after), [
      'link lnv-b#12 is gone or has another ifindex',
      'link lnv-b#15 is new',
      'rule iptables-save -t filter -A LEDGERNET-FORWARD -i lnb-a -j ACCEPT: its packet counter went from 50 to 3 (recreated)',
      'qdisc lnv-b tbf 8001: root is gone',
      'qdisc lnv-b tbf 8002: root is new',
    ]);
  });
});
