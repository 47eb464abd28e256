// Issue 9, finding 3, with the real dockerd: a network with a custom bridge name whose bridge is
// replaced by someone else's link while ledgernet is down (the operator's br-lan made at boot, a
// WireGuard wg0). ledgernet leaves that link alone (same ifindex, no alias, master, address or
// rule), shows the conflict in `status` and `reconcile --dry-run`, refuses new containers on the
// network with an Err naming it, converges once the link is gone, and `docker network rm` of a
// network in conflict never deletes the link.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { waitNoLeaks } from '../helpers/leaks.ts';

const BRIDGE = `lnfor${process.pid % 100000}`;
const ARGS = ['--reconcile-interval', '1'];

interface IpLink {
  ifindex: number;
  group: string;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

async function link(name: string): Promise<IpLink | undefined> {
  const r = await execa('ip', ['-j', '-d', 'link', 'show', 'dev', name], { reject: false });
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] : undefined;
}

async function addrs(name: string): Promise<string[]> {
  const r = await execa('ip', ['-j', 'addr', 'show', 'dev', name]);
  return (JSON.parse(r.stdout) as { addr_info: { local?: string; scope?: string }[] }[])
    .flatMap((l) => l.addr_info)
    .filter((a) => a.scope === 'global')
    .map((a) => a.local ?? '');
}

async function rulesNaming(name: string): Promise<string[]> {
  const out: string[] = [];
  for (const cmd of ['iptables-save', 'ip6tables-save']) {
    const r = await execa(cmd, [], { reject: false });
    out.push(...r.stdout.split('\n').filter((l) => l.includes(` ${name} `)));
  }
  return out;
}

/** The operator's link, as they made it: nothing of ledgernet's on it or enslaved to it. */
async function assertUntouched(ifindex: number, alias?: string): Promise<void> {
  const l = await link(BRIDGE);
  assert.equal(l?.ifindex, ifindex, `${BRIDGE} was neither deleted nor recreated`);
  assert.equal(l?.ifalias, alias, 'its alias is not rewritten');
  assert.equal(l?.group, 'default');
  assert.equal(l?.master, undefined);
  assert.deepEqual(await addrs(BRIDGE), [], 'no gateway address on it');
  assert.deepEqual(await rulesNaming(BRIDGE), [], 'no firewall rule for it');
  const enslaved = await execa('ip', ['-o', 'link', 'show', 'master', BRIDGE]);
  assert.equal(enslaved.stdout.trim(), '', 'no veth enslaved to it');
}

let stateDir = '';
let daemon: DaemonHandle | null = null;

/** ledgernet is down (a reboot, an upgrade) while our bridge is replaced by the operator's link. */
async function swapWhileDown(make: string[], alias?: string): Promise<number> {
  await daemon?.stop();
  await execa('ip', ['link', 'del', 'dev', BRIDGE]);
  await execa('ip', ['link', 'add', 'name', BRIDGE, ...make]);
  if (alias) await execa('ip', ['link', 'set', 'dev', BRIDGE, 'alias', alias]);
  const started = await startDaemon({ stateDir, extraArgs: ARGS });
  daemon = started;
  // The start-up pass has run (it removes the rules written for our bridge before the swap).
  await waitFor(async () => started.logs().includes('ledgernet is serving'), { what: 'the start-up pass', timeoutMs: 15_000 });
  const l = await link(BRIDGE);
  assert.ok(l);
  return l.ifindex;
}

afterEach(async () => {
  await cleanupAll();
  await stopAllDaemons();
  await execa('ip', ['link', 'del', 'dev', BRIDGE], { reject: false });
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});
after(async () => {
  await cleanupAll();
  await stopAllDaemons();
  await execa('ip', ['link', 'del', 'dev', BRIDGE], { reject: false });
});

