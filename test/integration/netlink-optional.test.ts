// A dump the kernel may refuse (the IPv6 netconf dump of a kernel without IPv6) must not fail the
// full read's other dumps: shown with a request type the kernel answers EOPNOTSUPP to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openNetlink, type Dump } from '../../src/kernel/netlink.ts';
import { LINK_DUMP_REQUEST, RTM_GETLINK } from '../../src/kernel/parse-link-dump.ts';

const REFUSED = 83; // no rtnetlink message type: the kernel answers errno 95 (EOPNOTSUPP)

describe('netlink dumps marked optional', () => {
  it('a refused optional dump ends empty and the others are read; the same dump not optional fails naming it', async () => {
    const nl = await openNetlink(undefined, 5_000);
    assert.ok(nl, 'libc callable');
    let links = 0;
    let refused = 0;
    const linksDump: Dump = { what: 'read links', type: RTM_GETLINK, body: LINK_DUMP_REQUEST, each: () => void links++ };
    const refusedDump: Dump = { what: 'read what is refused', type: REFUSED, body: Buffer.from([10, 0, 0, 0]), each: () => void refused++ };
    await nl.dump([linksDump, { ...refusedDump, optional: true }]);
    assert.ok(links > 0, 'the links were read');
    assert.equal(refused, 0);
    await assert.rejects(nl.dump([linksDump, refusedDump]), /could not read what is refused: the kernel answered errno 95/);
  });
});
