// The frame of an e2e file over the real dockerd that runs once per firewall backend
// (LEDGERNET_TEST_FIREWALLS=iptables runs one): the node:test hooks such files share, so each file
// says only what is its own (addresses, names, servers). For the file: no leak before, the
// operator's rules kept, IPv6 forwarding on and put back as found, everything the tests made removed
// after each test. For each backend: an outside namespace if asked (made before the daemon, removed
// after it) and a daemon without background repair (`--reconcile-interval 0`: drift stays until the
// test asks for `ledgernet reconcile`). Teardown runs also when a test or an earlier step failed.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, afterEach, before, describe } from 'node:test';
import { cleanupAll, docker, track, uniqueName } from './docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from './daemon.ts';
import { assertNoLeaks, waitNoLeaks } from './leaks.ts';
import { createOutside, type Outside } from './outside.ts';
import { notOurs, rulesSave } from './rules.ts';

export const FIREWALLS = (process.env['LEDGERNET_TEST_FIREWALLS'] ?? 'iptables,nftables').split(',');

const FORWARDING = ['all', 'default'].map((k) => `/proc/sys/net/ipv6/conf/${k}/forwarding`);

/** Turns IPv6 forwarding on (the host routes the containers' IPv6, as Docker does); the function returned puts it back as found. */
export async function ipv6ForwardingOn(): Promise<() => Promise<void>> {
  const saved = await Promise.all(FORWARDING.map(async (f) => (await readFile(f, 'utf8')).trim()));
  // Only `all` is written: it sets every interface (and `default`) to the same value.
  await writeFile(FORWARDING[0] ?? '', '1\n');
  return async () => {
    // `all` first (it resets every interface and `default`), then `default` exactly as found.
    for (const [i, f] of FORWARDING.entries()) await writeFile(f, `${saved[i]}\n`);
  };
}

/** A dump whose rules that are not ledgernet's must be the same after the file as before it. */
interface KeptRules {
  cmd: 'iptables-save' | 'ip6tables-save';
  args?: readonly string[];
  /** The assertion's message. */
  what: string;
}

export interface BackendSuiteOptions {
  /** The describe title for one backend. */
  title(fw: string): string;
  ipv6Forwarding?: boolean;
  keepRules?: readonly KeptRules[];
  /** waitNoLeaks after each backend (while its daemon still runs) and after the file. */
  noLeaksAfter?: { backend?: boolean; file?: boolean };
  /** The outside namespace of each backend: `createOutside(prefix, v6)`. */
  outside?: { prefix: string; v6?: string };
  /** The file's own set-up after the common one, and its teardown (also after a failure), before forwarding is put back. */
  setUp?(): Promise<void>;
  tearDown?(): Promise<void>;
  /** Each backend's own set-up (after the outside is made, before the daemon starts) and its teardown (after the daemon stops). */
  backendSetUp?(fw: string): Promise<void>;
  backendTearDown?(): Promise<void>;
}

export interface BackendSuite {
  /** The daemon of the backend under test; a test that restarts it sets the new one here. */
  daemon: DaemonHandle;
  /** The backend's outside namespace (with `outside` in the options). */
  readonly outside: Outside;
  /** `ledgernet reconcile --dry-run` against the daemon's state: exit code and output. */
  dryRun(): Promise<{ code: number; out: string }>;
  /** `ledgernet reconcile`; asserts it succeeded. */
  reconcile(): Promise<void>;
  /** `docker network create --driver ledgernet <args> <name>` (name from `prefix`, removed after the test); asserts it succeeded. */
  createNetwork(prefix: string, args: readonly string[]): Promise<{ name: string; id: string }>;
}

/** Registers the file's hooks and, per backend in FIREWALLS, a describe with its hooks and then `body(fw)`. */
export function describeEachBackend(opts: BackendSuiteOptions, body: (fw: string) => void): BackendSuite {
  let daemon: DaemonHandle | undefined;
  let outside: Outside | undefined;
  const suite: BackendSuite = {
    get daemon() {
      if (!daemon) throw new Error('no daemon runs (the backend set-up failed)');
      return daemon;
    },
    set daemon(d) {
      daemon = d;
    },
    get outside() {
      if (!outside) throw new Error('no outside namespace (not asked for, or its set-up failed)');
      return outside;
    },
    async dryRun() {
      const r = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', suite.daemon.stateDir]);
      return { code: r.exitCode, out: r.stdout + r.stderr };
    },
    async reconcile() {
      const fix = await ledgernetCli(['reconcile', '--state-dir', suite.daemon.stateDir]);
      assert.equal(fix.exitCode, 0, fix.stdout + fix.stderr);
    },
    async createNetwork(prefix, args) {
      const name = track.network(uniqueName(prefix));
      const r = await docker(['network', 'create', '--driver', 'ledgernet', ...args, name]);
      assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${suite.daemon.logs().slice(-2000)}`);
      const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', name], { check: true })).stdout.trim();
      return { name, id };
    },
  };
  fileHooks(opts);
  for (const fw of FIREWALLS) {
    describe(opts.title(fw), () => {
      before(async () => {
        if (opts.outside) outside = await createOutside(opts.outside.prefix, opts.outside.v6);
        await opts.backendSetUp?.(fw);
        daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '0', '--firewall', fw] });
      });
      after(() =>
        inTurn(
          async () => {
            await cleanupAll();
            // Removing the last network removes the chains and hooks (while the daemon still runs).
            if (opts.noLeaksAfter?.backend) await waitNoLeaks();
          },
          async () => {
            await stopAllDaemons();
            daemon = undefined;
          },
          async () => opts.backendTearDown?.(),
          async () => {
            await outside?.remove();
            outside = undefined;
          },
        ),
      );
      body(fw);
    });
  }
  return suite;
}

function fileHooks(opts: BackendSuiteOptions): void {
  let rulesBefore: string[] = [];
  let restoreForwarding: (() => Promise<void>) | undefined;
  const saveKept = () => Promise.all((opts.keepRules ?? []).map((k) => rulesSave(k.cmd, k.args)));
  before(async () => {
    await assertNoLeaks();
    rulesBefore = await saveKept();
    if (opts.ipv6Forwarding) restoreForwarding = await ipv6ForwardingOn();
    await opts.setUp?.();
  });
  afterEach(async () => {
    await cleanupAll();
  });
  after(async () => {
    await inTurn(
      async () => {
        await cleanupAll();
        if (opts.noLeaksAfter?.file) await waitNoLeaks();
      },
      stopAllDaemons,
      async () => opts.tearDown?.(),
      async () => restoreForwarding?.(),
    );
    const rulesAfter = await saveKept();
    for (const [i, k] of (opts.keepRules ?? []).entries()) assert.equal(notOurs(rulesAfter[i] ?? ''), notOurs(rulesBefore[i] ?? ''), k.what);
  });
}

/** Runs every step in turn, also after one failed (teardown must not stop half-way); then throws the first failure. */
async function inTurn(...steps: readonly (() => Promise<unknown>)[]): Promise<void> {
  let failed: { error: unknown } | undefined;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failed ??= { error };
    }
  }
  if (failed) throw failed.error;
}
