// The CLI's options, per command: what a command does not take is refused by name and nothing is
// done (an ignored `--dryrun`, or a `--dry-run` the command did not know, acted for real); and
// `release --dry-run` only shows. The CLI runs for real (src/cli.ts through tsx) in a fresh
// network namespace with its own guard directory, on a state dir this test makes.
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { optionNames } from '../../../src/cli-args.ts';
import { EventLog, LOG_FILE } from '../../../src/events/index.ts';
import { runCli } from '../../helpers/cli.ts';
import { REPO_ROOT } from '../../helpers/daemon.ts';
import { ADDRESS_HISTORY, endpointSpec, networkSpec } from '../../helpers/events.ts';

const NET = 'abcdef0123456789'.repeat(4);
let dir: string;
let runDir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-cli-args-'));
  runDir = await mkdtemp(join(tmpdir(), 'ln-cli-args-run-'));
  const { log } = await EventLog.open(dir, { host: 'h' });
  await log.append([{ type: 'network.created', data: networkSpec(NET, '10.231.77.0/24', '10.231.77.1/24') }]).durable;
  await log.close();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
});

// Should a refusal below regress, the serve it let start stays off the host's plugin socket.
const NO_SERVE = ['--socket', join(tmpdir(), 'ln-cli-args-no-serve.sock'), '--docker-socket', ''];
const cli = (args: readonly string[]) => runCli([...args, '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
const logText = () => readFile(join(dir, LOG_FILE), 'utf8');

describe('options a command does not take', () => {
  const cases: [string[], string][] = [
    [['reconcile', '--dryrun'], '--dryrun'],
    [['reconcile', '--follow'], '--follow'],
    [['reconcile', '--dry-run', '--root', '/x'], '--root'],
    [['release', '--json', NET], '--json'],
    [['release', '--firewall', 'nftables', NET], '--firewall'],
    [['status', '--dry-run'], '--dry-run'],
    [['status', '--prefix', '/x'], '--prefix'],
    [['events', '--dry-run'], '--dry-run'],
    [['repair', '--json', '--docker-socket', '/nonexistent.sock'], '--json'],
    [['install', '--dry-run', '--root', '/nonexistent-root'], '--dry-run'],
    [['uninstall', '--prefix', '/x', '--root', '/nonexistent-root'], '--prefix'],
    [['audit', '--nats', 'nats://127.0.0.1:1', '--dry-run'], '--dry-run'],
  ];
  for (const [args, bad] of cases) {
    it(`ledgernet ${args.join(' ')}: refused naming ${bad}, exit 1, the log unchanged`, async () => {
      const before = await logText();
      const r = await cli(args);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`ledgernet ${args[0]} does not take the option ${bad}`));
      assert.equal(r.stdout, '');
      assert.equal(await logText(), before);
    });
  }

  for (const [args, what] of [
    [['events', 'verfy'], /ledgernet events takes 'verify', 'archive' or nothing, got 'verfy'/],
    [['events', 'archive', '--json'], /`events archive` takes no --json, --follow, --since, --network, --container or --address/],
    [['events', 'archive', '--address', '10.0.0.1'], /`events archive` takes no --json, --follow, --since, --network, --container or --address/],
    [['reconcile', 'now'], /ledgernet reconcile takes no arguments, got now/],
    [['serve', '--worker-watchdog', 'soon'], /--worker-watchdog must be a number of seconds of at least 2, or 0 \(never\), such as 15; got "soon"/],
    [['serve', '--reconcile-interval=', ...NO_SERVE], /--reconcile-interval must be a number of seconds of at least 1, or 0 \(no background repair\), such as 10; got ""/],
    [['serve', '--apply-timeout', '0', ...NO_SERVE], /--apply-timeout must be a number of seconds of at least 1, such as 20; got "0"/],
    [['serve', '--default-pool-size', '0x18', ...NO_SERVE], /--default-pool-size must be a prefix length from 16 \(the range's own\) to 30, got "0x18"/],
    [['serve', '--cluster-host-timeout=', ...NO_SERVE], /--cluster-host-timeout must be a duration like 500ms/],
    [['serve', '--in-process', '--worker-watchdog', '5'], /--worker-watchdog watches the worker a supervisor runs; --in-process runs none/],
    [['serve', '--control-group', 'ledgernet-no-such-group'], /--control-group ledgernet-no-such-group: no such group/],
    [['release', NET, NET], /ledgernet release takes ID\|CIDR\|IP, got also/],
    [['reconcle'], /unknown command 'reconcle'/],
    [['cluster', 'forgt', 'h3'], /ledgernet cluster takes 'forget', got 'forgt'/],
    [['cluster', 'forget'], /ledgernet cluster needs forget HOST/],
    [['cluster', 'forget', 'h3', '--json'], /ledgernet cluster does not take the option --json/],
    [['cluster', 'forget', 'h3', '--dry-run'], /cluster forget needs the running daemon \(it holds the cluster's NATS connection\); none answers on/],
  ] as const) {
    it(`ledgernet ${args.join(' ')}: refused, exit 1`, async () => {
      const r = await cli(args);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, what);
      assert.equal(r.stdout, '');
    });
  }

  for (const [args, bad] of [
    [['reconcile', '--allow-direct-routing'], '--allow-direct-routing'],
    [['reconcile', '--firewall', 'nftables'], '--firewall'],
    [['reconcile', '--json', '--firewall', 'iptables', '--allow-direct-routing'], '--firewall and --allow-direct-routing'],
  ] as const) {
    // Previews of a serve with that setting: the real pass ran as serve does, ignoring them.
    it(`ledgernet ${args.join(' ')} (no --dry-run): refused naming ${bad}, exit 1, nothing done`, async () => {
      const before = await logText();
      const r = await cli(args);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`reconcile takes ${bad} only with --dry-run.*Nothing was done \\(see ledgernet --help\\) \\(LN_ERR_CONFIG\\)`));
      assert.equal(r.stdout, '');
      assert.equal(await logText(), before, 'no pass ran (it records its outcome)');
    });
  }

  it('the options each command documents are taken', async () => {
    for (const args of [['reconcile', '--dry-run', '--json', '--firewall', 'iptables', '--allow-direct-routing'], ['status', '--json', '--firewall', 'iptables'], ['events', '--json'], ['events', 'verify']]) {
      const r = await cli(args);
      assert.doesNotMatch(r.stderr, /does not take|takes no arguments/, args.join(' '));
      assert.notEqual(r.stdout, '', args.join(' '));
    }
  });

  it('--help names every option some command takes (serve --apply-timeout was taken and named nowhere)', async () => {
    const r = await cli(['--help']);
    assert.equal(r.exitCode, 0, r.stderr);
    const unnamed = optionNames().filter((o) => !new RegExp(`--${o}\\b`).test(r.stdout));
    assert.deepEqual(unnamed, []);
    assert.ok(optionNames().includes('apply-timeout'));
  });
});

describe('release --dry-run', () => {
  it('shows what it would record, records nothing, exit 2', async () => {
    const before = await logText();
    // --force: without asking Docker (this test has none to ask; the e2e operator test asks a real one).
    const r = await cli(['release', '--dry-run', '--force', NET.slice(0, 12)]);
    assert.equal(r.exitCode, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^would record network\.deleted abcdef012345$/m);
    assert.doesNotMatch(r.stdout, /^recorded/m);
    assert.equal(await logText(), before, 'the log is unchanged');
    const status = await cli(['status', '--json']);
    assert.deepEqual(JSON.parse(status.stdout).networks.map((n: { networkId: string }) => n.networkId), [NET], 'the network is still known');
  });
});

describe('audit with a NATS server that does not answer', () => {
  it('names the server it tried (its password masked) and the reason', async () => {
    // A loopback port nothing listens on: bound and closed again at once.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const r = await cli(['audit', '--nats', `nats://auditor:s3cret@127.0.0.1:${port}`]);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^ledgernet: cannot connect to NATS nats://\\*\\*\\*@127\\.0\\.0\\.1:${port} \\(auth user auditor\\): \\S`));
    assert.doesNotMatch(r.stderr, /s3cret/);
  });
});

describe('a --nats list split inside a password', () => {
  for (const cmd of [['serve', '--in-process', ...NO_SERVE], ['audit']]) {
    it(`ledgernet ${cmd[0]}: refused at start, naming the entry, quoting no part of the password`, async () => {
      const r = await cli([...cmd, '--nats', 'nats://alice:s3cret,XYZ@127.0.0.1:14222']);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /NATS URL 1 of 2 in --nats is not a server URL: .*did a password contain ','\? escape it as %2C/);
      assert.doesNotMatch(`${r.stdout}${r.stderr}`, /s3cret|XYZ/);
    });
  }
});

