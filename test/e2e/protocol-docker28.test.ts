// The Docker 28/29 remote-driver protocol over the real socket of a running daemon (temp socket
// and state dir, no dockerd: this machine's engine is 20.10, which never sends these calls). The
// request bodies are fixtures/docker-protocol/ (built from moby's wire structs; see its README).
// A user of Docker 28+ would see: GetCapabilities says GwAllocChecker, GwAllocCheck tells Docker
// to reserve no gateway for the `isolated` gateway mode and refuses what CreateNetwork would
// refuse, CreateNetwork after it (isolated: no Gateway) makes a bridge without an address, and
// ProgramExternalConnectivity / Revoke arriving again and again (v28's flag flip, v29's per-family
// gateway changes) leave exactly one DNAT rule for the published port while programmed, none
// after Revoke, and write no event for a repeat; with the IPv4 and IPv6 gateways on two
// endpoints of one container, the IPv4 side of the port stays with the IPv4 one and moves when it
// leaves (the IPv6 side, with real traffic: protocol-split-gateways.test.ts).
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readFixture } from '../helpers/fixtures.ts';
import { ledgernetCli, pluginCall, startDaemon, type DaemonHandle, type PluginReply } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/docker.ts';
import { rulesSave } from '../helpers/rules.ts';

const LINKS = ['lnb-28a0c0de28a', 'lnv-e28a0c0de28', 'lnp-e28a0c0de28', 'lnb-29b0c0de29b', 'lnv-e29b0c0de29', 'lnp-e29b0c0de29'];

let daemon: DaemonHandle;
let dir: string;

/** Sends fixtures/docker-protocol/<name>.json to `method`, byte for byte. */
function send(method: string, name: string): Promise<PluginReply> {
  return pluginCall(`NetworkDriver.${method}`, readFixture(`docker-protocol/${name}.json`), daemon.socket);
}

async function ok(method: string, name: string): Promise<unknown> {
  const r = await send(method, name);
  assert.equal(r.status, 200, `${method} ${name}: ${r.text}\n${daemon.logs().slice(-2000)}`);
  return r.json;
}

async function refused(method: string, name: string, why: RegExp): Promise<void> {
  const r = await send(method, name);
  assert.notEqual(r.status, 200, `${method} ${name} must be refused`);
  const err = (r.json as { Err?: unknown } | undefined)?.Err;
  assert.equal(typeof err, 'string', r.text);
  assert.match(err as string, why);
}

async function eventCount(): Promise<number> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', join(dir, 'state')]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/** The nat rules that forward host port 18080: one while programmed, none after Revoke. */
async function dnat18080(): Promise<string[]> {
  return (await rulesSave('iptables-save', ['-t', 'nat'])).split('\n').filter((l) => l.includes('--dport 18080') && l.includes('DNAT'));
}

/** Where host port 18080 leads: the container address of each DNAT rule for it. */
async function dnatTargets(): Promise<string[]> {
  return (await dnat18080()).map((l) => /--to-destination (\S+)/.exec(l)?.[1] ?? l);
}

async function linksLeft(): Promise<string[]> {
  const r = await execa('ip', ['-j', 'link', 'show'], { stdin: 'ignore' });
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => LINKS.includes(n));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-docker28-'));
  daemon = await startDaemon({ socket: join(dir, 'plugin.sock'), stateDir: join(dir, 'state'), extraArgs: ['--reconcile-interval', '0'] });
});

after(async () => {
  if (daemon) {
    for (const [m, f] of [
      ['Leave', 'leave'],
      ['DeleteEndpoint', 'deleteendpoint'],
      ['DeleteNetwork', 'deletenetwork'],
      ['Leave', 'leave.v29-dual'],
      ['DeleteEndpoint', 'deleteendpoint.v29-dual'],
      ['DeleteNetwork', 'deletenetwork.v29-dual'],
    ] as const) {
      await send(m, f).catch(() => undefined);
    }
    await waitFor(async () => (await linksLeft()).length === 0 && (await dnat18080()).length === 0, {
      timeoutMs: 15_000,
      what: 'the test network to be gone from the kernel',
    }).catch(async (e: unknown) => {
      for (const l of LINKS) await execa('ip', ['link', 'del', l], { reject: false });
      throw e;
    });
    await daemon.stop();
  }
  await rm(dir, { recursive: true, force: true });
});

