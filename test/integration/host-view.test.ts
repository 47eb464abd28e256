// What a Docker call reads of the host (main.ts's host view: a new subnet checked against the
// host's addresses and routes, a custom bridge name against its links): Kernel.observeInterfaces
// and observeRoutes. The daemon reads them through rtnetlink dumps in its own process (no `ip`
// process on Docker's path: at 200 networks two `ip -j` reads cost every CreateNetwork and
// RequestPool ~60 ms of spawns and JSON), and must see exactly what `ip -j` prints: every link,
// every address of every link (not only the bridges'), every route of the main table; an
// automatic pool's check (observePrefixes) reads addresses and routes without the links. Needs root.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { execa } from 'execa';
import { createKernel, parseAddrs, parseLinks, parseRoutes } from '../../src/kernel/index.ts';
import { throwawayNetns } from '../helpers/netns.ts';
import { tracing } from '../helpers/trace-runs.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

for (const reads of ['netlink', 'processes'] as const) {
  describe(`the host as a Docker call reads it (reads: ${reads})`, { skip }, () => {
    const netns = throwawayNetns('lnhost');
    const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);

    before(async () => {
      // Someone else's links and addresses, of every kind a subnet check must see: an uplink
      // with both families, a bridge of theirs with a veth pair, a portless bridge with a /32, and
      // routes through them (one of them a blackhole).
      await ip('link', 'set', 'lo', 'up');
      await ip('link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink1');
      await ip('link', 'set', 'uplink1', 'up');
      await ip('addr', 'add', '192.0.2.10/24', 'dev', 'uplink0');
      await ip('addr', 'add', '2001:db8:5::10/64', 'dev', 'uplink0', 'nodad');
      await ip('link', 'set', 'uplink0', 'up');
      await ip('link', 'add', 'br-lan', 'type', 'bridge');
      await ip('addr', 'add', '198.51.100.1/24', 'dev', 'br-lan');
      await ip('link', 'set', 'br-lan', 'up');
      await ip('link', 'add', 'vop0', 'type', 'veth', 'peer', 'name', 'vop1');
      await ip('link', 'set', 'vop1', 'master', 'br-lan');
      await ip('link', 'add', 'lone0', 'type', 'bridge');
      await ip('addr', 'add', '203.0.113.7/32', 'dev', 'lone0');
      await ip('link', 'set', 'lone0', 'up');
      await ip('route', 'add', '10.77.0.0/16', 'via', '192.0.2.1', 'dev', 'uplink0');
      await ip('route', 'add', 'default', 'via', '192.0.2.1');
      await ip('route', 'add', 'blackhole', '10.78.0.0/16');
      await ip('-6', 'route', 'add', '2001:db8:77::/48', 'via', '2001:db8:5::1', 'dev', 'uplink0');
    });

    it('links, every address and the main table as `ip -j` prints them', async () => {
      const kernel = createKernel({ netns, filterPrefixes: [], interfaceReads: reads });
      let host: Awaited<ReturnType<typeof kernel.observeInterfaces>> | undefined;
      let routes: Awaited<ReturnType<typeof kernel.observeRoutes>> | undefined;
      let prefixes: string[] = [];
      let addressPrefixes: string[] = [];
      const runs = await tracing(['ip'], async () => {
        host = await kernel.observeInterfaces();
        routes = await kernel.observeRoutes();
        prefixes = await kernel.observePrefixes();
        addressPrefixes = await kernel.observePrefixes(false);
      });
      const [links, addrs, r4, r6] = await Promise.all([ip('-j', '-d', 'link', 'show'), ip('-j', 'addr', 'show'), ip('-j', 'route', 'show', 'table', 'main'), ip('-j', '-6', 'route', 'show', 'table', 'main')]);
      assert.deepEqual(host?.links, parseLinks(links.stdout), 'links as ip -d prints them');
      const byDev = (a: { dev: string; cidr: string }, b: { dev: string; cidr: string }) => `${a.dev} ${a.cidr}`.localeCompare(`${b.dev} ${b.cidr}`);
      assert.deepEqual([...(host?.addrs ?? [])].sort(byDev), parseAddrs(addrs.stdout).sort(byDev), 'every address of every link');
      for (const [dev, cidr] of [['uplink0', '192.0.2.10/24'], ['uplink0', '2001:db8:5::10/64'], ['lone0', '203.0.113.7/32'], ['lo', '127.0.0.1/8']]) {
        assert.ok(host?.addrs.some((a) => a.dev === dev && a.cidr === cidr), `${cidr} of ${dev}`);
      }
      const byDst = (a: { dst: string; dev: string | null }, b: { dst: string; dev: string | null }) => `${a.dst} ${a.dev}`.localeCompare(`${b.dst} ${b.dev}`);
      assert.deepEqual([...(routes ?? [])].sort(byDst), [...parseRoutes(r4.stdout, 4), ...parseRoutes(r6.stdout, 6)].sort(byDst), 'the main table of both families');
      for (const dst of ['10.77.0.0/16', '0.0.0.0/0', '10.78.0.0/16', '2001:db8:77::/48']) assert.ok(routes?.some((r) => r.dst === dst), dst);
      // An automatic pool's check: every address and every route's destination, nothing else.
      const expected = [...parseAddrs(addrs.stdout).map((a) => a.cidr), ...parseRoutes(r4.stdout, 4).map((r) => r.dst), ...parseRoutes(r6.stdout, 6).map((r) => r.dst)];
      assert.deepEqual([...prefixes].sort(), expected.sort(), 'the prefixes an automatic pool must not overlap');
      // An explicit subnet's first check: every address, no route (a default route overlaps everything).
      assert.deepEqual([...addressPrefixes].sort(), parseAddrs(addrs.stdout).map((a) => a.cidr).sort(), 'the addresses alone');
      if (reads === 'netlink') assert.deepEqual(runs, [], 'no ip process');
      else assert.ok(runs.length >= 4, `ip read links, addresses and routes: ${runs.join('; ')}`);
    });

    it('one link by its name or an altname, whoever owns it, as `ip -j -d link show` prints it; null for none', async () => {
      const kernel = createKernel({ netns, filterPrefixes: [], interfaceReads: reads });
      await ip('link', 'set', 'br-lan', 'alias', 'ledgernet:network:0123456789ab');
      await ip('link', 'property', 'add', 'dev', 'lone0', 'altname', 'a-long-altname-of-lone0');
      await ip('link', 'property', 'add', 'dev', 'vop0', 'altname', 'vopalt');
      const pick = (l: { name: string; alias: string | null; group: string | null } | null | undefined) => (l ? { name: l.name, alias: l.alias, group: l.group } : null);
      const shown = async (dev: string) => pick(parseLinks((await ip('-j', '-d', 'link', 'show', 'dev', dev)).stdout)[0]);
      const got: Record<string, unknown> = {};
      const runs = await tracing(['ip'], async () => {
        for (const name of ['uplink0', 'br-lan', 'a-long-altname-of-lone0', 'vopalt', 'nosuch0', 'a-long-name-no-link-has']) got[name] = pick(await kernel.observeLinkNamed(name));
      });
      assert.deepEqual(got['uplink0'], await shown('uplink0'));
      assert.deepEqual(got['br-lan'], { name: 'br-lan', alias: 'ledgernet:network:0123456789ab', group: 'default' });
      assert.deepEqual(got['a-long-altname-of-lone0'], await shown('lone0'));
      assert.equal((got['vopalt'] as { name: string } | null)?.name, 'vop0', 'an altname of 15 bytes or fewer');
      assert.equal(got['nosuch0'], null);
      assert.equal(got['a-long-name-no-link-has'], null);
      if (reads === 'netlink') assert.deepEqual(runs, [], 'no ip process');
      await ip('link', 'set', 'br-lan', 'alias', '');
    });
  });
}

