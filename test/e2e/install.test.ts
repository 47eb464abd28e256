// The install paths end to end with the real dockerd:
//   1. systemd: `ledgernet install --root <tmp>` writes a unit that systemd-analyze accepts; the
//      unit's own ExecStart line (run as systemd would: its Environment, a bare PATH) serves a
//      network where two containers ping; SIGTERM stops it cleanly; uninstall removes it all.
//   2. managed plugin: `npm run plugin:build`, `docker plugin create` + `enable`, a network on
//      `<name>:latest` where two containers ping; Docker's API reached through the docker-api
//      mount; dockerd restarted under it (restart-policy containers come back); dockerd with
//      live-restore restarted while the plugin and the containers run on (the plugin reaches the
//      new dockerd); then everything removed.
// One driver at a time on this host: a running ledgernet removes lnb-/lnv- links it does not own,
// so each test stops its driver (daemon or plugin) before the next one starts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { SERVE_NODE_FLAGS } from '../../src/config.ts';
import { PLUGIN_SOCKET, REPO_ROOT, ledgernetCli, pluginCall } from '../helpers/daemon.ts';
import { TEST_IMAGE, cleanupAll, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ensureDockerd, ensurePlainDockerd, stopDockerd } from '../helpers/dockerd.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { environment, parseUnit, splitCommandLine, value, values } from '../helpers/systemd.ts';

const PLUGIN = 'ledgernet-test/ledgernet:latest';
/** systemd's PATH for services; the unit must not rely on the caller's. */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

let daemon: ChildProcess | undefined;

async function removePlugin(): Promise<void> {
  const r = await docker(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN]);
  if (r.exitCode === 0) await docker(['plugin', 'rm', '--force', PLUGIN], { timeoutMs: 60_000 });
}

before(async () => {
  await assertNoLeaks();
  assert.equal(existsSync(PLUGIN_SOCKET) && (await pluginCall('Plugin.Activate', undefined).then(() => true, () => false)), false,
    `a ledgernet already answers on ${PLUGIN_SOCKET}; these tests need the host to themselves`);
  await removePlugin(); // left by an earlier, interrupted run
});

after(async () => {
  await cleanupAll();
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  await removePlugin();
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

async function runContainer(network: string, restart?: string): Promise<string> {
  const name = track.container(uniqueName('inst'));
  await docker(['run', '-d', '--name', name, ...(restart ? ['--restart', restart] : []), '--network', network, TEST_IMAGE, 'sleep', '600'], { check: true });
  return name;
}

/** Two containers on `network` ping each other (`started` two already running there); then both and the network are removed. */
async function twoContainersPing(network: string, started?: readonly [string, string]): Promise<void> {
  const [c1, c2] = started ?? [await runContainer(network), await runContainer(network)];
  const ip1 = await containerIp(c1, network);
  const ip2 = await containerIp(c2, network);
  assert.ok(await ping(c1, ip2), `${c1} pings ${c2} at ${ip2}`);
  assert.ok(await ping(c2, ip1), `${c2} pings ${c1} at ${ip1}`);
  assert.equal((await docker(['rm', '-f', c1, c2])).exitCode, 0);
  assert.equal((await docker(['network', 'rm', network])).exitCode, 0);
}

async function eventTypes(stateDir: string): Promise<string[]> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { type: string }).type);
}

