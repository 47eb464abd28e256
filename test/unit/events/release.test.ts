import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriverError } from '../../../src/errors.ts';
import { releaseCommand } from '../../../src/events/domain/release.ts';
import { NET_A, NET_B, given, networkSpec } from '../../helpers/events.ts';

describe('releaseCommand (ledgernet release)', () => {
  const state = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') });

  it('resolves a unique id prefix of 12+ hex to DeleteNetwork', () => {
    assert.deepEqual(releaseCommand(state, NET_A.slice(0, 12)), { type: 'DeleteNetwork', networkId: NET_A });
    assert.deepEqual(releaseCommand(state, NET_B), { type: 'DeleteNetwork', networkId: NET_B });
  });

  it('refuses an unknown id, and something that is neither an id nor a held pool, naming it', () => {
    assert.throws(() => releaseCommand(state, 'cafecafecafe'), (e: DriverError) => e.code === 'LN_ERR_UNKNOWN_NETWORK' && /cafecafecafe/.test(e.message));
    assert.throws(() => releaseCommand(state, '10.9.9.0/24'), (e: DriverError) => e.code === 'LN_ERR_BAD_REQUEST' && /10\.9\.9\.0\/24/.test(e.message));
    assert.throws(() => releaseCommand(state, 'abc'), (e: DriverError) => e.code === 'LN_ERR_BAD_REQUEST');
  });
});
