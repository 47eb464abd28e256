// The crash-chaos scenario, shared by test/e2e/chaos.test.ts (smoke size) and bench/chaos.ts
// (the big run): container operations (run, connect, disconnect, stop, rm) at a fixed concurrency
// on three networks of one driver, while an optional "chaos" function SIGKILLs the daemon; then
// the checks a user would make: no address held twice, every running container reaches its
// neighbours, every network can be removed.
import { randomInt } from 'node:crypto';
import { TEST_IMAGE, docker, uniqueName } from './docker.ts';

export interface ScenarioOptions {
  /** 'ledgernet', 'bridge', … */
  readonly driver: string;
  /** Three subnets, one per network, e.g. ['10.231.210.0/24', …]. */
  readonly subnets: readonly [string, string, string];
  /** Extra `docker network create` args per network (e.g. ['--ipam-driver', 'ledgernet']). */
  readonly networkArgs?: readonly (readonly string[])[];
  readonly operations: number;
  readonly concurrency: number;
  /** At most this many containers exist at once (default 12). */
  readonly maxContainers?: number;
  /**
   * Runs alongside the operations until `until()` says the operations are done; the operations go
   * on until chaos resolves too (so a minimum number of kills is reached).
   */
  readonly chaos?: (opsDone: () => boolean) => Promise<void>;
  readonly log?: (line: string) => void;
  /** Runs after the checks, before containers and networks are removed. */
  readonly beforeTeardown?: () => Promise<void>;
}

export interface OpResult {
  readonly op: string;
  readonly args: readonly string[];
  readonly ok: boolean;
  readonly ms: number;
  readonly stderr: string;
}

export interface ScenarioResult {
  readonly networks: readonly string[];
  readonly results: readonly OpResult[];
  readonly failures: readonly OpResult[];
  readonly ms: number;
  /** Per network: addresses held by more than one endpoint (should be empty). */
  readonly duplicateAddresses: readonly string[];
  /** "a -> b (ip) on net" for every failed neighbour ping. */
  readonly unreachable: readonly string[];
  readonly pings: number;
  /** `docker network rm` failures after all containers were removed. */
  readonly networkRmFailures: readonly string[];
  readonly counts: Readonly<Record<string, number>>;
}

interface Ctr {
  readonly name: string;
  running: boolean;
  busy: boolean;
  readonly networks: Set<string>;
}

const pick = <T>(xs: readonly T[]): T | undefined => (xs.length === 0 ? undefined : xs[randomInt(xs.length)]);

