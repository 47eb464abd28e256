import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withIpv6Enabled } from '../../../src/kernel/run-kernel.ts';
import type { ChangesResult, LinkChange } from '../../../src/kernel/types.ts';

const add = (dev: string, cidr: string) => ({ kind: 'addr.add', dev, cidr }) as LinkChange;
const OFF = 'Error: ipv6: IPv6 is disabled on this device.';

describe('an IPv6 address refused because IPv6 is disabled on its device', () => {
  const changes = [add('lnb-a', '10.231.7.1/24'), add('lnb-a', 'fd00:231:7::1/64'), add('lnb-b', 'fd00:231:8::1/64'), add('lnb-c', 'fd00:231:9::1/64')];

  it('turns IPv6 on on those devices only and adds those addresses again; the failures keep their indices', async () => {
    const applied: LinkChange[][] = [];
    const enabled: string[][] = [];
    // First try: the two IPv6 addresses of a and b refused as disabled, c's for another reason; the retry: b's fails again.
    const apply = async (cs: readonly LinkChange[]): Promise<ChangesResult> => {
      applied.push([...cs]);
      return applied.length === 1
        ? { failures: [{ index: 1, message: OFF }, { index: 2, message: OFF }, { index: 3, message: 'Error: File exists' }] }
        : { failures: [{ index: 1, message: 'Error: still not' }] };
    };
    const r = await withIpv6Enabled(changes, apply, async (devs) => void enabled.push([...devs]));
    assert.deepEqual(enabled, [['lnb-a', 'lnb-b']]);
    assert.deepEqual(applied[1], [changes[1], changes[2]]);
    assert.deepEqual(r.failures, [{ index: 2, message: 'Error: still not' }, { index: 3, message: 'Error: File exists' }]);
  });

  it('nothing refused so: one apply; turning IPv6 on fails: the first failures stand', async () => {
    let calls = 0;
    const ok = await withIpv6Enabled(changes, async () => (calls++, { failures: [] }), async () => assert.fail('not asked'));
    assert.deepEqual([ok.failures, calls], [[], 1]);
    const first = { failures: [{ index: 1, message: OFF }] };
    const r = await withIpv6Enabled(changes, async () => first, async () => {
      throw new Error('read-only /proc/sys');
    });
    assert.equal(r, first);
  });
});
