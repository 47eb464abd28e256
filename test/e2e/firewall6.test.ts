// The IPv6 firewall with the real dockerd and real traffic: with the host forwarding IPv6 (set
// here, restored in `after`), containers of one `--ipv6` ledgernet network reach each other over
// IPv6, containers of two networks do not, and an `--internal` network is not reachable. Without
// ledgernet's ip6tables chain the same ping goes through (proved by deleting the hook by hand),
// so the blocks are the firewall's doing, not a missing route. Once per firewall backend
// (LEDGERNET_TEST_FIREWALLS=iptables runs one). Traffic only between containers made here
// (fd00:231:13x::/64).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, containerEndpoint, docker, ping, track, uniqueName } from '../helpers/docker.ts';
import { notOurs, rulesSave } from '../helpers/rules.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

const FORWARDING = ['all', 'default'].map((k) => `/proc/sys/net/ipv6/conf/${k}/forwarding`);
const HOOK = ['FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD'];
/** The hook of direct-access protection (mangle6), which also keeps other networks off a nat network's subnet. */
const DIRECT_HOOK = ['-t', 'mangle', 'PREROUTING', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-DIRECT'];
const ip6tablesHook = (op: string, hook: readonly string[]) => execa('ip6tables', hook[0] === '-t' ? [...hook.slice(0, 2), op, ...hook.slice(2)] : [op, ...hook], { reject: false });

let daemon: DaemonHandle;
/** The forwarding values found before the test, restored in `after`; null until read. */
let saved: string[] | null = null;

const ip6tablesSave = () => rulesSave('ip6tables-save', ['-t', 'filter']);
const FIREWALLS = (process.env['LEDGERNET_TEST_FIREWALLS'] ?? 'iptables,nftables').split(',');
const nft = (...args: string[]) => execa('nft', args, { stdin: 'ignore' });


let rulesBefore = '';

before(async () => {
  await assertNoLeaks();
  rulesBefore = await ip6tablesSave();
  saved = await Promise.all(FORWARDING.map(async (f) => (await readFile(f, 'utf8')).trim()));
  // Only `all` is written: it sets every interface (and `default`) to the same value.
  await writeFile(FORWARDING[0] ?? '', '1\n');
});

afterEach(async () => {
  await cleanupAll();
});

after(async () => {
  try {
    await cleanupAll();
    // Removing the last network removes the chains and hooks (while the daemon still runs).
    await waitNoLeaks();
  } finally {
    await stopAllDaemons();
    if (saved !== null) {
      // `all` first (it resets every interface and `default`), then `default` exactly as found.
      for (const [i, f] of FORWARDING.entries()) await writeFile(f, `${saved[i]}\n`);
    }
  }
  assert.equal(notOurs(await ip6tablesSave()), notOurs(rulesBefore), "Docker's and the operator's IPv6 rules are as they were");
});

async function createNetwork(n: number, ...extra: string[]): Promise<{ name: string; id: string }> {
  const name = track.network(uniqueName('lnfw6'));
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--ipv6', '--subnet', `10.231.${n}.0/24`, '--subnet', `fd00:231:${n}::/64`, ...extra, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', name], { check: true })).stdout.trim();
  return { name, id };
}

/** A container on `network` and its IPv6 address there. */
async function runClient(network: string): Promise<{ name: string; ip6: string }> {
  const name = track.container(uniqueName('cli6'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  const ip6 = (await containerEndpoint(name, network)).GlobalIPv6Address;
  assert.match(ip6, /^fd00:231:13\d::/);
  return { name, ip6 };
}

async function dryRun(): Promise<{ code: number; out: string }> {
  const r = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
  return { code: r.exitCode, out: r.stdout + r.stderr };
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

for (const fw of FIREWALLS) describe(`IPv6 firewall with the real dockerd and IPv6 forwarding on (--firewall ${fw})`, () => {
  before(async () => {
    // No background repair: drift stays until the test asks for `ledgernet reconcile`.
    daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '0', '--firewall', fw] });
  });
  after(async () => {
    await cleanupAll();
    await waitNoLeaks();
    await stopAllDaemons();
  });

  test('same network: reachable; two networks: not, unless the firewall is opened by hand; --internal: not; drift repaired', async () => {
    const a = await createNetwork(131);
    const b = await createNetwork(132);
    const i = await createNetwork(133, '--internal');
    const a1 = await runClient(a.name);
    const a2 = await runClient(a.name);
    const b1 = await runClient(b.name);
    const i1 = await runClient(i.name);

    const dr = await dryRun();
    assert.equal(dr.code, 0, `converged: ${dr.out}`);
    const save = await ip6tablesSave();
    assert.match(save, /^-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD$/m, 'hooked into ip6tables FORWARD');
    if (fw === 'iptables') {
      assert.match(save, new RegExp(`^-A LEDGERNET-FORWARD -i lnb-${i.id.slice(0, 11)} -m comment --comment "ledgernet:network:${i.id}:internal" -j DROP$`, 'm'));
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
      const drift = await dryRun();
      assert.notEqual(drift.code, 0);
      assert.match(drift.out, opened.expect);
      const fix = await ledgernetCli(['reconcile', '--state-dir', daemon.stateDir]);
      assert.equal(fix.exitCode, 0, fix.stdout + fix.stderr);
    } finally {
      await opened.close();
    }
    assert.equal((await dryRun()).code, 0, 'repaired by ledgernet reconcile');
    assert.equal(await ping(b1.name, a1.ip6, 1), false, 'repaired: blocked again');
    assert.ok(await ping(a1.name, a2.ip6), 'and the same network still reachable');
  });
});