describe("someone else's route to a network's subnet", () => {
  test('is left alone and shown as a conflict; Docker calls go on; once it is removed the bridge has its own again', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'ln-foreign-'));
    daemon = await startDaemon({ stateDir, extraArgs: ARGS });
    const net = track.network(uniqueName('lnfor'));
    const created = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.123.0/24', net]);
    assert.equal(created.exitCode, 0, created.stderr);
    const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', net])).stdout.trim();
    const short = id.slice(0, 12);
    const bridge = (JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', stateDir])).stdout) as { networks: { networkId: string; bridge: string }[] }).networks.find((n) => n.networkId === id)?.bridge ?? '';
    assert.ok(bridge);
    const via = (dev: string) => execa('ip', ['-o', 'route', 'show', '10.231.123.0/24', 'dev', dev]).then((r) => r.stdout.trim());
    // The operator's device (BRIDGE: cleaned up after each test), and the subnet's route moved onto it.
    await execa('ip', ['link', 'add', 'name', BRIDGE, 'type', 'bridge']);
    await execa('ip', ['link', 'set', 'dev', BRIDGE, 'up']);
    await execa('ip', ['route', 'replace', '10.231.123.0/24', 'dev', BRIDGE]);
    assert.equal(await via(bridge), '', 'replace took it from the bridge');

    const status = await ledgernetCli(['status', '--state-dir', stateDir]);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^${short}\\s+(?:${net}|-)\\s+${bridge}\\s+10\\.231\\.123\\.0/24\\s+conflict$`, 'm'));
    assert.match(status.stdout, new RegExp(`^conflict: the route to 10\\.231\\.123\\.0/24 goes through ${BRIDGE}, not ${bridge}: someone else's, left alone; .*\\(ip route del 10\\.231\\.123\\.0/24 dev ${BRIDGE}\\)`, 'm'));
    const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', stateDir]);
    assert.equal(dry.exitCode, 2, 'a conflict is not converged');
    assert.match(dry.stdout, new RegExp(`^network ${short}(?: \\(${net}\\))?\\n  ! route\\.conflict 10\\.231\\.123\\.0/24 dev ${bridge} \\(conflict: `, 'm'));

    // Not a failure: containers still start on the network, and passes leave the route where it is.
    const c1 = track.container(uniqueName('c'));
    const run = await docker(['run', '-d', '--name', c1, '--network', net, TEST_IMAGE, 'sleep', '300']);
    assert.equal(run.exitCode, 0, run.stderr);
    const reconcile = await ledgernetCli(['reconcile', '--state-dir', stateDir]);
    assert.equal(reconcile.exitCode, 0, reconcile.stdout + reconcile.stderr);
    assert.match(reconcile.stdout, new RegExp(`^left {4}route\\.conflict 10\\.231\\.123\\.0/24 dev ${bridge} `, 'm'));
    assert.doesNotMatch(reconcile.stdout, /already converged/);
    await new Promise((r) => setTimeout(r, 2500));
    assert.match(await via(BRIDGE), /^10\.231\.123\.0\/24/, 'left alone');
    assert.equal(await via(bridge), '');
    assert.equal((daemon?.logs() ?? '').split('\n').filter((l) => l.includes('conflict: the route to 10.231.123.0/24')).length, 1, 'warned once, not on every pass');

    // The operator removes it: the next pass puts the bridge's own back.
    await execa('ip', ['route', 'del', '10.231.123.0/24', 'dev', BRIDGE]);
    await waitFor(async () => (await via(bridge)).includes('proto kernel'), { what: `the subnet route back on ${bridge}`, timeoutMs: 10_000 });
    const clean = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', stateDir]);
    assert.equal(clean.exitCode, 0, clean.stdout);
    assert.match((await ledgernetCli(['status', '--state-dir', stateDir])).stdout, new RegExp(`${bridge}\\s+10\\.231\\.123\\.0/24\\s+converged`));
    assert.match(daemon?.logs() ?? '', /conflict resolved: the route to 10\.231\.123\.0\/24 no longer goes around/);

    assert.equal((await docker(['rm', '-f', c1])).exitCode, 0);
    assert.equal((await docker(['network', 'rm', net])).exitCode, 0);
    await waitNoLeaks();
  });
});

