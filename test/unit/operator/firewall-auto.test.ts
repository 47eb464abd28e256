// `--firewall auto` against Docker's /info: Docker 28.1+ reports FirewallBackend (API 1.49 and
// later only: Docker leaves it out for an older client), and Docker 29 refuses clients older
// than API 1.44; an older engine's answer has no such field and is a plain "iptables", settled
// at once; only no answer at all (dockerd not started yet, or restoring its containers) leaves the
// choice unsure.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveFirewall } from '../../../src/operator/firewall-choice.ts';
import { DockerApi } from '../../../src/operator/docker-api.ts';
import { fakeDocker, type DockerVersions } from '../../helpers/fake-docker.ts';

let dir: string;
const servers: Server[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-fw-auto-'));
});
after(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  await rm(dir, { recursive: true, force: true });
});

const DOCKER_20_10: DockerVersions = { api: '1.41', min: '1.12' };
const DOCKER_28_5: DockerVersions = { api: '1.51', min: '1.24' };
const DOCKER_29: DockerVersions = { api: '1.52', min: '1.44' };
const older = (a: string, b: string) => Number(a.split('.')[1]) < Number(b.split('.')[1]);

/** A unix socket answering GET /info with `info` as a Docker speaking `versions` does (FirewallBackend only from API 1.49). */
async function dockerAnswering(name: string, info: { readonly ServerVersion: string; readonly Driver?: string; readonly FirewallBackend?: object }, versions: DockerVersions): Promise<string> {
  const path = join(dir, name);
  const s = createServer(
    fakeDocker(versions, (_req, res, url, version) => {
      const { FirewallBackend, ...rest } = info;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(url === '/info' ? (older(version, '1.49') ? rest : { ...rest, ...(FirewallBackend ? { FirewallBackend } : {}) }) : {}));
    }),
  );
  servers.push(s);
  await new Promise<void>((r) => s.listen(path, r));
  return path;
}

describe('--firewall auto', () => {
  it("--docker-socket '': Docker is not asked, and the reason says its API is off (not that it is before 29)", async () => {
    const r = await resolveFirewall('auto', null, dir, { atStart: true });
    assert.deepEqual([r.backend.name, r.unsure], ['iptables', false]);
    assert.equal(r.why, "auto: Docker's API is off (--docker-socket ''), so Docker was not asked: iptables");
  });

  it('Docker 20.10 (no FirewallBackend in /info): iptables at once, not unsure', async () => {
    const sock = await dockerAnswering('docker20.sock', { ServerVersion: '20.10.24', Driver: 'overlay2' }, DOCKER_20_10);
    const r = await resolveFirewall('auto', sock, dir);
    assert.equal(r.backend.name, 'iptables');
    assert.equal(r.unsure, false, r.why);
  });

  it('Docker 29 (refuses API 1.41) with nftables: nftables; with iptables: iptables', async () => {
    const nft = await resolveFirewall('auto', await dockerAnswering('nft.sock', { ServerVersion: '29.0.0', FirewallBackend: { Driver: 'nftables' } }, DOCKER_29), dir);
    assert.deepEqual([nft.backend.name, nft.unsure], ['nftables', false], nft.why);
    const ipt = await resolveFirewall('auto', await dockerAnswering('ipt.sock', { ServerVersion: '29.0.0', FirewallBackend: { Driver: 'iptables' } }, DOCKER_29), dir);
    assert.deepEqual([ipt.backend.name, ipt.unsure], ['iptables', false], ipt.why);
  });

  it('Docker 28.5 with nftables (reported to API 1.49 and later only): nftables', async () => {
    const r = await resolveFirewall('auto', await dockerAnswering('nft28.sock', { ServerVersion: '28.5.1', FirewallBackend: { Driver: 'nftables' } }, DOCKER_28_5), dir);
    assert.deepEqual([r.backend.name, r.unsure], ['nftables', false], r.why);
  });

  it('no Docker answering yet: unsure (asked again later)', async () => {
    const r = await resolveFirewall('auto', join(dir, 'nobody.sock'), dir);
    assert.equal(r.unsure, true, r.why);
  });

  it('a Docker that accepts but does not answer (restoring its containers, waiting for this driver): at serve\'s start with a backend recorded, the recorded one without waiting out the 3 s; unsure', async () => {
    const path = join(dir, 'restoring.sock');
    const held = new Set<Socket>();
    const s = createNetServer((c) => void held.add(c));
    await new Promise<void>((r) => s.listen(path, r));
    const state = await mkdtemp(join(dir, 'state-'));
    try {
      await writeFile(join(state, 'firewall'), 'nftables\n');
      const t0 = performance.now();
      const r = await resolveFirewall('auto', path, state, { atStart: true });
      const ms = performance.now() - t0;
      assert.deepEqual([r.backend.name, r.unsure], ['nftables', true], r.why);
      assert.ok(ms < 2_500, `waited ${Math.round(ms)} ms`);
      assert.match(r.why, /did not answer within 300 ms.*as recorded by the last serve/);
      assert.ok(held.size > 0, 'Docker was asked');
      // Nothing recorded (a first start): Docker's answer is waited for as long as before.
      const first = await resolveFirewall('auto', path, await mkdtemp(join(dir, 'state-')), { atStart: true });
      assert.deepEqual([first.backend.name, first.unsure], ['iptables', true], first.why);
      assert.match(first.why, /within 3000 ms.*the default/);
    } finally {
      for (const c of held) c.destroy();
      await new Promise((r) => s.close(r));
    }
  });

  it('this machine\'s dockerd (when it runs): settled at once', { skip: !existsSync('/var/run/docker.sock') }, async (t) => {
    const info = await new DockerApi('/var/run/docker.sock', 3000).info().catch(() => null);
    if (info === null) return t.skip('dockerd does not answer');
    const r = await resolveFirewall('auto', '/var/run/docker.sock', dir);
    assert.equal(r.unsure, false, r.why);
    assert.equal(r.backend.name, info.FirewallBackend?.Driver?.startsWith('nftables') ? 'nftables' : 'iptables');
  });
});
