// A multi-host test bed on this one machine (../shared/multihost-testbed.md records how it was
// built and its pitfalls): N "hosts", each a network namespace plus a private mount namespace
// (private /run and /etc/docker, so each has its own plugin directory, host guard and containerd)
// held by a `sleep infinity` process, with its own dockerd, its own nats-server (one JetStream
// cluster) and optionally its own `ledgernet serve`; an underlay bridge in one more namespace
// joins them (10.231.200.N/24). Nothing is created in the root namespace but the namespace names
// and the cgroup parents, which down() removes. Callers hold the test lock (scripts/test.sh does).
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, mkdir, readdir, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI_PATH, REPO_ROOT } from './daemon.ts';
import { DOCKER_BIN, TEST_IMAGE, waitFor, type DockerOptions, type RunResult } from './docker.ts';

const UL = '10.231.200';

export interface Host {
  readonly n: number;
  /** ledgernet's host name: `h1`, `h2`, … */
  readonly name: string;
  readonly netns: string;
  /** The host's underlay address (its VTEP). */
  readonly underlay: string;
  readonly dir: string;
  readonly dockerSocket: string;
  readonly stateDir: string;
  /** This host's nats-server. */
  readonly natsUrl: string;
  /** `docker -H <this host>` (Debian's 20.10 client). */
  docker(args: readonly string[], opts?: DockerOptions): Promise<RunResult>;
  /** Runs a command inside the host (its network and mount namespaces). */
  exec(cmd: string, args: readonly string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Starts `ledgernet serve` inside the host; resolves once its socket answers. */
  startLedgernet(extraArgs?: readonly string[]): Promise<void>;
  /** SIGTERM to ledgernet (SIGKILL after 10 s); waits for it to exit. */
  stopLedgernet(): Promise<void>;
  /** What ledgernet wrote so far. */
  ledgernetLog(): string;
  /** `signal` to ledgernet's worker (its pid from the state dir); SIGKILL goes to the supervisor too, and waits for both to die. */
  signalLedgernet(signal: NodeJS.Signals): Promise<void>;
  /** SIGTERM to this host's nats-server; waits for it to exit. */
  stopNats(): Promise<void>;
  /** Starts this host's nats-server again (same config and JetStream store). */
  startNats(): void;
  /** SIGTERM to this host's dockerd; waits for it (and its containers) to go. */
  stopDockerd(): Promise<void>;
  /**
   * A power cut: every process of the host SIGKILLed (containers, shims, containerd, dockerd,
   * ledgernet, nats-server), its kernel state gone (the network namespace made anew, with its
   * underlay link again) and its /run and Docker's exec root empty; what is on disk stays
   * (Docker's data root, ledgernet's state dir, NATS's store).
   */
  powerCut(): Promise<void>;
  /** Boots the host after a power cut (/run holds only /run/lock): nats-server, then dockerd and ledgernet in `order` (ledgernet with `ledgernetArgs`, waited for as startLedgernet does; dockerd until its API answers). */
  boot(order: 'ledgernet-first' | 'dockerd-first', ledgernetArgs?: readonly string[]): Promise<void>;
}

export interface Testbed {
  readonly dir: string;
  /** Prefix of the bed's namespace names (`<prefix>-h1`, `<prefix>-ul`) and cgroup parents. */
  readonly prefix: string;
  readonly hosts: readonly Host[];
  /** The `--nats` list: every host's nats-server. */
  readonly natsServers: string;
  /** Stops everything (containers, ledgernet, dockerd, nats, holders), deletes namespaces, cgroups and dirs. */
  down(): Promise<void>;
}

export interface TestbedOptions {
  readonly hosts?: number;
  /** Start `ledgernet serve --host hN --nats <all>` on every host, with these extra args (default: not started). */
  readonly ledgernet?: readonly string[];
}

const started = new Set<number>();
process.on('exit', () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return execa(cmd, args, { reject: false, stdin: 'ignore', timeout: timeoutMs }).then((r) => ({
    stdout: String(r.stdout ?? ''),
    stderr: r.exitCode === undefined ? [r.stderr, r.shortMessage].filter(Boolean).join('\n') : String(r.stderr ?? ''),
    exitCode: r.exitCode ?? -1,
  }));
}

async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr}`);
  return r.stdout;
}

/** Spawns a long-lived process with its output appended to `logFile`; records its pid. */
function daemon(cmd: string, args: readonly string[], logFile: string, cwd?: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd], ...(cwd ? { cwd } : {}) });
  closeSync(fd);
  if (p.pid) started.add(p.pid);
  p.on('exit', () => p.pid && started.delete(p.pid));
  return p;
}

async function stopProc(p: ChildProcess | null, killAfterMs = 15_000): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(t);
}

async function underlayUp(prefix: string, count: number): Promise<void> {
  const ul = `${prefix}-ul`;
  await must('ip', ['netns', 'add', ul]);
  await must('ip', ['-n', ul, 'link', 'set', 'lo', 'up']);
  await must('ip', ['-n', ul, 'link', 'add', 'ul0', 'type', 'bridge']);
  await must('ip', ['-n', ul, 'link', 'set', 'ul0', 'up']);
  for (let n = 1; n <= count; n++) await underlayHost(prefix, n);
}

/** Host n's network namespace, linked to the underlay bridge. */
async function underlayHost(prefix: string, n: number): Promise<void> {
  const ul = `${prefix}-ul`;
  const ns = `${prefix}-h${n}`;
  await must('ip', ['netns', 'add', ns]);
  await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await must('ip', ['-n', ul, 'link', 'add', `ul-h${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await must('ip', ['-n', ul, 'link', 'set', `ul-h${n}`, 'master', 'ul0', 'up']);
  await must('ip', ['-n', ns, 'addr', 'add', `${UL}.${n}/24`, 'dev', 'eth0']);
  await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  // A new netns inherits ip_forward=1; with 0, dockerd enables it and sets FORWARD DROP, as on a real host.
  await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=0']);
}

