// Which firewall backend a daemon and the CLI use: `--firewall iptables|nftables|auto` (env
// LEDGERNET_FIREWALL). `auto` follows Docker: nftables when `docker info` reports its own
// FirewallBackend as nftables (Docker 29+ with --firewall-backend=nftables), else iptables.
// serve records its choice in the state dir, so `reconcile --dry-run` and `status` plan with the
// backend the daemon uses (the other backend's objects would otherwise show as orphans).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../errors.ts';
import type { FirewallBackend, FirewallPolicy } from '../kernel/types.ts';
import { DockerApi } from './docker-api.ts';
import { recordSwitch, readSwitch } from './switches.ts';
import { parseSwitch } from '../config.ts';

type Choice = 'iptables' | 'nftables' | 'auto';

/** Loaded when a backend is chosen, not with the flag parsers: the supervisor process, which parses the flags, never loads the kernel (bench row 9). */
async function backendOf(name: Exclude<Choice, 'auto'>): Promise<FirewallBackend> {
  const kernel = await import('../kernel/index.ts');
  return name === 'nftables' ? kernel.nftablesFirewall : kernel.iptablesFirewall;
}
const RECORD = 'firewall';

/** `--firewall` / LEDGERNET_FIREWALL; undefined when neither is given. */
export function parseFirewallChoice(value: string | undefined): Choice | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'iptables' || value === 'nftables' || value === 'auto') return value;
  throw new DriverError('LN_ERR_CONFIG', `--firewall (LEDGERNET_FIREWALL) must be iptables, nftables or auto, got ${JSON.stringify(value)}`);
}

/**
 * Docker's own firewall backend as `docker info` reports it: its driver, '' when Docker answered
 * without one (Docker < 29 has no FirewallBackend: iptables), null when nobody answered.
 */
async function dockerFirewall(socket: string | null, waitMs: number): Promise<string | null> {
  if (!socket) return null;
  try {
    return (await new DockerApi(socket, waitMs).info()).FirewallBackend?.Driver ?? '';
  } catch {
    return null;
  }
}

interface Resolved {
  readonly backend: FirewallBackend;
  /** For the log. */
  readonly why: string;
  /** `auto` and Docker did not answer (it starts after ledgernet): ask again later. */
  readonly unsure: boolean;
}

/** How long `docker info` is waited for; at serve's start with a backend recorded, only briefly (see resolveFirewall). */
const DOCKER_WAIT_MS = 3_000;
const RECORDED_WAIT_MS = 300;

/**
 * The backend for `choice`. `auto` asks Docker; when Docker does not answer (not started yet:
 * ledgernet starts before it), the backend recorded in `stateDir` by the last serve, else iptables.
 * `atStart` (serve, before it listens): with a backend recorded, Docker is waited for only
 * RECORDED_WAIT_MS. A dockerd that starts first (a boot without systemd's ordering) accepts the
 * call but answers nothing until it has restored its containers, and that waits for this driver:
 * the full wait held Docker's boot up by 3 s and its plugin lookup's backoff by 4 more. Unsure
 * either way, so the daemon asks again in the background and switches if Docker says otherwise.
 */
export async function resolveFirewall(choice: Choice, dockerSocket: string | null, stateDir?: string, opts: { readonly atStart?: boolean } = {}): Promise<Resolved> {
  if (choice !== 'auto') return { backend: await backendOf(choice), why: `--firewall ${choice}`, unsure: false };
  const recorded = stateDir === undefined ? undefined : await readRecorded(stateDir);
  const waitMs = opts.atStart && recorded ? RECORDED_WAIT_MS : DOCKER_WAIT_MS;
  if (!dockerSocket) return { backend: await backendOf('iptables'), why: "auto: Docker's API is off (--docker-socket ''), so Docker was not asked: iptables", unsure: false };
  const docker = await dockerFirewall(dockerSocket, waitMs);
  if (docker === null) {
    const name = recorded === 'nftables' ? 'nftables' : 'iptables';
    return { backend: await backendOf(name), why: `auto: Docker did not answer within ${waitMs} ms (not started, or still restoring its containers); ${recorded ? 'as recorded by the last serve' : 'the default'}, asked again in the background`, unsure: true };
  }
  const name = docker?.startsWith('nftables') ? 'nftables' : 'iptables';
  return { backend: await backendOf(name), why: `auto: Docker's firewall backend is ${docker || 'iptables (not reported: Docker before 29)'}`, unsure: false };
}

const readRecorded = (stateDir: string) => readFile(join(stateDir, RECORD), 'utf8').then((t) => parseFirewallChoice(t.trim()), () => undefined);

/**
 * A backend that delegates to another, which `use` swaps between passes (auto, once Docker
 * answers). With `directRouting` (serve --allow-direct-routing) every network is planned without
 * direct-access protection.
 */
export function switchableFirewall(initial: FirewallBackend, directRouting = false): FirewallBackend & { use(next: FirewallBackend): void } {
  let current = initial;
  return {
    get name() {
      return current.name;
    },
    plan: (policy, observed) => current.plan(directRouting ? withDirectRouting(policy) : policy, observed),
    planFrom: (policy, before, observed) => {
      const wrap = (p: FirewallPolicy) => (directRouting ? withDirectRouting(p) : p);
      return current.planFrom ? current.planFrom(wrap(policy), wrap(before), observed) : current.plan(wrap(policy), observed);
    },
    apply: (changes, kernel) => current.apply(changes, kernel),
    after: (observed, applied) => current.after(observed, applied),
    use(next) {
      current = next;
    },
  };
}

export async function recordFirewall(stateDir: string, backend: FirewallBackend): Promise<void> {
  await writeFile(join(stateDir, RECORD), `${backend.name}\n`, { mode: 0o600 });
}

// The same object for the same policy (and network): the backends make a network's rules once per object (planFrom).
const direct = new WeakMap<object, object>();
const once = <T extends object>(o: T, make: () => T): T => {
  let d = direct.get(o) as T | undefined;
  if (d === undefined) direct.set(o, (d = make()));
  return d;
};
const withDirectRouting = (p: FirewallPolicy): FirewallPolicy =>
  once(p, () => ({ ...p, networks: p.networks.map((n) => once(n, () => ({ ...n, directRouting: true }))) }));

/**
 * `--allow-direct-routing` / LEDGERNET_ALLOW_DIRECT_ROUTING (`1`/`true`, `0`/`false`; '' is not set);
 * undefined when neither is given.
 */
export function parseDirectRouting(flag: boolean | undefined, env: string | undefined): boolean | undefined {
  return parseSwitch(flag, 'LEDGERNET_ALLOW_DIRECT_ROUTING', env);
}

/** serve records whether it runs with --allow-direct-routing, so the CLI's plans agree with it. */
export const recordDirectRouting = (stateDir: string, on: boolean): Promise<void> => recordSwitch(stateDir, 'directRouting', on);

/** For the CLI: the flag or `env`, else what the daemon recorded, else `auto`. */
export async function firewallForCli(stateDir: string, flag: string | undefined, dockerSocket: string | null, directFlag?: boolean, env = process.env): Promise<FirewallBackend> {
  const given = parseFirewallChoice(flag ?? env['LEDGERNET_FIREWALL']);
  const recorded = given ? undefined : await readRecorded(stateDir);
  const backend = (await resolveFirewall(given ?? recorded ?? 'auto', dockerSocket, stateDir)).backend;
  const direct = parseDirectRouting(directFlag, env['LEDGERNET_ALLOW_DIRECT_ROUTING']) ?? (await readSwitch(stateDir, 'directRouting'));
  return direct ? switchableFirewall(backend, true) : backend;
}
