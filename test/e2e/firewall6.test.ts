// The IPv6 firewall with the real dockerd and real traffic: with the host forwarding IPv6 (set
// here, restored in `after`), containers of one `--ipv6` ledgernet network reach each other over
// IPv6, containers of two networks do not, and an `--internal` network is not reachable. Without
// ledgernet's ip6tables chain the same ping goes through (proved by deleting the hook by hand),
// so the blocks are the firewall's doing, not a missing route. Once per firewall backend
// (LEDGERNET_TEST_FIREWALLS=iptables runs one). Traffic only between containers made here
// (fd00:231:13x::/64).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, containerEndpoint, docker, ping, track, uniqueName } from '../helpers/docker.ts';
import { rulesSave } from '../helpers/rules.ts';
import { describeEachBackend } from '../helpers/backend-suite.ts';

const HOOK = ['FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD'];
/** The hook of direct-access protection (mangle6), which also keeps other networks off a nat network's subnet. */
const DIRECT_HOOK = ['-t', 'mangle', 'PREROUTING', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-DIRECT'];
const ip6tablesHook = (op: string, hook: readonly string[]) => execa('ip6tables', hook[0] === '-t' ? [...hook.slice(0, 2), op, ...hook.slice(2)] : [op, ...hook], { reject: false });

const ip6tablesSave = () => rulesSave('ip6tables-save', ['-t', 'filter']);
const nft = (...args: string[]) => execa('nft', args, { stdin: 'ignore' });

async function createNetwork(n: number, ...extra: string[]): Promise<{ name: string; id: string }> {
  return suite.createNetwork('lnfw6', ['--ipv6', '--subnet', `10.231.${n}.0/24`, '--subnet', `fd00:231:${n}::/64`, ...extra]);
}

/** A container on `network` and its IPv6 address there. */
async function runClient(network: string): Promise<{ name: string; ip6: string }> {
  const name = track.container(uniqueName('cli6'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${suite.daemon.logs().slice(-2000)}`);
  const ip6 = (await containerEndpoint(name, network)).GlobalIPv6Address;
  assert.match(ip6, /^fd00:231:13\d::/);
  return { name, ip6 };
}

/**
 * Opens the firewall between ledgernet networks by hand (the hooks into ledgernet's IPv6 chains,
 * or the verdict-map rules of the nftables forward chain and the protection of `to`'s subnet);
 * returns the dry-run line expected and the step that closes it again if the repair did not
 * (never leave the host open).
 */
async function openByHand(fw: string, to: { id: string; subnet6: string }): Promise<{ expect: RegExp; close: () => Promise<void> }> {
  if (fw === 'iptables') {
    await execa('ip6tables', ['-D', ...HOOK]);
    await ip6tablesHook('-D', DIRECT_HOOK);
    return {
      expect: /hook\.add filter6\/FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD \(missing\)/,
      close: async () => {
        for (const [hook, chain] of [[HOOK, 'LEDGERNET-FORWARD'], [DIRECT_HOOK, 'LEDGERNET-DIRECT']] as const) {
          const table = hook[0] === '-t' ? hook.slice(0, 2) : [];
          const exists = (await execa('ip6tables', [...table, '-L', chain, '-n'], { reject: false })).exitCode === 0;
          if ((await ip6tablesHook('-C', hook)).exitCode !== 0 && exists) await ip6tablesHook('-I', hook);
        }
      },
    };
  }
  await nft('flush', 'chain', 'inet', 'ledgernet', 'forward');
  await nft('delete', 'element', 'inet', 'ledgernet', 'direct6', `{ ${to.subnet6} }`);
  return {
    expect: /~ nft\.chain\.write inet ledgernet\/forward \(drifted: 2 rules expected, 0 found/,
    close: async () => {
      if (!(await nft('list', 'chain', 'inet', 'ledgernet', 'forward')).stdout.includes('vmap')) {
        await nft('add', 'rule', 'inet', 'ledgernet', 'forward', 'iifname', 'vmap', '@from');
        await nft('add', 'rule', 'inet', 'ledgernet', 'forward', 'oifname', 'vmap', '@to');
      }
      if (!(await nft('list', 'map', 'inet', 'ledgernet', 'direct6')).stdout.includes(to.subnet6)) {
        await nft('add', 'element', 'inet', 'ledgernet', 'direct6', `{ ${to.subnet6} : jump net-${to.id}-direct }`);
      }
    },
  };
}

const suite = describeEachBackend({
  title: (fw) => `IPv6 firewall with the real dockerd and IPv6 forwarding on (--firewall ${fw})`,
  ipv6Forwarding: true,
  keepRules: [{ cmd: 'ip6tables-save', args: ['-t', 'filter'], what: "Docker's and the operator's IPv6 rules are as they were" }],
  noLeaksAfter: { backend: true, file: true },
}, (fw) => {
  test('same network: reachable; two networks: not, unless the firewall is opened by hand; --internal: not; drift repaired', async () => {
    const a = await createNetwork(131);
    const b = await createNetwork(132);
    const i = await createNetwork(133, '--internal');
    const a1 = await runClient(a.name);
    const a2 = await runClient(a.name);
    const b1 = await runClient(b.name);
    const i1 = await runClient(i.name);

    const dr = await suite.dryRun();
    assert.equal(dr.code, 0, `converged: ${dr.out}`);
    const save = await ip6tablesSave();
    assert.match(save, /^-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD$/m, 'hooked into ip6tables FORWARD');
    if (fw === 'iptables') {
      assert.match(save, new RegExp(`^-A LEDGERNET-LAN-${i.id.slice(0, 12)} -i lnb-${i.id.slice(0, 11)} -m comment --comment "ledgernet:network:${i.id}:internal" -j DROP$`, 'm'));
    } else {
      // --internal: the network's own chain drops what its containers send elsewhere, for both families.
      const chain = (await nft('list', 'chain', 'inet', 'ledgernet', `net-${i.id}-from`)).stdout;
      assert.match(chain, new RegExp(`oifname "lnb-${i.id.slice(0, 11)}" accept\\n\\s+drop\\n`));
    }

    assert.ok(await ping(a1.name, a2.ip6), 'same network over IPv6: reachable');
    assert.ok(await ping(a1.name, 'fd00:231:131::1'), 'the IPv6 gateway is reachable');
    assert.equal(await ping(a1.name, b1.ip6, 1), false, 'ledgernet → other ledgernet network over IPv6: blocked');
    assert.equal(await ping(b1.name, a1.ip6, 1), false, 'and back: blocked');
    assert.equal(await ping(a1.name, i1.ip6, 1), false, 'into the --internal network: blocked');
    assert.equal(await ping(i1.name, a1.ip6, 1), false, 'out of the --internal network: blocked');

    // Without ledgernet's IPv6 policy the host routes between the two networks: the blocks above
    // are the firewall's, not a missing route.
    const opened = await openByHand(fw, { id: a.id, subnet6: 'fd00:231:131::/64' });
    try {
      assert.ok(await ping(b1.name, a1.ip6), 'firewall opened by hand: the other network is reachable over IPv6');
      const drift = await suite.dryRun();
      assert.notEqual(drift.code, 0);
      assert.match(drift.out, opened.expect);
      await suite.reconcile();
    } finally {
      await opened.close();
    }
    assert.equal((await suite.dryRun()).code, 0, 'repaired by ledgernet reconcile');
    assert.equal(await ping(b1.name, a1.ip6, 1), false, 'repaired: blocked again');
    assert.ok(await ping(a1.name, a2.ip6), 'and the same network still reachable');
  });
});