// The holder owns the host's mount namespace, so /run (plugin sockets) outlives dockerd restarts.
// `ip netns exec` would lose the cgroup mounts (dockerd: "Devices cgroup isn't mounted").
// `boot`: /run as a boot leaves it (only /run/lock), so whoever starts first makes the plugin directory.
function holderScript(dir: string, boot = false): string {
  return [
    `mount --rbind /sys/fs/cgroup ${dir}/cg`,
    'umount -l /sys; mount -t sysfs sysfs /sys',
    `mount --move ${dir}/cg /sys/fs/cgroup`,
    'mount -t tmpfs -o mode=755 tmpfs /run',
    boot ? 'mkdir -p /run/lock' : 'mkdir -p /run/docker/plugins /run/lock',
    'mount -t tmpfs -o mode=755 tmpfs /etc/docker',
    `touch ${dir}/ns.ready`,
    'exec sleep infinity',
  ].join('\n');
}

function natsConf(prefix: string, n: number, count: number, store: string): string {
  const routes = Array.from({ length: count }, (_, i) => i + 1)
    .filter((m) => m !== n)
    .map((m) => `nats://${UL}.${m}:6222`)
    .join(', ');
  return [
    `server_name: ${prefix}-n${n}`,
    `listen: ${UL}.${n}:4222`,
    `http: ${UL}.${n}:8222`,
    `jetstream { store_dir: "${store}", max_memory_store: 64MB, max_file_store: 1GB }`,
    // One host: a standalone server (a cluster of one never elects a meta leader).
    ...(count > 1 ? [`cluster { name: ${prefix}, listen: ${UL}.${n}:6222, routes: [${routes}] }`] : []),
    '',
  ].join('\n');
}

interface Procs {
  holder: ChildProcess | null;
  dockerd: ChildProcess | null;
  nats: ChildProcess | null;
  ledgernet: ChildProcess | null;
}

