// The full observe with the nf_tables notices (kernel/nf-changes.ts) after this process's own
// nftables transactions: when the notices say only our libnftables thread changed our table since
// the last read, the kernel answers with the table those transactions made (evolve.ts) instead of
// listing it; a commit by anyone else, a failed transaction, or notices it cannot place make it
// read again. Each answer is checked against `nft -j list table` in the namespace. Needs root.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel, type KernelSnapshot } from '../../src/kernel/index.ts';
import { watchNfTables } from '../../src/kernel/nf-changes.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import { parseNftTable } from '../../src/kernel/nftables/parse.ts';
import { NFT_FAMILY, NFT_TABLE } from '../../src/kernel/nftables/table.ts';
import type { NftTable } from '../../src/kernel/types.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { FIREWALL_COMMANDS } from '../helpers/firewall-states.ts';
import { throwawayNetns } from '../helpers/netns.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

/** The table with each set's elements in one order: a set has none (the plan compares them as sets), and nft lists a map's in its own. */
const inOrder = (t: NftTable | null | undefined) =>
  t && { ...t, sets: Object.fromEntries(Object.entries(t.sets).map(([k, v]) => [k, { ...v, elements: [...v.elements].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) }])) };

describe('our own nftables transactions, told by the notices', { skip }, () => {
  const netns = throwawayNetns('lnown');
  const nfChanges = watchNfTables(netns);
  after(() => nfChanges.close());
  let kernel: HostKernel;
  const inNs = (cmd: string, ...args: string[]) => execa('ip', ['netns', 'exec', netns, cmd, ...args]);

  /** The observe's table, checked equal to nft's listing of the namespace's table. */
  async function observed(): Promise<NftTable | null | undefined> {
    const snap: KernelSnapshot = await kernel.observe();
    const listed = await inNs('nft', '-j', 'list', 'table', NFT_FAMILY, NFT_TABLE).catch(() => null);
    assert.deepEqual(inOrder(snap.nftables), inOrder(listed === null ? null : parseNftTable(listed.stdout, NFT_FAMILY, NFT_TABLE)), 'our table as nft lists it');
    return snap.nftables;
  }
  const tx = (...cmds: object[]) => JSON.stringify({ nftables: cmds });
  const table = { family: NFT_FAMILY, name: NFT_TABLE };
  const inTable = { family: NFT_FAMILY, table: NFT_TABLE };
  const chain = (name: string) => ({ ...inTable, name, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' });
  const listed = async (): Promise<NftTable> => parseNftTable((await inNs('nft', '-j', 'list', 'table', NFT_FAMILY, NFT_TABLE)).stdout, NFT_FAMILY, NFT_TABLE);

  before(async () => {
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX], nfChanges });
    // iptables-nft tables, as on a Docker host: the observe asks the generation and the notices only then.
    await inNs('iptables', '-A', 'FORWARD', '-i', 'lnb-0c100000001', '-j', 'ACCEPT');
    await inNs('ip6tables', '-A', 'FORWARD', '-i', 'lnb-0c100000001', '-j', 'ACCEPT');
    for (let i = 0; i < 2; i++) await observed();
  });

  it('takes the table our transaction made, until someone else commits to it', async () => {
    // The table our transaction will make, as nft lists it (made once by hand, listed, deleted):
    // the model our transaction says it made, an object this test knows.
    await inNs('nft', 'add', 'table', NFT_FAMILY, NFT_TABLE);
    await inNs('nft', 'add', 'chain', NFT_FAMILY, NFT_TABLE, 'forward', '{ type filter hook forward priority 0 ; policy accept ; }');
    const made = await listed();
    await inNs('nft', 'delete', 'table', NFT_FAMILY, NFT_TABLE);
    assert.equal(await observed(), null, 'deleted by someone else: read');
    await kernel.nftApply(tx({ add: { table } }, { add: { chain: chain('forward') } }), () => made);
    assert.equal(await observed(), made, 'our transaction alone: the table it made, not read');
    assert.equal(await observed(), made, 'nothing since: the same');
    // Someone else's rule in our table: read, and seen.
    await inNs('nft', 'add', 'rule', NFT_FAMILY, NFT_TABLE, 'forward', 'accept');
    const read = await observed();
    assert.notEqual(read, made);
    assert.equal(read?.chains['forward']?.rules.length, 1, "the other's rule");
    // Ours again, then a failed one: read after the failure (its end is known, but the model is dropped).
    const flushed: NftTable = { ...(read as NftTable), chains: { forward: { ...(read as NftTable).chains['forward']!, rules: [] } } };
    await kernel.nftApply(tx({ flush: { chain: { ...inTable, name: 'forward' } } }), () => flushed);
    assert.equal(await observed(), flushed, 'our flush: the model');
    // A failed transaction commits nothing (no notice): the last answer stands. But the kernel
    // no longer trusts its model: our next transaction is read back (its model here a lie: null).
    await assert.rejects(kernel.nftApply(tx({ delete: { chain: { ...inTable, name: 'absent' } } }), () => null));
    assert.equal(await observed(), flushed, 'nothing committed: the same');
    await kernel.nftApply(tx({ add: { chain: chain('second') } }), () => null);
    const afterFailure = await observed();
    assert.deepEqual(Object.keys(afterFailure?.chains ?? {}).sort(), ['forward', 'second'], 'read after a failed transaction');
    await inNs('nft', 'delete', 'chain', NFT_FAMILY, NFT_TABLE, 'second');
    // Ours and someone else's between two observes: read (the model said null, a lie this test tells).
    await kernel.nftApply(tx({ add: { rule: { ...inTable, chain: 'forward', expr: [{ accept: null }] } } }), () => null);
    await inNs('nft', 'add', 'chain', NFT_FAMILY, NFT_TABLE, 'other');
    const both = await observed();
    assert.deepEqual([Object.keys(both?.chains ?? {}).sort(), both?.chains['forward']?.rules.length], [['forward', 'other'], 1]);
    await inNs('nft', 'delete', 'table', NFT_FAMILY, NFT_TABLE);
    assert.equal(await observed(), null);
  });

  it("converges every rule shape: the backend's model of its transaction is what nft lists", async () => {
    const desired = { bridges: [], veths: [], firewall: desiredFromState(given(...FIREWALL_COMMANDS)).firewall };
    const first = plan(desired, await kernel.observe(), nftablesFirewall);
    assert.ok(first.length > 0);
    assert.deepEqual((await applyActions(first, kernel, nftablesFirewall)).failures, []);
    const converged = await observed();
    assert.ok(Object.keys(converged?.chains ?? {}).length > 3, 'the whole table');
    assert.deepEqual(plan(desired, await kernel.observe(), nftablesFirewall), [], 'nothing left to do');
    const none = { bridges: [], veths: [], firewall: desiredFromState(given()).firewall };
    assert.deepEqual((await applyActions(plan(none, await kernel.observe(), nftablesFirewall), kernel, nftablesFirewall)).failures, []);
    assert.equal(await observed(), null, 'removed');
    await inNs('iptables', '-D', 'FORWARD', '-i', 'lnb-0c100000001', '-j', 'ACCEPT');
    await inNs('ip6tables', '-D', 'FORWARD', '-i', 'lnb-0c100000001', '-j', 'ACCEPT');
  });
});