/** What the daemon at `stateDir` says of Docker's API (`ledgernet status --json`). */
async function dockerSeen(stateDir: string): Promise<{ answering: boolean; socket: string; driverName: string }> {
  const r = await ledgernetCli(['status', '--json', '--state-dir', stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  return (JSON.parse(r.stdout) as { daemon: { docker: { answering: boolean; socket: string; driverName: string } } }).daemon.docker;
}

/** The pids of the managed plugin's processes (supervisor and worker), as the host sees them. */
async function pluginProcesses(): Promise<number[]> {
  const r = await execa('pgrep', ['-f', '^/usr/bin/node .*/app/dist/cli.js serve'], { reject: false });
  return r.stdout.split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
}

const systemdAnalyzeWorks = (await execa('systemd-analyze', ['--version'], { reject: false })).exitCode === 0;

describe('install as a systemd service', () => {
  test('install --root writes and enables the unit, idempotently; systemd-analyze accepts it; uninstall removes it', async () => {
    const root = await tempDir('ledgernet-root-');
    const unitPath = join(root, 'etc/systemd/system/ledgernet.service');
    const r1 = await ledgernetCli(['install', '--root', root]);
    assert.equal(r1.exitCode, 0, r1.stderr);
    assert.match(r1.stdout, new RegExp(`wrote ${unitPath}`));
    assert.match(r1.stdout, /is not the running system: nothing was loaded or started/);
    const text = await readFile(unitPath, 'utf8');
    const unit = parseUnit(text);
    assert.equal(value(unit, 'Unit', 'Before'), 'docker.service');
    assert.equal(value(unit, 'Service', 'Restart'), 'always');
    assert.deepEqual(splitCommandLine(value(unit, 'Service', 'ExecStart')), [process.execPath, ...SERVE_NODE_FLAGS, join(REPO_ROOT, 'dist/cli.js'), 'serve']);
    for (const wants of ['multi-user.target.wants', 'docker.service.wants']) {
      const link = join(root, 'etc/systemd/system', wants, 'ledgernet.service');
      assert.ok(lstatSync(link).isSymbolicLink(), `${link} is a symlink`);
      assert.equal(readlinkSync(link), '/etc/systemd/system/ledgernet.service');
    }
    // The plugin socket's unit (socket activation), started with sockets.target.
    const socketPath = join(root, 'etc/systemd/system/ledgernet.socket');
    assert.equal(value(parseUnit(await readFile(socketPath, 'utf8')), 'Socket', 'ListenStream'), PLUGIN_SOCKET);
    assert.equal(readlinkSync(join(root, 'etc/systemd/system/sockets.target.wants/ledgernet.socket')), '/etc/systemd/system/ledgernet.socket');

    if (systemdAnalyzeWorks) {
      const v = await execa('systemd-analyze', ['verify', socketPath, unitPath], { reject: false });
      assert.equal(v.exitCode, 0, `systemd-analyze verify:\n${v.stdout}${v.stderr}`);
    }

    const r2 = await ledgernetCli(['install', '--root', root]);
    assert.equal(r2.exitCode, 0, r2.stderr);
    assert.match(r2.stdout, /already up to date/);
    assert.equal(await readFile(unitPath, 'utf8'), text, 'a second install changes nothing');

    const rp0 = await ledgernetCli(['install', '--root', root, '--no-start', '--prefix', '/opt/ledgernet']);
    assert.equal(rp0.exitCode, 1, 'no ledgernet under the prefix yet');
    assert.match(rp0.stderr, new RegExp(`${join(root, 'opt/ledgernet/bin/ledgernet')} does not exist`));
    // What `npm install -g --prefix` leaves there (removed again below).
    await mkdir(join(root, 'opt/ledgernet/bin'), { recursive: true });
    await writeFile(join(root, 'opt/ledgernet/bin/ledgernet'), '#!/usr/bin/env node\n', { mode: 0o755 });
    const rp = await ledgernetCli(['install', '--root', root, '--no-start', '--prefix', '/opt/ledgernet']);
    await rm(join(root, 'opt'), { recursive: true, force: true });
    assert.equal(rp.exitCode, 0, rp.stderr);
    assert.match(rp.stdout, /updated/);
    assert.match(await readFile(unitPath, 'utf8'), new RegExp(`^ExecStart=/usr/bin/env node ${SERVE_NODE_FLAGS.join(' ')} /opt/ledgernet/bin/ledgernet serve$`, 'm'));

    const u1 = await ledgernetCli(['uninstall', '--root', root]);
    assert.equal(u1.exitCode, 0, u1.stderr);
    assert.match(u1.stdout, /removed/);
    const left = await execa('find', [root, '-mindepth', '1', '(', '-type', 'f', '-o', '-type', 'l', ')']);
    assert.equal(left.stdout, '', 'no unit file or symlink is left');
    const u2 = await ledgernetCli(['uninstall', '--root', root]);
    assert.equal(u2.exitCode, 0, u2.stderr);
    assert.match(u2.stdout, /nothing to do/);
  });

  test("the unit's ExecStart serves the real dockerd: two containers ping; SIGTERM stops it cleanly", async () => {
    const root = await tempDir('ledgernet-root-');
    const stateDir = await tempDir('ledgernet-state-');
    const unitPath = join(root, 'etc/systemd/system/ledgernet.service');
    assert.equal((await ledgernetCli(['install', '--root', root])).exitCode, 0);
    const unit = parseUnit(await readFile(unitPath, 'utf8'));
    const argv = splitCommandLine(value(unit, 'Service', 'ExecStart'));
    // As systemd runs it: the unit's Environment and systemd's PATH, nothing from this shell.
    const env: Record<string, string> = { PATH: SYSTEMD_PATH, ...environment(unit), LEDGERNET_STATE_DIR: stateDir };
    assert.equal(env['LEDGERNET_SOCKET'], PLUGIN_SOCKET);

    let logs = '';
    const proc = spawn(argv[0]!, [...argv.slice(1), '--state-dir', stateDir, '--socket', PLUGIN_SOCKET, '--reconcile-interval', '1'], {
      env,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon = proc;
    proc.stdout.on('data', (c: Buffer) => (logs += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (logs += c.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    try {
      // ExecStartPost is what makes systemd wait for the socket before starting docker.service.
      const [post] = values(unit, 'Service', 'ExecStartPost').map(splitCommandLine);
      assert.ok(post);
      const ready = await execa(post[0]!, post.slice(1), { env, extendEnv: false, reject: false, timeout: 35_000 });
      assert.equal(ready.exitCode, 0, `ExecStartPost: ${ready.stderr}\n${logs}`);
      assert.equal((await pluginCall('Plugin.Activate', undefined)).status, 200);

      const net = track.network(uniqueName('lninst'));
      const c = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.61.0/24', net]);
      assert.equal(c.exitCode, 0, `${c.stderr}\n${logs}`);
      await twoContainersPing(net);
      await waitNoLeaks();

      proc.kill('SIGTERM');
      const exit = await Promise.race([exited, new Promise<'late'>((r) => setTimeout(r, 15_000, 'late'))]);
      assert.deepEqual(exit, { code: 0, signal: null }, `graceful exit on SIGTERM\n${logs}`);
      assert.match(logs, /shutting down/);
      assert.equal(existsSync(PLUGIN_SOCKET), false, 'the plugin socket is removed');
      assert.equal(existsSync(join(stateDir, 'control.sock')), false, 'the control socket is removed');
      const free = await execa('flock', ['--nonblock', '--exclusive', join(stateDir, 'lock'), 'true'], { reject: false });
      assert.equal(free.exitCode, 0, 'the state dir lock is released');
      const verify = await ledgernetCli(['events', 'verify', '--state-dir', stateDir]);
      assert.equal(verify.exitCode, 0, verify.stderr);
      const types = await eventTypes(stateDir);
      for (const t of ['network.created', 'endpoint.joined', 'network.deleted']) assert.ok(types.includes(t), `the log holds ${t}`);
      await assertNoLeaks();
    } finally {
      await cleanupAll();
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      daemon = undefined;
    }
    const u = await ledgernetCli(['uninstall', '--root', root]);
    assert.equal(u.exitCode, 0, u.stderr);
    assert.equal(existsSync(unitPath), false);
  });
});

describe('install as a managed Docker plugin', () => {
  test('plugin:build, create, enable; a network on <name>:latest where two containers ping; then all removed', async () => {
    const build = await execa('npm', ['run', 'plugin:build', '--silent'], { cwd: REPO_ROOT, reject: false, timeout: 300_000, all: true });
    assert.equal(build.exitCode, 0, build.all);
    const dir = join(REPO_ROOT, 'build/plugin');
    const rootfs = join(dir, 'rootfs');

    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as {
      interface: { types: string[]; socket: string };
      network: { type: string };
      linux: { capabilities: string[] };
      mounts: { name: string; destination: string; settable: string[] }[];
      env: { name: string; settable?: string[] }[];
    };
    assert.ok(config.interface.types.includes('docker.networkdriver/1.0'));
    assert.equal(config.interface.socket, 'ledgernet.sock');
    assert.equal(config.network.type, 'host');
    assert.deepEqual(config.linux.capabilities, ['CAP_NET_ADMIN']);
    const state = config.mounts.find((m) => m.name === 'state');
    assert.deepEqual([state?.destination, state?.settable], ['/var/lib/ledgernet', ['source']]);
    const api = config.mounts.find((m) => m.name === 'docker-api');
    assert.deepEqual([api?.destination, api?.settable], ['/run/ledgernet-docker', ['source']]);
    for (const name of ['LEDGERNET_LOG_LEVEL', 'LEDGERNET_FIREWALL', 'LEDGERNET_DOCKER_SOCKET', 'LEDGERNET_ALLOW_DIRECT_ROUTING', 'LEDGERNET_IPV6_FORWARDING']) assert.deepEqual(config.env.find((e) => e.name === name)?.settable, ['value'], name);

    // The rootfs is complete: every program the driver runs starts inside it.
    for (const cmd of [['/usr/bin/node', '-e', '1'], ['ip', '-V'], ['tc', '-V'], ['iptables-save', '-t', 'filter'], ['nft', 'list', 'tables'], ['/usr/bin/node', '/app/dist/cli.js', '--help'], ['flock', '-V'], ['perl', '-v']]) {
      const r = await execa('chroot', [rootfs, ...cmd], { reject: false, env: { PATH: SYSTEMD_PATH }, extendEnv: false });
      assert.equal(r.exitCode, 0, `chroot rootfs ${cmd.join(' ')}: ${r.stderr}`);
    }

    const stateDir = await tempDir('ledgernet-plugin-state-');
    const net = track.network(uniqueName('lnplug'));
    try {
      await docker(['plugin', 'create', PLUGIN, dir], { check: true, timeoutMs: 120_000 });
      // The nftables backend (Docker 29's own where it uses nftables): nft and libnftables in the rootfs.
      await docker(['plugin', 'set', PLUGIN, `state.source=${stateDir}`, 'LEDGERNET_RECONCILE_INTERVAL=1', 'LEDGERNET_FIREWALL=nftables'], { check: true });
      await docker(['plugin', 'enable', PLUGIN], { check: true, timeoutMs: 60_000 });
      const id = (await docker(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN], { check: true })).stdout.trim();
      assert.ok(existsSync(`/run/docker/plugins/${id}/ledgernet.sock`), 'the plugin socket is where dockerd looks for it');
      // The plugin holds the host guard on the host: a second ledgernet there refuses, naming it.
      const other = await tempDir('ledgernet-second-');
      const second = await ledgernetCli(['serve', '--state-dir', join(other, 'state'), '--socket', join(other, 'x.sock')]);
      assert.equal(second.exitCode, 1, second.stderr);
      assert.match(second.stderr, /another ledgernet instance runs on this host \(pid \d+ in another pid namespace, e\.g\. a managed Docker plugin, state dir \/var\/lib\/ledgernet, socket \/run\/docker\/plugins\/ledgernet\.sock/);
      // Its control socket (in the state mount) answers root on the host, through the peer check.
      const st = await ledgernetCli(['status', '--json', '--state-dir', stateDir]);
      assert.equal(st.exitCode, 0, st.stderr);
      // Docker's API through the docker-api mount, and the plugin's own name (with its tag) from it.
      await waitFor(async () => {
        const d = await dockerSeen(stateDir);
        assert.deepEqual([d.answering, d.socket, d.driverName], [true, '/run/ledgernet-docker/docker.sock', PLUGIN]);
        return true;
      }, { timeoutMs: 20_000, what: 'the plugin to learn its name from Docker' });
      // A network Docker does not have (made on the plugin's socket behind Docker's back, as one
      // removed while the plugin was down looks) is collected: Docker's 404 reached the plugin.
      const ghost = 'ab'.repeat(32);
      const made = await pluginCall('NetworkDriver.CreateNetwork', {
        NetworkID: ghost,
        Options: { 'com.docker.network.generic': {} },
        IPv4Data: [{ AddressSpace: '', Pool: '10.231.61.0/24', Gateway: '10.231.61.1/24' }],
        IPv6Data: [],
      }, `/run/docker/plugins/${id}/ledgernet.sock`);
      assert.equal(made.status, 200, made.text);
      assert.ok(existsSync(`/sys/class/net/lnb-${ghost.slice(0, 11)}`), 'its bridge was made');
      await waitFor(async () => (await eventTypes(stateDir)).includes('network.collected'), { timeoutMs: 30_000, intervalMs: 500, what: 'the network Docker does not have to be collected' });
      await waitFor(() => !existsSync(`/sys/class/net/lnb-${ghost.slice(0, 11)}`), { what: 'its bridge to be removed' });

      // The plugin serves both roles: the network driver and its IPAM.
      const c = await docker(['network', 'create', '--driver', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', '10.231.60.0/24', net]);
      assert.equal(c.exitCode, 0, c.stderr);
      const bridge = `lnb-${c.stdout.trim().slice(0, 11)}`;
      await waitFor(async () => (await execa('nft', ['list', 'table', 'inet', 'ledgernet'], { reject: false })).stdout.includes(`"${bridge}"`), { what: `the plugin's nftables table to hold ${bridge}` });
      // Docker mounts /proc/sys read-only in a plugin: the host's settings go through the
      // proc-sys-net mount. The bridge takes no router advertisement (accept_ra 0), a port published
      // on 127.0.0.1 answers from the host (route_localnet 1), and no pass is left with a failure.
      assert.equal((await readFile(`/proc/sys/net/ipv6/conf/${bridge}/accept_ra`, 'utf8')).trim(), '0', 'accept_ra set through the mount');
      const web = track.container(uniqueName('lnplugweb'));
      const serve = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && exec sleep 600';
      await docker(['run', '-d', '--name', web, '--network', net, '-p', '127.0.0.1:18761:80', TEST_IMAGE, 'sh', '-c', serve], { check: true });
      const body = await waitFor(
        async () => {
          const w = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18761/'], { reject: false, stdin: 'ignore' });
          return w.exitCode === 0 ? w.stdout.trim() : null;
        },
        { timeoutMs: 15_000, what: "the plugin's container to answer on 127.0.0.1:18761" },
      );
      assert.equal(body, 'ok');
      assert.equal((await readFile(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8')).trim(), '1');
      const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', stateDir]);
      assert.equal(dry.exitCode, 0, `nothing pending (no setting the plugin could not write):\n${dry.stdout}${dry.stderr}`);
      await docker(['rm', '-f', web], { check: true });
      await twoContainersPing(net);
      // The log sits in the bind-mounted state dir on the host: the host CLI reads it.
      const types = await eventTypes(stateDir);
      for (const t of ['pool.requested', 'address.requested', 'network.created', 'endpoint.joined', 'network.deleted']) assert.ok(types.includes(t), `the log holds ${t}`);
      await waitNoLeaks();

      // dockerd restarted: it stops the plugin with its containers, enables it again before its
      // API answers, and brings the `--restart always` containers back on the plugin's network;
      // the plugin's docker-api mount is made again on the new socket.
      const net2 = track.network(uniqueName('lnplug'));
      await docker(['network', 'create', '--driver', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', '10.231.63.0/24', net2], { check: true });
      const back = [await runContainer(net2, 'always'), await runContainer(net2, 'always')] as const;
      await stopDockerd();
      await ensureDockerd();
      const running = async () => (await docker(['inspect', '-f', '{{.State.Running}}', ...back])).stdout.split('\n').every((l) => l === 'true');
      await waitFor(running, { timeoutMs: 60_000, what: 'the --restart always containers to run again' });
      const reachesDocker = async () => {
        const d = await dockerSeen(stateDir);
        return d.answering && d.driverName === PLUGIN;
      };
      await waitFor(reachesDocker, { timeoutMs: 20_000, what: 'the restarted plugin to reach Docker and learn its name again' });

      // dockerd with live-restore: stopping it leaves the plugin and the containers running, and
      // the next dockerd makes its socket anew. The plugin reaches it through the same mount (the
      // socket's directory; a mount of the socket file kept the old, refused one).
      await stopDockerd();
      await ensureDockerd(['--live-restore']);
      await waitFor(running, { timeoutMs: 60_000, what: 'the --restart always containers to run under the live-restore dockerd' });
      await waitFor(reachesDocker, { timeoutMs: 20_000, what: 'the plugin to reach the live-restore dockerd' });
      const plugin = await pluginProcesses();
      const startedAt = async () => (await docker(['inspect', '-f', '{{.State.StartedAt}}', ...back], { check: true })).stdout;
      const started = await startedAt();
      await stopDockerd();
      assert.deepEqual(await pluginProcesses(), plugin, 'the plugin runs on while dockerd is down (live-restore)');
      assert.equal((await dockerSeen(stateDir)).answering, false, 'status says Docker is not answering while dockerd is down');
      await ensureDockerd(['--live-restore']);
      assert.deepEqual(await pluginProcesses(), plugin, 'the same plugin serves the new dockerd');
      await waitFor(reachesDocker, { timeoutMs: 20_000, what: 'the plugin that outlived dockerd to reach the new one' });
      assert.equal(await startedAt(), started, 'the containers ran on, not restarted');
      await twoContainersPing(net2, back);
      await waitNoLeaks();

      await docker(['plugin', 'disable', PLUGIN], { check: true, timeoutMs: 60_000 });
      await docker(['plugin', 'rm', PLUGIN], { check: true, timeoutMs: 60_000 });
      assert.equal((await docker(['plugin', 'inspect', PLUGIN])).exitCode, 1, 'the plugin is gone');
      assert.equal(existsSync(`/run/docker/plugins/${id}`), false, 'its socket dir is gone');
      const nets = await docker(['network', 'ls', '-q', '--filter', `driver=${PLUGIN}`], { check: true });
      assert.equal(nets.stdout, '', 'no network uses the plugin');
      await assertNoLeaks();
    } finally {
      await ensurePlainDockerd();
      await cleanupAll();
      await removePlugin();
    }
  });
});
