import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseIngressRedirects } from '../../../src/kernel/parse-tc.ts';
import { readFixture } from '../../helpers/fixtures.ts';

describe('parseIngressRedirects', () => {
  it('reads, per device, where its ingress filters redirect to', () => {
    assert.deepEqual(parseIngressRedirects(readFixture('tc/batch-filter-show.ingress-redirect.txt'), ['lnv-aaaa', 'lnv-bbbb']), {
      'lnv-aaaa': ['lni-aaaa'],
      'lnv-bbbb': [],
    });
  });

  it('refuses answers that do not line up with the devices asked for', () => {
    assert.throws(() => parseIngressRedirects('[]\n', ['a', 'b']), { name: 'DriverError', code: 'LN_ERR_KERNEL_PARSE' });
  });
});