describe('release asks Docker first', () => {
  it('a Docker that cannot be asked: refused by name, nothing recorded, with or without --dry-run', async () => {
    const before = await logText();
    for (const dry of [[], ['--dry-run']]) {
      const r = await cli(['release', ...dry, '--docker-socket', join(dir, 'no-docker.sock'), NET.slice(0, 12)]);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /cannot ask Docker whether it still has abcdef012345 \(.*no-docker\.sock.*\): nothing released; --force releases without asking \(LN_ERR_DOCKER_UNAVAILABLE\)/);
      assert.equal(r.stdout, '');
    }
    assert.equal(await logText(), before, 'the log is unchanged');
  });
});

describe('events --container and --address', () => {
  const CID_B = ADDRESS_HISTORY.containers[1];
  const POOL = 'p-10.231.79.0/24';
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ln-cli-events-ep-'));
    const { log } = await EventLog.open(dir, { host: 'h' });
    // web-1 had .2 and went, then job-7 got .2 again; IPAM's own events of .3.
    await log.append([
      ...ADDRESS_HISTORY.events(),
      { type: 'address.requested', data: { poolId: POOL, address: '10.231.79.3', kind: 'dynamic', name: null, auto: true } },
      { type: 'address.released', data: { poolId: POOL, address: '10.231.79.3' } },
    ]).durable;
    await log.close();
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const events = (...args: string[]) => runCli(['events', ...args, '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
  const seqs = async (...args: string[]) => {
    const r = await events(...args, '--json');
    assert.equal(r.exitCode, 0, r.stderr);
    return r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq);
  };

  it("--container: every line of the endpoints a container had, from before it was named on, by name or id prefix", async () => {
    assert.deepEqual(await seqs('--container', 'web-1'), [3, 4, 5, 6]);
    assert.deepEqual(await seqs('--container', CID_B.slice(0, 12)), [7, 8]);
    const text = await events('--container', 'web-1');
    assert.match(text.stdout, /endpoint\.created +abcdef012345\(web\)\/1a1a1a1a1a1a\(web-1\)  10\.231\.79\.2\/24$/m, 'with the address it was given');
  });

  it('a line says what its event set: the subnets of a network, the addresses of an endpoint', async () => {
    const text = (await events()).stdout;
    assert.match(text, /^ +1 \S+ network\.created +abcdef012345\(web\)  10\.231\.79\.0\/24$/m, text);
    assert.match(text, /^ +7 \S+ endpoint\.created +abcdef012345\(web\)\/2b2b2b2b2b2b\(job-7\)  10\.231\.79\.2\/24$/m, text);
    assert.match(text, /^ +4 \S+ endpoint\.joined +abcdef012345\(web\)\/1a1a1a1a1a1a\(web-1\)$/m, 'nothing more for a join');
    // IPAM's: the pool and the address, and how it was allocated.
    assert.match(text, /^ +9 \S+ address\.requested +p-10\.231\.79\.0\/24 10\.231\.79\.3  dynamic$/m, text);
    assert.match(text, /^ +10 \S+ address\.released +p-10\.231\.79\.0\/24 10\.231\.79\.3$/m, text);
  });

  it('--since SEQ|TIME: from that event on, by seq or by its own time; an endpoint named before it still selects its later lines', async () => {
    assert.deepEqual(await seqs('--since', '6'), [6, 7, 8, 9, 10]);
    assert.deepEqual(await seqs('--since', '6', '--container', 'web-1'), [6], 'web-1 was named at 5');
    const all = await events('--json');
    const at = all.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { at: string }).at);
    const later = new Date(Date.parse(at.at(-1) ?? '') + 1).toISOString();
    const none = await events('--since', later, '--address', '10.231.79.2');
    assert.equal(none.exitCode, 1);
    assert.match(none.stderr, new RegExp(`no event in .*events\\.log from ${later.replace(/\./g, '\\.')} on concerns the address 10\\.231\\.79\\.2`));
    const bad = await events('--since', 'yesterday-ish');
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /--since must be a seq \(e\.g\. 120\) or a time .*got yesterday-ish/);
    const verify = await events('verify', '--since', '3');
    assert.equal(verify.exitCode, 1);
    assert.match(verify.stderr, /`events verify` checks the whole log: it takes no --since/);
  });

  it('--address: the endpoints that had it, in any written form, and its IPAM events; combined with --container', async () => {
    assert.deepEqual(await seqs('--address', '10.231.79.2'), [3, 4, 5, 6, 7, 8]);
    assert.deepEqual(await seqs('--address', '10.231.79.2/24', '--container', 'job-7'), [7, 8]);
    assert.deepEqual(await seqs('--address', '10.231.79.3'), [9, 10]);
    assert.equal((await events('--address', '10.231.79.3', '--network', 'web')).exitCode, 1, 'filters combine: its IPAM events name no network');
  });

  it('nothing matches: exit 1 naming what was asked; a value that is not an address, or empty: refused', async () => {
    const none = await events('--container', 'nosuch', '--address', '10.231.79.2');
    assert.equal(none.exitCode, 1);
    assert.match(none.stderr, /no event in .*events\.log concerns a container with the id, id prefix or Docker name "nosuch" and the address 10\.231\.79\.2/);
    const bad = await events('--address', '10.231.79.300');
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /--address "10\.231\.79\.300" is not an IPv4 or IPv6 address/);
    const empty = await events('--container=');
    assert.equal(empty.exitCode, 1);
    assert.match(empty.stderr, /--container needs a container id/);
    const verify = await events('verify', '--address', '10.231.79.2');
    assert.equal(verify.exitCode, 1);
    assert.match(verify.stderr, /`events verify` checks the whole log: it takes no --address/);
  });
});

