// How nft commands run (src/kernel/nft-library.ts): through libnftables in a worker thread, and,
// when the library cannot be loaded, through the `nft` process. Both routes in a throwaway
// namespace: the route is reported once with its reason, a transaction lands where `nft` itself
// sees it (and not in the host's namespace), `observe` reads it back the same way, and a bad
// transaction fails with nft's own error text and changes nothing. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { createKernel, type HostKernel } from '../../src/kernel/index.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const ROUTES = [
  { via: 'libnftables', library: undefined, why: /libnftables\.so\.1 loaded/ },
  { via: 'nft', library: 'libnftables-absent.so.1', why: /libnftables-absent\.so\.1 could not be loaded \(Debian's package libnftables1\)/ },
] as const;

for (const route of ROUTES) {
  describe(`nft commands through ${route.via}`, { skip }, () => {
    const netns = `lnlib-${process.pid}-${randomBytes(3).toString('hex')}`;
    const set = `probe_${randomBytes(3).toString('hex')}`;
    const routes: { via: string; why: string }[] = [];
    let kernel: HostKernel;
    const nftIn = async (...args: string[]) => (await execa('ip', ['netns', 'exec', netns, 'nft', ...args])).stdout;
    const tx = (...cmds: object[]) => JSON.stringify({ nftables: cmds });
    const table = { family: 'inet', name: 'ledgernet' };
    const inTable = { family: 'inet', table: 'ledgernet' };

    before(async () => {
      await execa('ip', ['netns', 'add', netns]);
      kernel = createKernel({ netns, filterPrefixes: [], ...(route.library === undefined ? {} : { nftLibrary: route.library }), onNftRoute: (r) => routes.push(r) });
    });

    after(async () => {
      await execa('ip', ['netns', 'del', netns], { reject: false });
    });

    it('reads no table, then writes one transaction that nft lists in the namespace only', async () => {
      assert.equal((await kernel.observe()).nftables, null);
      await kernel.nftApply(
        tx(
          { add: { table } },
          { add: { set: { ...inTable, name: set, type: ['inet_proto', 'inet_service'] } } },
          { add: { element: { ...inTable, name: set, elem: [{ concat: ['tcp', 8080] }, { concat: ['udp', 53] }] } } },
        ),
      );
      const listed = await nftIn('list', 'set', 'inet', 'ledgernet', set);
      assert.match(listed, /tcp \. 8080/);
      assert.match(listed, /udp \. 53/);
      assert.doesNotMatch((await execa('nft', ['list', 'ruleset'])).stdout, new RegExp(set), "the host's namespace is untouched");
      const seen = (await kernel.observe()).nftables;
      assert.deepEqual(
        seen?.sets[set]?.elements.map((e) => JSON.stringify(e)).sort(),
        ['{"concat":["tcp",8080]}', '{"concat":["udp",53]}'],
      );
      assert.deepEqual(routes.map((r) => r.via), [route.via], 'the route is told once');
      assert.match(routes[0]?.why ?? '', route.why);
    });

    it("fails a bad transaction whole, with nft's error text", async () => {
      const bad = tx({ add: { element: { ...inTable, name: set, elem: [{ concat: ['tcp', 9090] }] } } }, { add: { chain: { family: 'inet', table: 'nosuch', name: 'x' } } });
      await assert.rejects(kernel.nftApply(bad), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'LN_ERR_KERNEL_EXEC');
        assert.match(e.message, new RegExp(`could not apply nftables rules in network namespace ${netns}: .*nft -j -f .* exited with code 1: internal:0:0-0: Error: No such file or directory`));
        return true;
      });
      assert.doesNotMatch(await nftIn('list', 'set', 'inet', 'ledgernet', set), /9090/, 'nothing of it applied');
    });

    it('with 1,100 descriptors open (a daemon holding that many published host ports), a transaction lands and the process lives', async () => {
      // libnftables waits with select(2): a netlink socket numbered 1,024 or more aborted the process.
      const held = Array.from({ length: 1_100 }, () => openSync('/dev/null', 'r'));
      try {
        await kernel.nftApply(tx({ add: { element: { ...inTable, name: set, elem: [{ concat: ['tcp', 7070] }] } } }));
      } finally {
        for (const fd of held) closeSync(fd);
      }
      assert.match(await nftIn('list', 'set', 'inet', 'ledgernet', set), /tcp \. 7070/);
      // Descriptors free again: the library's route once more.
      await kernel.nftApply(tx({ add: { element: { ...inTable, name: set, elem: [{ concat: ['tcp', 7071] }] } } }));
      assert.match(await nftIn('list', 'set', 'inet', 'ledgernet', set), /tcp \. 7071/);
    });

    it('reports a namespace that is gone as a failure naming it', async () => {
      const gone = createKernel({ netns: `${netns}-absent`, filterPrefixes: [], ...(route.library === undefined ? {} : { nftLibrary: route.library }) });
      await assert.rejects(gone.nftApply(tx({ add: { table } })), /Cannot open network namespace "lnlib-.*-absent"/);
    });
  });
}