function makeHost(prefix: string, root: string, n: number, count: number, procs: Procs): Host {
  const dir = join(root, `h${n}`);
  const dockerSocket = join(dir, 'docker.sock');
  const stateDir = join(dir, 'state');
  const enter = () => ['-t', String(procs.holder?.pid), '-m', '-n'];
  const natsServers = Array.from({ length: count }, (_, i) => `nats://${UL}.${i + 1}:4222`).join(',');
  const host: Host = {
    n,
    name: `h${n}`,
    netns: `${prefix}-h${n}`,
    underlay: `${UL}.${n}`,
    dir,
    dockerSocket,
    stateDir,
    natsUrl: `nats://${UL}.${n}:4222`,
    docker: (args, opts = {}) =>
      run(DOCKER_BIN, ['-H', `unix://${dockerSocket}`, ...args], opts.timeoutMs ?? 60_000).then((r) => {
        if (opts.check && r.exitCode !== 0) throw new Error(`h${n}: docker ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr || r.stdout}`);
        return r;
      }),
    exec: (cmd, args, opts = {}) => run('nsenter', [...enter(), cmd, ...args], opts.timeoutMs),
    async startLedgernet(extraArgs = []) {
      await mkdir(stateDir, { recursive: true });
      const args = [...enter(), `--wd=${REPO_ROOT}`, process.execPath, CLI_PATH, 'serve', '--state-dir', stateDir, '--host', `h${n}`];
      args.push('--nats', natsServers, '--docker-socket', dockerSocket, '--log-level', 'debug', ...extraArgs);
      procs.ledgernet = daemon('nsenter', args, join(dir, 'ledgernet.log'));
      const p = procs.ledgernet;
      await waitFor(async () => {
        if (p.exitCode !== null) throw new Error(`h${n}: ledgernet exited (${p.exitCode}):\n${host.ledgernetLog().slice(-3000)}`);
        return (await host.exec('test', ['-S', '/run/docker/plugins/ledgernet.sock'])).exitCode === 0;
      }, { timeoutMs: 30_000, intervalMs: 100, what: `ledgernet on h${n} to listen` });
    },
    async stopLedgernet() {
      await stopProc(procs.ledgernet, 10_000);
      procs.ledgernet = null;
    },
    ledgernetLog: () => (existsSync(join(dir, 'ledgernet.log')) ? readFileSync(join(dir, 'ledgernet.log'), 'utf8') : ''),
    async signalLedgernet(signal) {
      const worker = Number(readFileSync(join(stateDir, 'worker.pid'), 'utf8').trim());
      process.kill(worker, signal);
      if (signal !== 'SIGKILL') return;
      const sup = procs.ledgernet;
      if (sup && sup.exitCode === null && sup.signalCode === null) {
        const exited = new Promise((r) => sup.once('exit', r));
        sup.kill('SIGKILL');
        await exited;
      }
      procs.ledgernet = null;
      await waitFor(() => !existsSync(`/proc/${worker}`), { timeoutMs: 10_000, intervalMs: 20, what: `h${n}'s ledgernet worker to die` });
    },
    async stopNats() {
      await stopProc(procs.nats);
      procs.nats = null;
    },
    startNats() {
      procs.nats = daemon('nsenter', ['-t', String(procs.holder?.pid), '-n', 'nats-server', '-c', join(dir, 'nats.conf')], join(dir, 'nats.log'));
    },
    async stopDockerd() {
      await stopProc(procs.dockerd, 30_000);
      procs.dockerd = null;
    },
    async powerCut() {
      await killHost(prefix, host);
      for (const k of Object.keys(procs) as (keyof Procs)[]) procs[k] = null;
      // On a real host these live in /run (tmpfs).
      await rm(join(dir, 'exec'), { recursive: true, force: true });
      await rm(join(dir, 'docker.pid'), { force: true });
      await rm(dockerSocket, { force: true });
      await must('ip', ['netns', 'del', host.netns]);
      // The old namespace goes once the kernel has cleaned it up, and its underlay link with it.
      await waitFor(async () => (await run('ip', ['-n', `${prefix}-ul`, 'link', 'show', `ul-h${n}`])).exitCode !== 0, { timeoutMs: 20_000, intervalMs: 50, what: `h${n}'s old namespace to go` });
      await underlayHost(prefix, n);
    },
    async boot(order, ledgernetArgs = []) {
      await startHolder(host, procs, true);
      host.startNats();
      if (order === 'ledgernet-first') await host.startLedgernet(ledgernetArgs);
      startDockerd(prefix, host, procs);
      if (order === 'dockerd-first') {
        // Its socket is there before it has restored its containers (which waits for the plugin).
        await waitFor(() => existsSync(dockerSocket), { timeoutMs: 30_000, intervalMs: 50, what: `dockerd on h${n} to make its socket` });
        await host.startLedgernet(ledgernetArgs);
      }
      await waitFor(async () => (await host.docker(['version'], { timeoutMs: 5_000 })).exitCode === 0, { timeoutMs: 90_000, intervalMs: 100, what: `dockerd on h${n} to answer` });
    },
  };
  return host;
}

