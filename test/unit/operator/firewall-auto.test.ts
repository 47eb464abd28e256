// `--firewall auto` against Docker's /info: Docker 29+ reports FirewallBackend; an older engine's
// answer has no such field and is a plain "iptables", settled at once; only no answer at all
// (dockerd not started yet) leaves the choice unsure, to be asked again.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveFirewall } from '../../../src/operator/firewall-choice.ts';
import { DockerApi } from '../../../src/operator/docker-api.ts';

let dir: string;
const servers: Server[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-fw-auto-'));
});
after(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** A unix socket answering GET /info with `info` (what a given Docker version sends). */
async function dockerAnswering(name: string, info: object): Promise<string> {
  const path = join(dir, name);
  const s = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url?.endsWith('/info') ? info : {}));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(path, r));
  return path;
}

describe('--firewall auto', () => {
  it('Docker 20.10 to 28 (no FirewallBackend in /info): iptables at once, not unsure', async () => {
    const sock = await dockerAnswering('docker28.sock', { ServerVersion: '28.5.1', Driver: 'overlay2' });
    const r = await resolveFirewall('auto', sock, dir);
    assert.equal(r.backend.name, 'iptables');
    assert.equal(r.unsure, false, r.why);
  });

  it('Docker 29 with nftables: nftables; with iptables: iptables', async () => {
    const nft = await resolveFirewall('auto', await dockerAnswering('nft.sock', { ServerVersion: '29.0.0', FirewallBackend: { Driver: 'nftables' } }), dir);
    assert.deepEqual([nft.backend.name, nft.unsure], ['nftables', false]);
    const ipt = await resolveFirewall('auto', await dockerAnswering('ipt.sock', { ServerVersion: '29.0.0', FirewallBackend: { Driver: 'iptables' } }), dir);
    assert.deepEqual([ipt.backend.name, ipt.unsure], ['iptables', false]);
  });

  it('no Docker answering yet: unsure (asked again later)', async () => {
    const r = await resolveFirewall('auto', join(dir, 'nobody.sock'), dir);
    assert.equal(r.unsure, true, r.why);
  });

  it('this machine\'s dockerd (when it runs): settled at once', { skip: !existsSync('/var/run/docker.sock') }, async (t) => {
    const info = await new DockerApi('/var/run/docker.sock', 3000).info().catch(() => null);
    if (info === null) return t.skip('dockerd does not answer');
    const r = await resolveFirewall('auto', '/var/run/docker.sock', dir);
    assert.equal(r.unsure, false, r.why);
    assert.equal(r.backend.name, info.FirewallBackend?.Driver?.startsWith('nftables') ? 'nftables' : 'iptables');
  });
});
