// Leak checks for end-to-end tests: after a test, the host must hold nothing of ledgernet's:
// no lnb-*/lnv-* links or links aliased "ledgernet:…", no LEDGERNET chains or "ledgernet:" rules,
// no nftables table inet ledgernet, no docker networks with the ledgernet driver.
import { execa } from 'execa';
import { docker, waitFor } from './docker.ts';

interface IpLink {
  ifname: string;
  ifalias?: string;
}

/** Lists what ledgernet left on the host, one line each; empty when clean. Throws if it cannot look. */
export async function findLeaks(): Promise<string[]> {
  const [links, rules, table, networks] = await Promise.all([leakedLinks(), leakedRules(), leakedNftTable(), leakedNetworks()]);
  return [...links, ...rules, ...table, ...networks];
}

/** Throws, listing every leak, unless the host holds nothing of ledgernet's. */
export async function assertNoLeaks(): Promise<void> {
  const leaks = await findLeaks();
  if (leaks.length > 0) throw new Error(`ledgernet leaked ${leaks.length} object(s):\n  ${leaks.join('\n  ')}`);
}

/** Polls assertNoLeaks until it passes (deletes converge asynchronously); throws after timeoutMs. */
export async function waitNoLeaks(timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => {
      await assertNoLeaks();
      return true;
    },
    { timeoutMs, intervalMs: 200, what: 'the host to hold nothing of ledgernet' },
  );
}

async function leakedLinks(): Promise<string[]> {
  const r = await execa('ip', ['-j', '-d', 'link', 'show'], { stdin: 'ignore' });
  const links = JSON.parse(r.stdout || '[]') as IpLink[];
  return links
    .filter((l) => /^ln[bv]-/.test(l.ifname) || (l.ifalias ?? '').startsWith('ledgernet:'))
    .map((l) => `link ${l.ifname}${l.ifalias ? ` (alias ${l.ifalias})` : ''}`);
}

async function leakedRules(): Promise<string[]> {
  const out: string[] = [];
  for (const cmd of ['iptables-save', 'ip6tables-save']) {
    const r = await execa(cmd, [], { stdin: 'ignore', reject: false });
    if (r.exitCode !== 0) {
      // IPv6 netfilter may be absent; IPv4 must be readable.
      if (cmd === 'iptables-save') throw new Error(`iptables-save failed (exit ${r.exitCode}): ${r.stderr}`);
      continue;
    }
    let table = '?';
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      if (line.includes('LEDGERNET') || line.includes('ledgernet:')) out.push(`${cmd} -t ${table}: ${line}`);
    }
  }
  return out;
}

/** The nftables backend's table (none when nft is not installed). */
async function leakedNftTable(): Promise<string[]> {
  const r = await execa('nft', ['list', 'table', 'inet', 'ledgernet'], { stdin: 'ignore', reject: false });
  return r.exitCode === 0 ? ['nft table inet ledgernet'] : [];
}

async function leakedNetworks(): Promise<string[]> {
  const r = await docker(['network', 'ls', '--filter', 'driver=ledgernet', '--format', '{{.ID}} {{.Name}}']);
  if (r.exitCode !== 0) throw new Error(`docker network ls failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => `docker network ${l}`);
}