describe('a foreign link under a custom bridge name', () => {
  test('is left alone and shown as a conflict; once it is gone the network converges again', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'ln-foreign-'));
    daemon = await startDaemon({ stateDir, extraArgs: ARGS });
    const net = track.network(uniqueName('lnfor'));
    const created = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.121.0/24', '-o', `ledgernet.bridge=${BRIDGE}`, net]);
    assert.equal(created.exitCode, 0, created.stderr);
    const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', net])).stdout.trim();
    const short = id.slice(0, 12);
    const c1 = track.container(uniqueName('c'));
    assert.equal((await docker(['run', '-d', '--name', c1, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);

    // The operator's bridge, without any alias, takes the name while ledgernet is down.
    const ifindex = await swapWhileDown(['type', 'bridge']);
    await assertUntouched(ifindex);

    const status = await ledgernetCli(['status', '--state-dir', stateDir]);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^${short}\\s+(?:${net}|-)\\s+${BRIDGE}\\s+10\\.231\\.121\\.0/24\\s+conflict$`, 'm'));
    assert.match(status.stdout, new RegExp(`^conflict: bridge link ${BRIDGE} \\(ifindex ${ifindex}, no ifalias\\) is not ledgernet's and is left alone;.*docker network rm ${short}\\)$`, 'm'));
    const json = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', stateDir])).stdout) as {
      networks: { networkId: string; state: string; conflict: string | null }[];
      endpoints: { networkId: string; state: string }[];
    };
    assert.equal(json.networks.find((n) => n.networkId === id)?.state, 'conflict');
    assert.match(json.networks.find((n) => n.networkId === id)?.conflict ?? '', new RegExp(`link ${BRIDGE} \\(ifindex ${ifindex}`));
    assert.deepEqual(json.endpoints.filter((e) => e.networkId === id).map((e) => e.state), ['conflict']);

    const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', stateDir]);
    assert.equal(dry.exitCode, 2, 'a conflict is not converged');
    assert.match(dry.stdout, new RegExp(`^network ${short}(?: \\(${net}\\))?\\n  ! link\\.conflict ${BRIDGE} \\(conflict: bridge link ${BRIDGE} .*\\(docker network rm ${short}\\)\\)$`, 'm'));
    const plan = JSON.parse((await ledgernetCli(['reconcile', '--dry-run', '--json', '--state-dir', stateDir])).stdout) as {
      summary: { conflict: number };
      actions: { op: string; kind: string; name?: string; found?: { index: number } }[];
    };
    assert.ok(plan.summary.conflict >= 1);
    assert.ok(plan.actions.some((a) => a.op === '!' && a.kind === 'link.conflict' && a.name === BRIDGE && a.found?.index === ifindex));
    assert.ok(!plan.actions.some((a) => a.op !== '!' && JSON.stringify(a).includes(`"${BRIDGE}"`)), 'nothing else planned for that link');

    // A new container on the network gets an Err naming the conflict.
    const c2 = track.container(uniqueName('c'));
    const refused = await docker(['run', '-d', '--name', c2, '--network', net, TEST_IMAGE, 'sleep', '300']);
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, new RegExp(`link\\.conflict ${BRIDGE}.*is not ledgernet's`));
    await docker(['rm', '-f', c2]);

    // Background passes (every second) and the log line.
    await new Promise((r) => setTimeout(r, 2500));
    await assertUntouched(ifindex);
    assert.match(daemon?.logs() ?? '', new RegExp(`conflict: bridge link ${BRIDGE} \\(ifindex ${ifindex}`));

    // The operator deletes their link: the kernel notice (or the next pass) converges the network.
    await execa('ip', ['link', 'del', 'dev', BRIDGE]);
    await waitFor(async () => (await link(BRIDGE))?.ifalias === `ledgernet:network:${id}`, { what: `${BRIDGE} recreated as ours`, timeoutMs: 10_000 });
    assert.deepEqual(await addrs(BRIDGE), ['10.231.121.1']);
    const c3 = track.container(uniqueName('c'));
    assert.equal((await docker(['run', '-d', '--name', c3, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
    assert.ok(await ping(c3, await containerIp(c1, net)), 'the container from before the conflict is reachable again');
    const clean = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', stateDir]);
    assert.equal(clean.exitCode, 0, clean.stdout);
    assert.match((await ledgernetCli(['status', '--state-dir', stateDir])).stdout, new RegExp(`${BRIDGE}\\s+10\\.231\\.121\\.0/24\\s+converged`));

    assert.equal((await docker(['rm', '-f', c1, c3])).exitCode, 0);
    assert.equal((await docker(['network', 'rm', net])).exitCode, 0);
    await waitNoLeaks();
  });

  test('docker network rm of a network in conflict never deletes the foreign link', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'ln-foreign-'));
    daemon = await startDaemon({ stateDir, extraArgs: ARGS });
    const net = track.network(uniqueName('lnfor'));
    const created = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.122.0/24', '-o', `com.docker.network.bridge.name=${BRIDGE}`, net]);
    assert.equal(created.exitCode, 0, created.stderr);
    const c1 = track.container(uniqueName('c'));
    assert.equal((await docker(['run', '-d', '--name', c1, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);

    // A veth pair with someone else's alias stands in for a WireGuard wg0 (no dummy/wireguard module here).
    const ifindex = await swapWhileDown(['type', 'veth', 'peer', 'name', `${BRIDGE}p`], 'operator tunnel');
    await assertUntouched(ifindex, 'operator tunnel');

    assert.equal((await docker(['rm', '-f', c1])).exitCode, 0);
    const rmNet = await docker(['network', 'rm', net]);
    assert.equal(rmNet.exitCode, 0, rmNet.stderr);
    await waitNoLeaks();
    await new Promise((r) => setTimeout(r, 1500));
    await assertUntouched(ifindex, 'operator tunnel');
    await execa('ip', ['link', 'del', 'dev', BRIDGE]);
  });
});