describe('events --follow --container', () => {
  let followDir: string;
  before(async () => {
    followDir = await mkdtemp(join(tmpdir(), 'ln-cli-events-follow-'));
  });
  after(() => rm(followDir, { recursive: true, force: true }));

  it("an endpoint's lines before its container was named are shown when the naming comes", async () => {
    const history = ADDRESS_HISTORY.events();
    const { log } = await EventLog.open(followDir, { host: 'h' });
    // web's network and web-1's endpoint, created and joined: not named yet when the follow starts.
    await log.append(history.slice(0, 4)).durable;
    const follow = execa(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), 'events', '--follow', '--json', '--container', 'web-1', '--state-dir', followDir], {
      cwd: REPO_ROOT,
      reject: false,
      env: { LEDGERNET_RUN_DIR: runDir },
      stdin: 'ignore',
    });
    let text = '';
    follow.stdout?.on('data', (c: Buffer) => (text += c.toString()));
    const seqs = () => text.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq);
    try {
      await new Promise((r) => setTimeout(r, 2_500));
      assert.deepEqual(seqs(), [], 'nothing concerns web-1 yet');
      await log.append(history.slice(4)).durable;
      for (let i = 0; i < 100 && seqs().length < 4; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 600));
      assert.deepEqual(seqs(), [3, 4, 5, 6], "its created and joined lines first, then the naming and its removal; job-7's are not web-1's");
    } finally {
      await log.close();
      follow.kill();
      await follow;
    }
  });
});