describe('Docker 28+: GwAllocChecker and GwAllocCheck', () => {
  test('GetCapabilities answers GwAllocChecker: true, with local scope', async () => {
    const r = await pluginCall('NetworkDriver.GetCapabilities', undefined, daemon.socket);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { Scope: 'local', ConnectivityScope: 'local', GwAllocChecker: true });
  });

  test('GwAllocCheck: no gateway address only for the isolated gateway mode, per family', async () => {
    assert.deepEqual(await ok('GwAllocCheck', 'gwalloccheck.v28-default'), { SkipIPv4: false, SkipIPv6: false });
    assert.deepEqual(await ok('GwAllocCheck', 'gwalloccheck.v28-isolated-internal'), { SkipIPv4: true, SkipIPv6: true });
    assert.deepEqual(await ok('GwAllocCheck', 'gwalloccheck.v28-isolated6-internal'), { SkipIPv4: false, SkipIPv6: true });
    assert.deepEqual(await ok('GwAllocCheck', 'gwalloccheck.v28-routed'), { SkipIPv4: false, SkipIPv6: false });
  });

  test('GwAllocCheck refuses what the bridge driver refuses: isolated without --internal, a mode that does not exist', async () => {
    await refused('GwAllocCheck', 'gwalloccheck.v28-isolated-not-internal', /gateway_mode_ipv4=isolated can only be used for an internal network/);
    await refused('GwAllocCheck', 'gwalloccheck.v28-bad-mode', /gateway_mode_ipv4=nat6 is invalid: expected nat, nat-unprotected, routed or isolated/);
    assert.equal(await eventCount(), 0, 'GwAllocCheck writes nothing');
  });

  test('CreateNetwork after SkipIPv4 (isolated, no Gateway in IPv4Data): a bridge without an address, Join gives no gateway', async () => {
    await ok('CreateNetwork', 'createnetwork.v28-isolated-no-gateway');
    const addrs = async () => JSON.parse((await execa('ip', ['-j', 'addr', 'show', 'dev', 'lnb-28a0c0de28a'], { stdin: 'ignore' })).stdout) as { addr_info: { family: string }[] }[];
    await waitFor(async () => (await linksLeft()).includes('lnb-28a0c0de28a'), { timeoutMs: 10_000, what: 'the bridge' });
    assert.deepEqual((await addrs())[0]?.addr_info.filter((a) => a.family === 'inet'), [], 'no IPv4 address on the bridge');
    await ok('CreateEndpoint', 'createendpoint.v28');
    const join = (await ok('Join', 'join.v28')) as Record<string, unknown>;
    assert.equal(join['Gateway'] ?? '', '', 'an isolated (internal) network gives no gateway');
    await ok('Leave', 'leave');
    await ok('DeleteEndpoint', 'deleteendpoint');
    await ok('DeleteNetwork', 'deletenetwork');
    await waitFor(async () => (await linksLeft()).length === 0, { timeoutMs: 10_000, what: 'the bridge and veth to be removed' });
  });

  test('com.docker.network.endpoint.ifname (v28+, Compose interface_name): Join answers it as DstName for the engines that apply it (moby#52866)', async () => {
    await ok('CreateNetwork', 'createnetwork.v28');
    await ok('CreateEndpoint', 'createendpoint.v28-ifname');
    const join = (await ok('Join', 'join.v28')) as { InterfaceName?: Record<string, unknown> };
    assert.deepEqual(join.InterfaceName, { SrcName: 'lnp-e28a0c0de28', DstPrefix: 'eth', DstName: 'backend0' });
    const events = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
    const created = events.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { ifname?: string } }).findLast((e) => e.type === 'endpoint.created');
    assert.equal(created?.data.ifname, 'backend0', 'recorded with the endpoint, so a restarted daemon answers it too');
    await ok('Leave', 'leave');
    await ok('DeleteEndpoint', 'deleteendpoint');
    await ok('DeleteNetwork', 'deletenetwork');
    await waitFor(async () => (await linksLeft()).length === 0, { timeoutMs: 10_000, what: 'the bridge and veth to be removed' });
  });
});

