// Which firewall backend a daemon and the CLI use: `--firewall iptables|nftables|auto` (env
// LEDGERNET_FIREWALL). `auto` follows Docker: nftables when `docker info` reports its own
// FirewallBackend as nftables (Docker 29+ with --firewall-backend=nftables), else iptables.
// serve records its choice in the state dir, so `reconcile --dry-run` and `status` plan with the
// backend the daemon uses (the other backend's objects would otherwise show as orphans).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../errors.ts';
import { iptablesFirewall, nftablesFirewall } from '../kernel/index.ts';
import type { FirewallBackend } from '../kernel/types.ts';
import { DockerApi } from './docker-api.ts';

type Choice = 'iptables' | 'nftables' | 'auto';

const BACKENDS: Readonly<Record<Exclude<Choice, 'auto'>, FirewallBackend>> = { iptables: iptablesFirewall, nftables: nftablesFirewall };
const RECORD = 'firewall';

/** `--firewall` / LEDGERNET_FIREWALL; undefined when neither is given. */
export function parseFirewallChoice(value: string | undefined): Choice | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'iptables' || value === 'nftables' || value === 'auto') return value;
  throw new DriverError('LN_ERR_CONFIG', `--firewall (LEDGERNET_FIREWALL) must be iptables, nftables or auto, got ${JSON.stringify(value)}`);
}

/** Docker's own firewall backend as `docker info` reports it, or null (older engine, or no answer). */
async function dockerFirewall(socket: string | null): Promise<string | null> {
  if (!socket) return null;
  try {
    return (await new DockerApi(socket, 3_000).info()).FirewallBackend?.Driver ?? null;
  } catch {
    return null;
  }
}

/** The backend for `choice`, and why (for the log). */
export async function resolveFirewall(choice: Choice, dockerSocket: string | null): Promise<{ backend: FirewallBackend; why: string }> {
  if (choice !== 'auto') return { backend: BACKENDS[choice], why: `--firewall ${choice}` };
  const docker = await dockerFirewall(dockerSocket);
  const name = docker?.startsWith('nftables') ? 'nftables' : 'iptables';
  return { backend: BACKENDS[name], why: `auto: Docker's firewall backend is ${docker ?? 'iptables (not reported)'}` };
}

export async function recordFirewall(stateDir: string, backend: FirewallBackend): Promise<void> {
  await writeFile(join(stateDir, RECORD), `${backend.name}\n`, { mode: 0o600 });
}

/** For the CLI: the flag or env, else what the daemon recorded, else `auto`. */
export async function firewallForCli(stateDir: string, flag: string | undefined, dockerSocket: string | null): Promise<FirewallBackend> {
  const given = parseFirewallChoice(flag ?? process.env['LEDGERNET_FIREWALL']);
  const recorded = given ? undefined : await readFile(join(stateDir, RECORD), 'utf8').then((t) => parseFirewallChoice(t.trim()), () => undefined);
  return (await resolveFirewall(given ?? recorded ?? 'auto', dockerSocket)).backend;
}