/** The pids of every process of host `h`: in its network namespace, or in its containers' cgroups. */
async function hostPids(prefix: string, h: Host): Promise<number[]> {
  const netns = statSync(`/run/netns/${h.netns}`).ino;
  const cgroup = `/${prefix}-h${h.n}`;
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      const mine = statSync(`/proc/${pid}/ns/net`).ino === netns || readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').some((l) => l.endsWith(cgroup) || l.includes(`${cgroup}/`));
      if (mine) pids.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

/** SIGKILLs every process of the host until none is left (a shim or dockerd may start another meanwhile). */
async function killHost(prefix: string, h: Host): Promise<void> {
  await waitFor(async () => {
    const pids = await hostPids(prefix, h);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    return pids.length === 0;
  }, { timeoutMs: 20_000, intervalMs: 50, what: `every process of h${h.n} to die` });
}

async function hostUp(prefix: string, host: Host, procs: Procs, count: number, image: string): Promise<void> {
  const { dir, n } = host;
  await mkdir(join(dir, 'lib'), { recursive: true });
  await mkdir(join(dir, 'cg'));
  await writeFile(join(dir, 'daemon.json'), '{}\n');
  await startHolder(host, procs);
  startDockerd(prefix, host, procs);
  await waitFor(async () => (await host.docker(['version'], { timeoutMs: 5_000 })).exitCode === 0, { timeoutMs: 30_000, intervalMs: 50, what: `dockerd on h${n}` });
  await host.docker(['import', image, TEST_IMAGE], { check: true });
  const store = join(dir, 'nats');
  await mkdir(store);
  await writeFile(join(dir, 'nats.conf'), natsConf(prefix, n, count, store));
  host.startNats();
}

/** The process that holds the host's mount namespace (a fresh /run), in its network namespace. */
async function startHolder(host: Host, procs: Procs, boot = false): Promise<void> {
  const { dir, n } = host;
  await rm(join(dir, 'ns.ready'), { force: true });
  procs.holder = daemon('nsenter', [`--net=/run/netns/${host.netns}`, 'unshare', '-m', '--propagation', 'private', 'sh', '-ec', holderScript(dir, boot)], join(dir, 'holder.log'));
  await waitFor(() => existsSync(join(dir, 'ns.ready')), { timeoutMs: 10_000, intervalMs: 20, what: `h${n}'s namespace holder` });
}

/** Spawns the host's dockerd (its data root kept across boots). */
function startDockerd(prefix: string, host: Host, procs: Procs): void {
  const { dir, n } = host;
  procs.dockerd = daemon(
    'nsenter',
    ['-t', String(procs.holder?.pid), '-m', '-n', 'dockerd', '--config-file', join(dir, 'daemon.json'), '--data-root', join(dir, 'lib'), '--exec-root', join(dir, 'exec')]
      .concat(['-H', `unix://${host.dockerSocket}`, '--pidfile', join(dir, 'docker.pid'), '--bip', `10.231.201.${1 + 64 * (n - 1)}/26`])
      .concat(['--default-address-pool', `base=10.231.${201 + n}.0/24,size=28`, '--cgroup-parent', `/${prefix}-h${n}`, '--userland-proxy=false']),
    join(dir, 'dockerd.log'),
  );
}

/** A tar of busybox and its applets: the test image of every host (no pulls, no root dockerd). */
async function busyboxImage(dir: string): Promise<string> {
  const root = join(dir, 'rootfs');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'etc'));
  await copyFile('/usr/bin/busybox', join(root, 'bin', 'busybox'));
  const applets = (await must('busybox', ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
  await Promise.all(applets.map((a) => symlink('busybox', join(root, 'bin', a))));
  const tar = join(dir, 'image.tar');
  await must('tar', ['-C', root, '-cf', tar, '.']);
  await rm(root, { recursive: true });
  return tar;
}

async function jetstreamReady(host: Host, count: number): Promise<boolean> {
  const r = await host.exec('busybox', ['wget', '-qO-', `http://${host.underlay}:8222/jsz`], { timeoutMs: 5_000 });
  return r.exitCode === 0 && (/"meta_cluster"[\s\S]*"leader"/.test(r.stdout) || (count === 1 && /"config"/.test(r.stdout)));
}

async function hostDown(host: Host, procs: Procs): Promise<void> {
  const ids = await host.docker(['ps', '-aq'], { timeoutMs: 20_000 });
  const list = ids.stdout.split('\n').filter(Boolean);
  if (list.length > 0) await host.docker(['rm', '-f', ...list], { timeoutMs: 60_000 });
  await Promise.all([stopProc(procs.ledgernet, 10_000).then(() => killWorker(host.stateDir)), stopProc(procs.dockerd, 30_000), stopProc(procs.nats)]);
  await stopProc(procs.holder);
}

/**
 * The host's ledgernet worker, if it outlived its supervisor (a supervisor SIGKILLed by stopProc,
 * or a worker that does not stop): SIGKILLed, and waited for. It would hold the state lock.
 */
async function killWorker(stateDir: string): Promise<void> {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const pid = Number(read(join(stateDir, 'worker.pid')).trim());
  if (!(pid > 1) || !read(`/proc/${pid}/cmdline`).includes(CLI_PATH)) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !existsSync(`/proc/${pid}`), { timeoutMs: 10_000, intervalMs: 20, what: `ledgernet worker ${pid} to die` });
}