describe('Docker 28/29: ProgramExternalConnectivity and Revoke, repeated and per gateway family', () => {
  test('every repeat is idempotent: one DNAT rule while programmed, none after Revoke, no event for a repeat', async () => {
    await ok('CreateNetwork', 'createnetwork.v28');
    await ok('CreateEndpoint', 'createendpoint.v28');
    await ok('Join', 'join.v28');
    await ok('ProgramExternalConnectivity', 'program.v28');
    assert.equal((await dnat18080()).length, 1, 'Program publishes tcp/18080 once');
    const programmed = await eventCount();

    // Docker 28 repeats: the same call again, then the no_proxy_6to4 flip (Revoke, Program).
    await ok('ProgramExternalConnectivity', 'program.v28');
    assert.equal(await eventCount(), programmed, 'a repeated Program writes no event');
    await ok('RevokeExternalConnectivity', 'revoke');
    await waitFor(async () => (await dnat18080()).length === 0, { timeoutMs: 10_000, what: 'Revoke to remove the DNAT rule' });
    await ok('RevokeExternalConnectivity', 'revoke');
    await ok('ProgramExternalConnectivity', 'program.v28-no-proxy-6to4');
    assert.equal((await dnat18080()).length, 1);

    // Docker 29: Program again on every gateway change (the flag only when true), Revoke twice.
    const before29 = await eventCount();
    for (const f of ['program.v29', 'program.v29-no-proxy-6to4', 'program.v29', 'program.v28']) {
      await ok('ProgramExternalConnectivity', f);
      assert.equal((await dnat18080()).length, 1, `${f}: still exactly one DNAT rule`);
    }
    assert.equal(await eventCount(), before29, 'repeats of the same ports write no event');
    await ok('RevokeExternalConnectivity', 'revoke');
    const revoked = await eventCount();
    await ok('RevokeExternalConnectivity', 'revoke');
    assert.equal(await eventCount(), revoked, 'a repeated Revoke writes no event');
    await waitFor(async () => (await dnat18080()).length === 0, { timeoutMs: 10_000, what: 'Revoke to remove the DNAT rule' });

    // Teardown as Docker does it, a Revoke arriving after the endpoint is gone included.
    await ok('Leave', 'leave');
    await ok('DeleteEndpoint', 'deleteendpoint');
    await ok('RevokeExternalConnectivity', 'revoke');
    await ok('DeleteNetwork', 'deletenetwork');
    await waitFor(async () => (await linksLeft()).length === 0, { timeoutMs: 10_000, what: 'the bridge and veth to be removed' });
  });

  test('v29, one container on two networks: IPv4 gateway on the first, IPv6 gateway on the second; the port stays with the IPv4 one', async () => {
    await ok('CreateNetwork', 'createnetwork.v28');
    await ok('CreateEndpoint', 'createendpoint.v28');
    await ok('Join', 'join.v28');
    await ok('ProgramExternalConnectivity', 'program.v29');
    assert.deepEqual(await dnatTargets(), ['10.231.244.2:80']);

    // A second network joins as the IPv6 gateway: Program with the same ports, no flag; the
    // first endpoint gets no call. It is not refused as a taken port, and the port stays.
    await ok('CreateNetwork', 'createnetwork.v29-dual');
    await ok('CreateEndpoint', 'createendpoint.v29-dual');
    await ok('Join', 'join.v29-dual');
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    assert.deepEqual(await dnatTargets(), ['10.231.244.2:80']);
    const settled = await eventCount();
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    await ok('ProgramExternalConnectivity', 'program.v29');
    assert.equal(await eventCount(), settled, 'repeats to either gateway write nothing');

    // The first endpoint leaves: Revoke, Leave, then the second is Programmed as both gateways.
    await ok('RevokeExternalConnectivity', 'revoke');
    await ok('Leave', 'leave');
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    await waitFor(async () => (await dnatTargets()).join() === '10.231.245.2:80', { timeoutMs: 10_000, what: 'the port to move to the second endpoint' });

    for (const [m, f] of [
      ['RevokeExternalConnectivity', 'revoke.v29-dual'],
      ['Leave', 'leave.v29-dual'],
      ['DeleteEndpoint', 'deleteendpoint.v29-dual'],
      ['DeleteEndpoint', 'deleteendpoint'],
      ['DeleteNetwork', 'deletenetwork.v29-dual'],
      ['DeleteNetwork', 'deletenetwork'],
    ] as const) {
      await ok(m, f);
    }
    await waitFor(async () => (await linksLeft()).length === 0 && (await dnat18080()).length === 0, { timeoutMs: 10_000, what: 'both networks to be removed' });
  });
});