describe('status', () => {
  let statusDir: string;
  before(async () => {
    statusDir = await mkdtemp(join(tmpdir(), 'ln-cli-status-'));
    const { log } = await EventLog.open(statusDir, { host: 'h' });
    const [a] = ADDRESS_HISTORY.endpoints;
    await log.append([
      { type: 'network.created', data: networkSpec(NET, '10.231.79.0/24', '10.231.79.1/24') },
      { type: 'endpoint.created', data: { ...endpointSpec(NET, a, '10.231.79.2/24'), addressV6: 'fd00:79::2/64' } },
    ]).durable;
    await log.close();
  });
  after(() => rm(statusDir, { recursive: true, force: true }));
  const status = (...args: string[]) => runCli(['status', ...args, '--state-dir', statusDir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });

  it("an endpoint's IPv6 address is shown beside its IPv4 one (table and --json)", async () => {
    const text = await status();
    assert.match(text.stdout, /^1a1a1a1a1a1a +abcdef012345 +- +lnv-1a1a1a1a1a1 +10\.231\.79\.2\/24,fd00:79::2\/64 +no /m, text.stdout);
    const json = JSON.parse((await status('--json')).stdout) as { endpoints: { address: string; addressV6: string | null }[] };
    assert.deepEqual(json.endpoints.map((e) => [e.address, e.addressV6]), [['10.231.79.2/24', 'fd00:79::2/64']]);
  });
});