async function removeCgroups(prefix: string): Promise<void> {
  const base = '/sys/fs/cgroup';
  const roots = [base, ...(await readdir(base).catch(() => [] as string[])).map((d) => join(base, d))];
  for (const r of roots) {
    for (const d of await readdir(r).catch(() => [] as string[])) {
      if (d.startsWith(`${prefix}-h`)) await rmdir(join(r, d)).catch(() => undefined);
    }
  }
}

/** The hosts `ledgernet status --json` on `h` reads from the cluster's bucket, space-separated ('' when it cannot). */
async function clusterHosts(h: Host): Promise<string> {
  const r = await h.exec(process.execPath, [CLI_PATH, 'status', '--json', '--state-dir', h.stateDir], { timeoutMs: 10_000 });
  try {
    const { cluster } = JSON.parse(r.stdout) as { cluster?: { hosts?: { host: string }[] | null } };
    return (cluster?.hosts ?? []).map((x) => x.host).join(' ');
  } catch {
    return '';
  }
}

/**
 * Brings the bed up: underlay, then per host holder + dockerd (with the test image loaded from the
 * host's own dockerd) + nats-server, waits for the JetStream meta leader, then starts ledgernet on
 * every host if asked and waits until each reads every host's record from the cluster's bucket. On failure everything made so far is torn down before the error is thrown.
 */
export async function createTestbed(opts: TestbedOptions = {}): Promise<Testbed> {
  const count = opts.hosts ?? 3;
  const prefix = `lnmh${process.pid % 100000}`;
  // Short: containerd's socket under --exec-root must fit in 108 bytes.
  const dir = await mkdtemp('/tmp/mh.');
  const procs: Procs[] = Array.from({ length: count }, () => ({ holder: null, dockerd: null, nats: null, ledgernet: null }));
  const hosts = procs.map((p, i) => makeHost(prefix, dir, i + 1, count, p));
  const down = async () => {
    await Promise.all(hosts.map((h, i) => hostDown(h, procs[i]!).catch(() => undefined)));
    for (const ns of [...hosts.map((h) => h.netns), `${prefix}-ul`]) await run('ip', ['netns', 'del', ns]);
    await removeCgroups(prefix);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await underlayUp(prefix, count);
    const image = await busyboxImage(dir);
    await Promise.all(hosts.map((h, i) => hostUp(prefix, h, procs[i]!, count, image)));
    for (const h of hosts) await waitFor(() => jetstreamReady(h, count), { timeoutMs: 30_000, intervalMs: 100, what: `h${h.n}'s JetStream to know its meta leader` });
    if (opts.ledgernet) {
      await Promise.all(hosts.map((h) => h.startLedgernet(opts.ledgernet)));
      // The cluster formed: every host joined the bucket and reads every host's record through it
      // (a bucket just created by three hosts at once may not answer for a while on a busy machine).
      const names = hosts.map((h) => h.name).join(' ');
      for (const h of hosts) await waitFor(async () => (await clusterHosts(h)) === names, { timeoutMs: 60_000, intervalMs: 250, what: `h${h.n}'s ledgernet to read ${names} in the cluster's bucket` });
    }
  } catch (e) {
    await down();
    throw e;
  }
  return { dir, prefix, hosts, natsServers: hosts.map((h) => h.natsUrl).join(','), down };
}
