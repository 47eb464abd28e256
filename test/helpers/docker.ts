// Docker helpers for end-to-end tests: run the docker CLI (argument arrays, never a shell),
// make unique names, read addresses, ping between containers, poll, and remove what a test made.
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

/** Debian's client matches the 20.10 engine (API 1.41); /usr/local/bin/docker may be a newer CLI. */
export const DOCKER_BIN = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

/** Built locally by scripts/test-env.sh from busybox-static (images cannot be pulled). */
export const TEST_IMAGE = 'ledgernet-test-busybox:latest';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** The exit code, or -1 when the process did not exit on its own (signal, timeout, spawn error). */
  exitCode: number;
}

export interface DockerOptions {
  /** Throw when the exit code is not 0 (default false: the caller inspects exitCode). */
  check?: boolean;
  /** Kill docker after this long (default 60 s; 0 = never). Legacy plugin calls have no timeout. */
  timeoutMs?: number;
  /** Written to docker's stdin. */
  input?: string;
  env?: Record<string, string>;
}

/** Runs `docker ...args` and returns its output; never throws unless `check` is set. */
export async function docker(args: readonly string[], opts: DockerOptions = {}): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? 60_000;
  const r = await execa(DOCKER_BIN, args, {
    reject: false,
    stripFinalNewline: true,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    ...(timeout > 0 ? { timeout } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  const result: RunResult = {
    stdout: r.stdout,
    // When docker did not exit by itself, say why (timeout, signal, missing binary).
    stderr: r.exitCode === undefined ? [r.stderr, r.shortMessage].filter(Boolean).join('\n') : r.stderr,
    exitCode: r.exitCode ?? -1,
  };
  if (opts.check && result.exitCode !== 0) {
    throw new Error(`docker ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderr || result.stdout}`);
  }
  return result;
}

/**
 * A name unique to this process and call: `<prefix>-<pid>-<6 hex>`. Valid for containers and
 * networks (docker wants ≥2 chars of [a-zA-Z0-9_.-], starting alphanumeric).
 */
export function uniqueName(prefix: string): string {
  const clean = prefix.replace(/[^a-zA-Z0-9_.-]/g, '-').replace(/^[^a-zA-Z0-9]+/, '') || 'ln';
  return `${clean}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** What `docker inspect` says about one container's attachment to one network. */
export interface ContainerEndpoint {
  NetworkID: string;
  EndpointID: string;
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  GlobalIPv6Address: string;
  IPv6Gateway: string;
  MacAddress: string;
}

/** The container's endpoint on `network` (by network name); throws if it is not attached. */
export async function containerEndpoint(name: string, network: string): Promise<ContainerEndpoint> {
  const r = await docker(['inspect', '--type', 'container', '-f', '{{json .NetworkSettings.Networks}}', name]);
  if (r.exitCode !== 0) throw new Error(`docker inspect ${name} failed: ${r.stderr}`);
  const networks = JSON.parse(r.stdout) as Record<string, ContainerEndpoint> | null;
  const ep = networks?.[network];
  if (!ep) {
    const on = Object.keys(networks ?? {}).join(', ') || 'none';
    throw new Error(`container ${name} is not attached to network ${network} (attached to: ${on})`);
  }
  return ep;
}

/** The container's IPv4 address on `network`, without prefix length; throws if it has none. */
export async function containerIp(name: string, network: string): Promise<string> {
  const ep = await containerEndpoint(name, network);
  if (!ep.IPAddress) throw new Error(`container ${name} has no IPv4 address on network ${network}`);
  return ep.IPAddress;
}

/** True when `count` pings from inside `fromContainer` to `ip` (v4 or v6) all get a reply. */
export async function ping(fromContainer: string, ip: string, count = 2): Promise<boolean> {
  // -W: seconds to wait for each reply; busybox ping exits 0 only if replies came back.
  const r = await docker(['exec', fromContainer, 'ping', '-c', String(count), '-W', '1', ip], {
    timeoutMs: 10_000 + count * 2_000,
  });
  return r.exitCode === 0;
}

/**
 * Waits until busybox httpd in `container` answers on 127.0.0.1:`port` from inside: `docker run -d`
 * returns once the container's shell runs, a moment before its httpd listens (a loaded host made
 * a first request from outside fail).
 */
export async function waitServing(container: string, port: number): Promise<void> {
  await waitFor(
    async () => (await docker(['exec', container, 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${port}/`], { timeoutMs: 10_000 })).exitCode === 0,
    { timeoutMs: 20_000, intervalMs: 100, what: `${container} to serve HTTP on port ${port}` },
  );
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Said in the timeout error: "timed out after 10000 ms waiting for <what>". */
  what: string;
}

/**
 * Polls `fn` until it returns something other than `false`, `null` or `undefined` without throwing,
 * and returns that value. For assertion-style checks, throw on failure and `return true`.
 * On timeout it throws, naming `what` and the last error or value seen.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitForOptions,
): Promise<Exclude<T, false | null | undefined>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last = 'it never returned';
  for (;;) {
    try {
      const v = await fn();
      if (v !== false && v !== null && v !== undefined) return v as Exclude<T, false | null | undefined>;
      last = `last result: ${String(v)}`;
    } catch (e) {
      last = `last error: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what} (${last})`);
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
}

const tracked = { containers: new Set<string>(), networks: new Set<string>() };

/** Registers names for `cleanupAll()`; each returns the name, so `track.container(uniqueName('c'))`. */
export const track = {
  container(name: string): string {
    tracked.containers.add(name);
    return name;
  },
  network(name: string): string {
    tracked.networks.add(name);
    return name;
  },
};

/**
 * Force-removes every tracked container, then every tracked network, and forgets them. Never throws;
 * returns the problems it saw (a name that was already gone is not one). Call it while the ledgernet
 * daemon still runs: without it, docker retries each network delete for ~15 s.
 */
export async function cleanupAll(): Promise<string[]> {
  const problems: string[] = [];
  const containers = [...tracked.containers];
  const networks = [...tracked.networks];
  tracked.containers.clear();
  tracked.networks.clear();
  try {
    if (containers.length > 0) {
      const r = await docker(['rm', '--force', '--volumes', ...containers], { timeoutMs: 120_000 });
      if (r.exitCode !== 0) problems.push(...realProblems(r.stderr));
    }
    for (const n of networks) {
      const r = await docker(['network', 'rm', n], { timeoutMs: 120_000 });
      if (r.exitCode !== 0) problems.push(...realProblems(r.stderr));
    }
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  }
  if (problems.length > 0) console.error(`cleanupAll: ${problems.join('; ')}`);
  return problems;
}

function realProblems(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/no such (container|network)|not found/i.test(l));
}
