// Before a test run (scripts/test.sh runs this under the test lock): removes what an earlier run
// left on the host when it was cut off mid-way (the machine stopped, a CI job cancelled), so the
// leak checks of this run see only what this run makes. A run that ends normally leaves nothing;
// a killed one can leave Docker networks and containers, links, firewall rules, the nftables table
// and its tests' network namespaces. Only ledgernet's objects are touched (the marks
// test/helpers/leaks.ts looks for; namespaces named ln<what>-<pid>-<hex> whose process is gone;
// multi-host test beds with their processes), and each removal is printed.
import { existsSync } from 'node:fs';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { docker } from './docker.ts';
import { findLeaks } from './leaks.ts';

function say(what: string): void {
  process.stderr.write(`test sweep: removed ${what} (left by an earlier run that was cut off)\n`);
}

async function sweepDocker(): Promise<void> {
  const nets = await docker(['network', 'ls', '--filter', 'driver=ledgernet', '--format', '{{.Name}}']);
  if (nets.exitCode !== 0) throw new Error(`docker network ls failed: ${nets.stderr}`);
  for (const net of nets.stdout.split('\n').filter((n) => n.trim() !== '')) {
    const ps = await docker(['ps', '-aq', '--filter', `network=${net}`]);
    for (const id of ps.stdout.split('\n').filter((c) => c.trim() !== '')) {
      const rm = await docker(['rm', '-f', id]);
      if (rm.exitCode === 0) say(`container ${id} on ${net}`);
    }
    // Without a running plugin Docker answers with an error after ~15 s but removes it anyway.
    const rm = await docker(['network', 'rm', net]);
    const gone = rm.exitCode === 0 || (await docker(['network', 'inspect', net])).exitCode !== 0;
    if (gone) say(`docker network ${net}`);
    else process.stderr.write(`test sweep: could not remove docker network ${net}: ${rm.stderr.trim()}\n`);
  }
}

interface IpLink {
  ifname: string;
  ifalias?: string;
}

async function sweepLinks(): Promise<void> {
  const r = await execa('ip', ['-j', 'link', 'show'], { stdin: 'ignore' });
  for (const l of JSON.parse(r.stdout || '[]') as IpLink[]) {
    if (!/^ln[bvt]-/.test(l.ifname) && !(l.ifalias ?? '').startsWith('ledgernet:')) continue;
    const del = await execa('ip', ['link', 'del', l.ifname], { stdin: 'ignore', reject: false });
    if (del.exitCode === 0) say(`link ${l.ifname}`);
  }
}

/** Deletes every rule that names ledgernet, then its chains, table by table, in one restore each. */
async function sweepRules(): Promise<void> {
  for (const [save, restore] of [
    ['iptables-save', 'iptables-restore'],
    ['ip6tables-save', 'ip6tables-restore'],
  ] as const) {
    const r = await execa(save, [], { stdin: 'ignore', reject: false });
    if (r.exitCode !== 0) continue;
    const script: string[] = [];
    let table = '';
    let chains: string[] = [];
    let rules: string[] = [];
    const flushTable = (): void => {
      if (rules.length + chains.length === 0) return;
      script.push(`*${table}`, ...rules, ...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`), 'COMMIT');
    };
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) {
        table = line.slice(1);
        chains = [];
        rules = [];
      } else if (line.startsWith(':LEDGERNET')) chains.push(line.slice(1).split(' ')[0] ?? '');
      else if (line.startsWith('-A ') && !line.startsWith('-A LEDGERNET') && (line.includes('LEDGERNET') || line.includes('ledgernet:'))) {
        rules.push(`-D ${line.slice(3)}`);
      } else if (line === 'COMMIT') flushTable();
    }
    if (script.length === 0) continue;
    const rr = await execa(restore, ['--noflush'], { input: `${script.join('\n')}\n`, reject: false });
    if (rr.exitCode === 0) say(`${script.filter((l) => l.startsWith('-D') || l.startsWith('-X')).length} ${save.replace('-save', '')} rule(s)/chain(s)`);
    else process.stderr.write(`test sweep: ${restore} failed: ${rr.stderr.trim()}\n`);
  }
}

/** Test namespaces are named `ln<what>-<pid>-<hex>` (`<what>` may hold dashes: `lnshape-mtuc`); one whose test process is gone is a leftover. */
async function sweepNamespaces(): Promise<void> {
  const r = await execa('ip', ['netns', 'list'], { stdin: 'ignore', reject: false });
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^ln[a-z0-9-]*-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m || existsSync(`/proc/${m[1]}`)) continue;
    const del = await execa('ip', ['netns', 'del', name], { stdin: 'ignore', reject: false });
    if (del.exitCode === 0) say(`network namespace ${name}`);
  }
}

/**
 * A multi-host test bed (test/helpers/multihost.ts: namespaces lnmh<pid>-h<n> and lnmh<pid>-ul,
 * a dir /tmp/mh.*) whose test file was killed (the runner's timeout runs no after hook) keeps its
 * ledgernet daemons, nats-servers and holders running inside the namespaces. Beds are made only
 * under the test lock, which this sweep holds, so every bed found now is a leftover.
 */
async function sweepTestbeds(): Promise<void> {
  const r = await execa('ip', ['netns', 'list'], { stdin: 'ignore', reject: false });
  const names = r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => /^lnmh\d+-(h\d+|ul)$/.test(n));
  for (const name of names) {
    const pids = (await execa('ip', ['netns', 'pids', name], { stdin: 'ignore', reject: false })).stdout.split('\n').filter((p) => /^\d+$/.test(p));
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const del = await execa('ip', ['netns', 'del', name], { stdin: 'ignore', reject: false });
    if (del.exitCode === 0) say(`test-bed namespace ${name} and its ${pids.length} process(es)`);
  }
  for (const d of await readdir('/tmp').catch(() => [] as string[])) {
    // A bed's dir (mkdtemp '/tmp/mh.'): one folder per host, h1 always.
    if (!d.startsWith('mh.') || !existsSync(join('/tmp', d, 'h1'))) continue;
    await rm(join('/tmp', d), { recursive: true, force: true }).catch(() => undefined);
    say(`test-bed dir /tmp/${d}`);
  }
  for (const root of ['/sys/fs/cgroup', ...(await readdir('/sys/fs/cgroup').catch(() => [] as string[])).map((d) => join('/sys/fs/cgroup', d))]) {
    for (const d of await readdir(root).catch(() => [] as string[])) {
      if (/^lnmh\d+-h\d+$/.test(d)) await rmdir(join(root, d)).catch(() => undefined);
    }
  }
}

async function sweepNft(): Promise<void> {
  const r = await execa('nft', ['delete', 'table', 'inet', 'ledgernet'], { stdin: 'ignore', reject: false });
  if (r.exitCode === 0) say('nft table inet ledgernet');
}

await sweepTestbeds();
await sweepDocker();
await sweepLinks();
await sweepRules();
await sweepNft();
await sweepNamespaces();
const after = await findLeaks();
if (after.length > 0) {
  process.stderr.write(`test sweep: still on the host after the sweep (the leak checks will fail):\n  ${after.join('\n  ')}\n`);
}
