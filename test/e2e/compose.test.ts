// docker-compose (Debian's 1.29 package) with ledgernet, against the real dockerd: a compose file
// with two ledgernet networks, one `internal: true` with `driver_opts` spelled as the bridge
// driver's options, one with `ipam: {driver: ledgernet, config: [{subnet, ip_range, gateway}]}`;
// services on both, a published port, a static `ipv4_address`. What a compose user checks:
// traffic and names between services (Docker's embedded DNS), the published port from the host,
// the internal network staying internal, then `down` leaving no ledgernet link, rule, pool or
// network behind.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TEST_IMAGE, cleanupAll, docker, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

const HOST_PORT = 18_081;
const COMPOSE = `version: "2.4"
services:
  web:
    image: ${TEST_IMAGE}
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    ports: ["${HOST_PORT}:8080"]
    networks:
      front:
        ipv4_address: 10.231.49.10
      back: {}
  db:
    image: ${TEST_IMAGE}
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    networks: [back]
  client:
    image: ${TEST_IMAGE}
    command: ["sleep", "600"]
    networks: [front]
networks:
  back:
    driver: ledgernet
    internal: true
    driver_opts:
      com.docker.network.driver.mtu: "1400"
      com.docker.network.bridge.enable_icc: "true"
    ipam:
      config: [{subnet: 10.231.50.0/24}]
  front:
    driver: ledgernet
    ipam:
      driver: ledgernet
      config:
        - subnet: 10.231.49.0/24
          ip_range: 10.231.49.128/25
          gateway: 10.231.49.1
`;

let daemon: DaemonHandle;
let dir: string;
const project = `lncompose${process.pid}`;

function compose(...args: string[]) {
  return execa('docker-compose', ['-p', project, '-f', join(dir, 'docker-compose.yml'), ...args], {
    reject: false,
    stdin: 'ignore',
    timeout: 180_000,
    // Compose 1.29 talks to the engine's API itself; keep it off any DOCKER_HOST of the caller.
    env: { COMPOSE_INTERACTIVE_NO_CLI: '1' },
  });
}

const container = (service: string) => `${project}_${service}_1`;
const logs = () => `\n--- daemon logs ---\n${daemon.logs().slice(-2000)}`;

/** `wget` of the test page from inside a service's container: the page text, or '' on failure. */
async function fetchFrom(service: string, url: string): Promise<string> {
  const r = await docker(['exec', container(service), 'timeout', '5', 'wget', '-q', '-O', '-', url], { timeoutMs: 20_000 });
  return r.exitCode === 0 ? r.stdout.trim() : '';
}

function hostGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/index.html', timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function ipOn(service: string, network: string): Promise<string> {
  const r = await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${project}_${network}").IPAddress}}`, container(service)], { check: true });
  return r.stdout.trim();
}

before(async () => {
  await assertNoLeaks();
  dir = await mkdtemp(join(tmpdir(), 'ln-compose-'));
  await writeFile(join(dir, 'docker-compose.yml'), COMPOSE);
  daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1'] });
});

after(async () => {
  // Also when a test failed half-way: compose's own teardown, then anything still tracked.
  if (dir) await compose('down', '--remove-orphans', '--timeout', '0');
  await cleanupAll();
  await stopAllDaemons();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('docker-compose with ledgernet networks', () => {
  test('up: traffic and names between services, the published port, the static address, the internal network; down leaves nothing', async () => {
    const up = await compose('up', '-d');
    assert.equal(up.exitCode, 0, `docker-compose up failed: ${up.stderr}${logs()}`);

    // The static ipv4_address, and a dynamic one from the ip_range.
    assert.equal(await ipOn('web', 'front'), '10.231.49.10');
    assert.match(await ipOn('client', 'front'), /^10\.231\.49\.(1(2[89]|[3-9]\d)|2\d\d)$/, 'client gets its address from ip_range');
    const frontGw = await docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', `${project}_front`], { check: true });
    assert.equal(frontGw.stdout.trim(), '10.231.49.1');

    // Traffic by service name (embedded DNS) on each network.
    const page = 'ledgernet test page';
    assert.equal(await waitFor(async () => (await fetchFrom('client', 'http://web:8080/index.html')) || null, { what: 'client to fetch from web' }), page);
    assert.equal(await waitFor(async () => (await fetchFrom('web', 'http://db:8080/index.html')) || null, { what: 'web to fetch from db over the internal network' }), page);
    // The published port, from the host.
    assert.equal(await waitFor(() => hostGet(HOST_PORT), { what: `the published port ${HOST_PORT}` }), page);

    // db is only on the internal network: client does not resolve it, db reaches nothing outside it.
    assert.equal(await fetchFrom('client', 'http://db:8080/index.html'), '', 'db is not reachable (nor resolvable) from the front network');
    assert.notEqual((await docker(['exec', container('db'), 'ping', '-c', '1', '-W', '1', '10.231.49.1'])).exitCode, 0, 'db has no way out of the internal network');
    // The driver_opts with bridge option names were applied: the internal network's bridge MTU.
    const backId = (await docker(['network', 'inspect', '-f', '{{.Id}}', `${project}_back`], { check: true })).stdout.trim();
    const link = await execa('ip', ['-j', 'link', 'show', 'dev', `lnb-${backId.slice(0, 11)}`]);
    assert.equal((JSON.parse(link.stdout) as { mtu: number }[])[0]?.mtu, 1400);

    const down = await compose('down', '--timeout', '0');
    assert.equal(down.exitCode, 0, `docker-compose down failed: ${down.stderr}`);
    await waitNoLeaks();
    const status = await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir]);
    assert.deepEqual((JSON.parse(status.stdout) as { pools: unknown[]; networks: unknown[] }).pools, [], 'the ledgernet IPAM pool was released');
    await assert.rejects(hostGet(HOST_PORT), 'the published port is closed');
  });
});