/** Creates the networks, runs the operations (and chaos), checks, and removes everything. */
export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const log = o.log ?? (() => undefined);
  const max = o.maxContainers ?? 12;
  const networks = o.subnets.map(() => uniqueName(`chaos-${o.driver.replace(/[^a-z]/g, '')}`));
  const containers = new Map<string, Ctr>();
  const results: OpResult[] = [];
  const t0 = Date.now();
  let created = 0;
  try {
    // A failed create counts as a failed operation, and is run again as its user would (twice at most).
    for (const [i, n] of networks.entries()) {
      const args = ['network', 'create', '--driver', o.driver, '--subnet', o.subnets[i] as string, ...(o.networkArgs?.[i] ?? []), n];
      for (let attempt = 1; ; attempt++) {
        const s = Date.now();
        const r = await docker(args);
        if (r.exitCode === 0) break;
        results.push({ op: 'network create', args, ok: false, ms: Date.now() - s, stderr: r.stderr });
        log(`FAILED network create: docker ${args.join(' ')}: ${r.stderr}`);
        if (attempt === 3) throw new Error(`network create ${n} failed: ${r.stderr}`);
      }
    }

    const record = async (op: string, args: string[], after: (ok: boolean) => void): Promise<void> => {
      const s = Date.now();
      const r = await docker(args, { timeoutMs: 120_000 });
      const ok = r.exitCode === 0;
      after(ok);
      results.push({ op, args, ok, ms: Date.now() - s, stderr: r.stderr });
      if (!ok) log(`FAILED ${op}: docker ${args.join(' ')}: ${r.stderr}`);
    };

    const step = async (): Promise<boolean> => {
      const idle = [...containers.values()].filter((c) => !c.busy);
      const running = idle.filter((c) => c.running);
      const choices: string[] = [];
      if (containers.size < max) choices.push('run', 'run', 'run');
      if (running.some((c) => c.networks.size < networks.length)) choices.push('connect', 'connect');
      if (running.some((c) => c.networks.size > 1)) choices.push('disconnect', 'disconnect');
      if (running.length > 0) choices.push('stop');
      if (idle.length > 0) choices.push('rm', 'rm');
      const op = pick(choices);
      if (!op) return false;
      if (op === 'run') {
        const name = uniqueName('chaos');
        const net = pick(networks) as string;
        const c: Ctr = { name, running: false, busy: true, networks: new Set() };
        containers.set(name, c);
        created += 1;
        await record('run', ['run', '-d', '--name', name, '--network', net, TEST_IMAGE, 'sleep', '3600'], (ok) => {
          // A failed run may leave a Created container behind: keep it for rm.
          c.running = ok;
          if (ok) c.networks.add(net);
        });
        c.busy = false;
        return true;
      }
      const c =
        op === 'connect'
          ? pick(running.filter((x) => x.networks.size < networks.length))
          : op === 'disconnect'
            ? pick(running.filter((x) => x.networks.size > 1))
            : op === 'stop'
              ? pick(running)
              : pick(idle);
      if (!c) return false;
      c.busy = true;
      try {
        if (op === 'connect') {
          const net = pick(networks.filter((n) => !c.networks.has(n))) as string;
          await record('connect', ['network', 'connect', net, c.name], (ok) => ok && c.networks.add(net));
        } else if (op === 'disconnect') {
          const net = pick([...c.networks]) as string;
          await record('disconnect', ['network', 'disconnect', net, c.name], (ok) => ok && c.networks.delete(net));
        } else if (op === 'stop') {
          await record('stop', ['stop', '-t', '0', c.name], (ok) => {
            if (ok) c.running = false;
          });
        } else {
          await record('rm', ['rm', '-f', c.name], (ok) => ok && containers.delete(c.name));
        }
      } finally {
        c.busy = false;
      }
      return true;
    };

    let chaosDone = !o.chaos;
    const opsDone = () => results.length >= o.operations;
    const chaos = o.chaos?.(opsDone).finally(() => (chaosDone = true));
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (!(opsDone() && chaosDone)) {
          if (!(await step())) await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    await chaos;
    const ms = Date.now() - t0;

    // No address held twice, in Docker's view.
    const duplicateAddresses: string[] = [];
    for (const n of networks) {
      const r = await docker(['network', 'inspect', '-f', '{{json .Containers}}', n], { check: true });
      const eps = Object.values((JSON.parse(r.stdout) ?? {}) as Record<string, { Name: string; IPv4Address: string }>);
      const seen = new Map<string, string>();
      for (const ep of eps) {
        const ip = ep.IPv4Address.split('/')[0] ?? '';
        if (seen.has(ip)) duplicateAddresses.push(`${n}: ${ip} held by ${seen.get(ip)} and ${ep.Name}`);
        seen.set(ip, ep.Name);
      }
    }

    // Every running container reaches every neighbour on each of its networks.
    const unreachable: string[] = [];
    let pings = 0;
    const live = [...containers.values()].filter((c) => c.running);
    const ips = new Map<string, Record<string, { IPAddress: string }>>();
    for (const c of live) {
      const r = await docker(['inspect', '-f', '{{json .NetworkSettings.Networks}}', c.name], { check: true });
      ips.set(c.name, JSON.parse(r.stdout) as Record<string, { IPAddress: string }>);
    }
    await Promise.all(
      live.map(async (c) => {
        const targets: { to: string; ip: string; net: string }[] = [];
        for (const net of c.networks) {
          for (const other of live) {
            const ip = ips.get(other.name)?.[net]?.IPAddress;
            if (other !== c && other.networks.has(net) && ip) targets.push({ to: other.name, ip, net });
          }
        }
        if (targets.length === 0) return;
        pings += targets.length;
        const script = targets.map((t) => `ping -c 1 -W 2 ${t.ip} >/dev/null 2>&1 || ping -c 2 -W 2 ${t.ip} >/dev/null 2>&1 || echo ${t.ip}`).join('; ');
        const r = await docker(['exec', c.name, 'sh', '-c', script], { timeoutMs: 120_000 });
        for (const bad of r.stdout.split('\n').filter(Boolean)) {
          const t = targets.find((x) => x.ip === bad);
          unreachable.push(`${c.name} -> ${t?.to ?? '?'} (${bad}) on ${t?.net ?? '?'}`);
        }
        if (r.exitCode !== 0) unreachable.push(`${c.name}: docker exec failed: ${r.stderr}`);
      }),
    );

    await o.beforeTeardown?.();
    // Remove every container, then every network: each network must be removable.
    const names = [...containers.keys()];
    if (names.length > 0) await docker(['rm', '-f', ...names], { timeoutMs: 120_000 });
    containers.clear();
    const networkRmFailures: string[] = [];
    for (const n of networks) {
      const r = await docker(['network', 'rm', n], { timeoutMs: 120_000 });
      if (r.exitCode !== 0) networkRmFailures.push(`${n}: ${r.stderr}`);
    }
    const counts: Record<string, number> = { created };
    for (const r of results) counts[r.op] = (counts[r.op] ?? 0) + 1;
    return { networks, results, failures: results.filter((r) => !r.ok), ms, duplicateAddresses, unreachable, pings, networkRmFailures, counts };
  } finally {
    // Whatever happened, leave nothing behind (a no-op when the checks above removed it all).
    const names = [...containers.keys()];
    if (names.length > 0) await docker(['rm', '-f', ...names], { timeoutMs: 120_000 });
    for (const n of networks) await docker(['network', 'rm', n], { timeoutMs: 60_000 });
  }
}

/** A random pause between `min` and `max` ms. */
export function pause(min: number, max: number): Promise<void> {
  return new Promise((r) => setTimeout(r, min + randomInt(Math.max(1, max - min))));
}