describe('events --network', () => {
  const OTHER = '0123456789abcdef'.repeat(4);
  let netDir: string;
  before(async () => {
    netDir = await mkdtemp(join(tmpdir(), 'ln-cli-events-net-'));
    const { log } = await EventLog.open(netDir, { host: 'h' });
    await log.append([
      { type: 'network.created', data: networkSpec(NET, '10.231.77.0/24', '10.231.77.1/24') },
      { type: 'network.created', data: networkSpec(OTHER, '10.231.78.0/24', '10.231.78.1/24') },
      { type: 'network.named', data: { networkId: NET, name: 'web' } },
      { type: 'network.named', data: { networkId: OTHER, name: 'db' } },
      { type: 'network.deleted', data: { networkId: NET } },
    ]).durable;
    await log.close();
  });
  after(() => rm(netDir, { recursive: true, force: true }));
  const events = (...args: string[]) => runCli(['events', ...args, '--state-dir', netDir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });

  it("by Docker's name or by id prefix: that network's events alone, each labelled with the name", async () => {
    for (const which of ['web', NET.slice(0, 12), NET]) {
      const r = await events('--network', which);
      assert.equal(r.exitCode, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.deepEqual(lines.map((l) => l.trim().split(/\s+/)[2]), ['network.created', 'network.named', 'network.deleted'], which);
      for (const l of lines) assert.match(l, / abcdef012345\(web\)(  10\.231\.77\.0\/24)?$/, which);
    }
    const json = await events('--network', 'db', '--json');
    assert.deepEqual(json.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq), [2, 4]);
  });

  it('a network the log does not know: exit 1 naming it; with verify or empty: refused', async () => {
    const none = await events('--network', 'nosuch');
    assert.equal(none.exitCode, 1);
    assert.match(none.stderr, /no event in .*events\.log concerns a network with the id, id prefix or Docker name "nosuch"/);
    assert.equal(none.stdout, '');
    const verify = await events('verify', '--network', 'web');
    assert.equal(verify.exitCode, 1);
    assert.match(verify.stderr, /`events verify` checks the whole log: it takes no --network/);
    const empty = await events('--network=');
    assert.equal(empty.exitCode, 1);
    assert.match(empty.stderr, /--network needs a network id/);
  });
});