describe('the host read while its addresses change (reads: netlink)', { skip }, () => {
  // The kernel dumps a table in datagrams and goes on after the last item it sent: an address
  // added or removed before that point between two datagrams shifts the rest, and the dump misses
  // an item or sends one twice. It flags such a dump (NLM_F_DUMP_INTR); the read takes it again.
  // Here 1,500 addresses stay the whole time on a bridge (secondaries of 10.50.0.1/16) while
  // another program adds and removes a primary, which the kernel puts before them.
  const netns = throwawayNetns('lnintr');
  const stable = Array.from({ length: 1500 }, (_, i) => `10.50.${1 + Math.floor(i / 250)}.${1 + (i % 250)}/16`);

  before(async () => {
    await execa('ip', ['-n', netns, 'link', 'add', 'lnt-x', 'type', 'bridge']);
    await execa('ip', ['-n', netns, 'addr', 'add', '10.50.0.1/16', 'dev', 'lnt-x']);
    await execa('ip', ['-n', netns, '-batch', '-'], { input: stable.map((a) => `addr add ${a} dev lnt-x`).join('\n') });
  });

  it('every address exactly once in each of 200 reads', async () => {
    const kernel = createKernel({ netns, filterPrefixes: [], interfaceReads: 'netlink' });
    const churn = spawn('sh', ['-c', `while :; do printf 'addr add 10.60.0.1/32 dev lnt-x\\naddr del 10.60.0.1/32 dev lnt-x\\n' | ip -n ${netns} -batch - || exit 1; done`], { stdio: 'ignore', detached: true });
    const bad: string[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const { addrs } = await kernel.observeInterfaces();
        const seen = addrs.filter((a) => a.dev === 'lnt-x' && a.cidr.startsWith('10.50.') && a.cidr !== '10.50.0.1/16').map((a) => a.cidr);
        const once = new Set(seen);
        if (seen.length !== stable.length || once.size !== stable.length) bad.push(`read ${i}: ${seen.length} addresses, ${once.size} different`);
      }
    } finally {
      if (churn.pid !== undefined) process.kill(-churn.pid, 'SIGKILL');
    }
    assert.equal(churn.exitCode, null, 'the other program changed addresses all along');
    assert.deepEqual(bad, []);
  });
});
