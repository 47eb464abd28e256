// The only code in ledgernet that runs processes. Argument arrays only, never a shell; every
// failure leaves here as one DriverError, with the process's result (exit code, stderr) as its cause.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { DriverError } from '../errors.ts';
import {
  IP_BATCH_ARGS,
  IP_BATCH_LINES_PER_COMMAND,
  countCompletedLines,
  renderIpBatch,
} from './ip-batch.ts';
import { parseAddrs } from './parse-addrs.ts';
import { createObserve } from './observe.ts';
import { netlinkHost, netlinkLinkNamed, netlinkPrefixes } from './observe-netlink.ts';
import type { NfChangeWatch } from './nf-changes.ts';
import { readNfGeneration } from './nf-generation.ts';
import { flushConntrack } from './conntrack.ts';
import { openNetlink, openRequests, type Netlink, type NetlinkRequests } from './netlink.ts';
import { applyLinkChanges } from './iproute/rtnl.ts';
import { parseIpBatchErrors } from './parse-errors.ts';
import { parseNftTable } from './nftables/parse.ts';
import { NFT_FAMILY, NFT_TABLE } from './nftables/table.ts';
import { parseLinks } from './parse-links.ts';
import { parseRoutes } from './parse-routes.ts';
import { acceptRaPath, disableIpv6Path, ifaceSysctl, netSysctlPath, parseSysctl, procSysNet, routeLocalnetPath } from './parse-sysctl.ts';
import { parseTcBatchErrors } from './parse-tc.ts';
import { runChanges } from './batch.ts';
import { createRunner, exitError, failOnExit, firstLine, type Outcome } from './runner.ts';
import { createNft, type NftRoute } from './nft-library.ts';
import { IP_LINE_LINKS, ipLines } from './iproute/render.ts';
import { failedSection, joinInputs, restoreInput } from './iptables/restore.ts';
import { tcLines } from './tc/render.ts';
import { applyShapingChanges } from './tc/rtnl.ts';
import type { Addr, BatchFailure, BatchResult, ChangesResult, HostKernel, LinkChange, NftTable, Route } from './types.ts';

async function writeProcRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void> {
  for (const [iface, on] of Object.entries(values)) {
    try {
      await writeFile(routeLocalnetPath(iface), on ? '1\n' : '0\n');
    } catch (e) {
      throw new DriverError('LN_ERR_KERNEL_EXEC', `could not set route_localnet of ${iface}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** The kernel's answer to an IPv6 address added to a device whose disable_ipv6 is 1. */
const IPV6_DISABLED = /IPv6 is disabled on this device/;
/** How long after a read of our nft table the full observe takes the table our own transactions made for it (see readNftables). */
const OWN_TRUST_MS = 30_000;

/**
 * Link changes applied by `apply`; an IPv6 address the kernel refused because IPv6 is disabled on
 * its device (a host with net.ipv6.conf.default.disable_ipv6=1 makes every new bridge so) has IPv6
 * turned on there (`enable`), as Docker does for its own IPv6 bridges, and is added again. Only
 * ledgernet's bridges get addresses (the plan adds none elsewhere). A failure to turn it on keeps
 * the first failure.
 */
export async function withIpv6Enabled(
  changes: readonly LinkChange[],
  apply: (changes: readonly LinkChange[]) => Promise<ChangesResult>,
  enable: (devs: readonly string[]) => Promise<void>,
): Promise<ChangesResult> {
  const first = await apply(changes);
  const blocked = first.failures.filter((f) => {
    const c = changes[f.index];
    return c?.kind === 'addr.add' && c.cidr.includes(':') && IPV6_DISABLED.test(f.message);
  });
  if (blocked.length === 0) return first;
  const again = blocked.map((f) => changes[f.index] as Extract<LinkChange, { kind: 'addr.add' }>);
  try {
    await enable([...new Set(again.map((c) => c.dev))]);
  } catch {
    return first;
  }
  const second = await apply(again);
  const retried = new Set(blocked.map((f) => f.index));
  return {
    failures: [
      ...first.failures.filter((f) => !retried.has(f.index)),
      ...second.failures.map((f) => ({ index: blocked[f.index]?.index ?? f.index, message: f.message })),
    ].sort((a, b) => a.index - b.index),
  };
}

export interface KernelOptions {
  /** Name of a namespace under /run/netns; every command runs there. Default: our own. */
  readonly netns?: string;
  /** Devices whose ingress filters `observe` reads (by name prefix): the caller's veths. */
  readonly filterPrefixes: readonly string[];
  /** Kill a command that runs longer than this. Default 60 s (deleting 1,000 veths takes ~16 s). */
  readonly timeoutMs?: number;
  /** libnftables to load for nft commands (default libnftables.so.1); a missing one: the `nft` process. */
  readonly nftLibrary?: string;
  /** Told once, at the first nft command, whether nft commands go through libnftables or the process, and why. */
  readonly onNftRoute?: (route: NftRoute) => void;
  /**
   * How the full observe reads links, addresses and qdiscs: rtnetlink dumps in this process
   * (default; processes when koffi or libc cannot be loaded), or `ip`/`tc` processes (tests).
   */
  readonly interfaceReads?: 'netlink' | 'processes';
  /**
   * The nf_tables notices of this kernel's namespace (nf-changes.ts; the caller closes it): the
   * full observe then reads again only the firewall parts whose tables changed. Absent: every
   * part is read whenever the nf_tables generation moved.
   */
  readonly nfChanges?: NfChangeWatch;
  /**
   * How link and shaping changes are made: rtnetlink requests from this process (default;
   * `ip -batch` / `tc -batch` when koffi or libc cannot be loaded, or no socket can be made), or
   * one `ip -force -batch` and one `tc -force -batch` process a pass (tests).
   */
  readonly interfaceWrites?: 'netlink' | 'processes';
}

/**
 * A `Kernel` backed by the real `ip` and `iptables-*` commands, in `opts.netns` if given. Typed
 * changes are rendered (iproute/, tc/, iptables/) and run through the command-level doors.
 * @throws DriverError `LN_ERR_INTERNAL` for a namespace name that is not a plain file name.
 */
export function createKernel(opts: KernelOptions): HostKernel {
  const { netns } = opts;
  if (netns !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(netns)) {
    throw new DriverError('LN_ERR_INTERNAL', `invalid network namespace name "${netns}"`);
  }
  const run = createRunner(opts.timeoutMs ?? 60_000, netns);
  const runFile = createRunner(opts.timeoutMs ?? 60_000, netns, 'file');
  const { nftLibrary: library, onNftRoute: onRoute, nfChanges } = opts;
  const nft = createNft({ timeoutMs: opts.timeoutMs ?? 60_000, run, ...(netns === undefined ? {} : { netns }), ...(library === undefined ? {} : { library }), ...(onRoute === undefined ? {} : { onRoute }) });
  const ipArgs = (...args: string[]): string[] => (netns === undefined ? args : ['-n', netns, ...args]);
  // iptables and sysctl have no namespace flag; `ip netns exec` enters the namespace first.
  const inNetns = (cmd: string, ...args: string[]): [string, string[]] =>
    netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]];
  const iptables = inNetns;
  const tcArgs = (...args: string[]): string[] => (netns === undefined ? args : ['-n', netns, ...args]);
  const ipBatch = async (lines: readonly string[], force = true): Promise<BatchResult> => {
    if (lines.length === 0) return { failures: [] };
    const input = renderIpBatch(lines);
    const outcome = await run('apply an ip batch', 'ip', ipArgs(...(force ? IP_BATCH_ARGS : IP_BATCH_ARGS.filter((a) => a !== '-force'))), input);
    if (outcome.exitCode === 0) return { failures: [] };
    return { failures: batchFailures(outcome, lines) };
  };

  const tcBatch = async (lines: readonly string[]): Promise<BatchResult> => {
    if (lines.length === 0) return { failures: [] };
    const outcome = await run('apply a tc batch', 'tc', tcArgs('-force', '-batch', '-'), `${lines.join('\n')}\n`);
    if (outcome.exitCode === 0) return { failures: [] };
    const failures = parseTcBatchErrors(outcome.stderr, lines);
    if (failures.length > 0) return { failures };
    return { failures: [{ line: 0, command: lines[0] ?? '', message: firstLine(outcome.stderr) ?? `tc exited with code ${outcome.exitCode}` }] };
  };

  const restoreOutcome = (input: string, family: 4 | 6): Promise<Outcome> => {
    const cmd = family === 6 ? 'ip6tables-restore' : 'iptables-restore';
    // -w: wait for the xtables lock Docker may hold (legacy backend) instead of failing at once.
    return run(`apply ${family === 6 ? 'ip6tables' : 'iptables'} rules`, ...iptables(cmd, '-w', '--noflush'), input);
  };
  const iptablesRestore = async (input: string, family: 4 | 6 = 4): Promise<void> => failOnExit(await restoreOutcome(input, family));
  const joined = joinedRestores(restoreOutcome);

  // `nft -j list table inet ledgernet`: null when the table does not exist, undefined when nft
  // cannot run (not installed): then there is no table of ours to plan against or remove.
  // A table whose text is the same as at the last read is the same object (the parser is pure and
  // nothing changes a table once parsed): not parsed again (~12 ms at 200 networks, 1.4 MB of JSON),
  // and the nftables backend's plan of it, remembered by identity, is not made again either. A
  // Docker network of the bridge driver created or removed asks for a full read (its rules in
  // FORWARD), which leaves our table as it was.
  let lastNft: { readonly text: string; readonly table: NftTable } | null = null;
  // Our table as the last read left it and our own transactions since made it (evolve.ts, as the
  // reconciler's model does), while each of them is known to have landed or not; null: not known
  // (a transaction whose end is unknown, or none read yet). Trusted for OWN_TRUST_MS after a read:
  // then the next full observe after a transaction of ours reads the table again.
  let own: { readonly table: NftTable | null | undefined; readonly readAt: number } | null = null;
  let applying = 0;
  const readNftables = async (since?: 'ours'): Promise<NftTable | null | undefined> => {
    if (since === 'ours' && own !== null && applying === 0 && performance.now() - own.readAt < OWN_TRUST_MS) return own.table;
    const readAt = performance.now();
    const o = await nft('read the nftables table', `list table ${NFT_FAMILY} ${NFT_TABLE}`).catch(() => null);
    const table = readNft(o);
    own = applying === 0 ? { table, readAt } : null;
    return table;
  };
  // The model after a transaction that landed; none (the next observe reads) if it cannot be made.
  const evolved = (from: NonNullable<typeof own>, after: (t: NftTable | null | undefined) => NftTable | null | undefined): typeof own => {
    try {
      return { table: after(from.table), readAt: from.readAt };
    } catch {
      return null;
    }
  };
  const readNft = (o: Outcome | null): NftTable | null | undefined => {
    if (o === null || /^exec of .* failed/m.test(o.stderr)) return undefined;
    if (o.exitCode !== 0 && /No such file or directory/.test(o.stderr)) return null;
    failOnExit(o);
    if (lastNft?.text === o.stdout) return lastNft.table;
    const table = parseNftTable(o.stdout, NFT_FAMILY, NFT_TABLE);
    lastNft = { text: o.stdout, table };
    return table;
  };

  /** Changes as rtnetlink requests from this process (one socket an apply), else by `fallback`'s batch process. */
  const throughNetlink = async <C>(
    changes: readonly C[],
    what: string,
    apply: (nl: NetlinkRequests, changes: readonly C[]) => Promise<ChangesResult>,
    fallback: () => Promise<ChangesResult>,
  ): Promise<ChangesResult> => {
    if (changes.length === 0) return { failures: [] };
    const requests = opts.interfaceWrites === 'processes' ? null : await openRequests(netns, opts.timeoutMs ?? 60_000, what).catch(() => null);
    if (requests === null) return fallback();
    try {
      return await apply(requests, changes);
    } finally {
      requests.close();
    }
  };

  // IPv6 turned on on devices whose disable_ipv6 is 1 (a host with net.ipv6.conf.default.disable_ipv6=1).
  const enableIpv6 = async (devs: readonly string[]): Promise<void> => {
    if (netns === undefined) {
      for (const d of devs) await writeFile(disableIpv6Path(d), '0\n');
      return;
    }
    failOnExit(await run('turn IPv6 on', ...inNetns('sysctl', '-q', '-w', ...devs.map((d) => `${ifaceSysctl('ipv6', d, 'disable_ipv6')}=0`))));
  };

  // accept_ra 0: no router advertisement from a container is taken by the host (CVE-2020-13401).
  const setAcceptRaOff = async (bridges: readonly string[]): Promise<void> => {
    if (bridges.length === 0) return;
    if (netns === undefined) {
      for (const b of bridges) {
        await writeFile(acceptRaPath(b), '0\n').catch((e: unknown) => {
          // No IPv6 in this kernel: no router advertisement is taken anywhere.
          if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(procSysNet('ipv6'))) return;
          throw new DriverError('LN_ERR_KERNEL_EXEC', `could not set accept_ra of ${b} to 0: ${(e as Error).message}`, { cause: e });
        });
      }
      return;
    }
    failOnExit(await run('set accept_ra', ...inNetns('sysctl', '-q', '-w', ...bridges.map((b) => `${ifaceSysctl('ipv6', b, 'accept_ra')}=0`))));
  };

  // The `ip` reads behind observeInterfaces, observePrefixes and observeRoutes when netlink cannot be used.
  const ipAddrs = async (): Promise<Addr[]> => {
    const o = await run('read addresses', 'ip', ipArgs('-j', 'addr', 'show'));
    failOnExit(o);
    return parseAddrs(o.stdout);
  };
  const ipRoutes = async (): Promise<Route[]> => {
    const [v4, v6] = await Promise.all([
      run('read IPv4 routes', 'ip', ipArgs('-j', 'route', 'show', 'table', 'main')),
      run('read IPv6 routes', 'ip', ipArgs('-j', '-6', 'route', 'show', 'table', 'main')),
    ]);
    failOnExit(v4);
    // IPv6 may be disabled on the host: then there are no IPv6 routes to avoid.
    return [...parseRoutes(v4.stdout, 4), ...(v6.exitCode === 0 ? parseRoutes(v6.stdout, 6) : [])];
  };

  // One rtnetlink handle for the full observe and the reads on Docker's calls (each dump makes
  // sockets of its own); null with --interface-reads processes, or when libc cannot be called.
  let netlink: Promise<Netlink | null> | null = null;
  const openShared = () => (opts.interfaceReads === 'processes' ? Promise.resolve(null) : (netlink ??= openNetlink(netns, opts.timeoutMs ?? 60_000)));
  return {
    observe: createObserve({
      run: runFile,
      netns,
      prefixes: opts.filterPrefixes,
      readNftables,
      ours: (pid) => nft.ours(pid),
      netlink: openShared,
      nfGeneration: () => readNfGeneration(netns, opts.timeoutMs ?? 60_000),
      ...(nfChanges === undefined ? {} : { nfChanges: () => nfChanges.changes() }),
    }),

    async observeInterfaces() {
      const nl = await openShared();
      if (nl !== null) {
        const read = await netlinkHost(nl, false).catch(() => null);
        if (read !== null) return read;
      }
      const [links, addrs] = await Promise.all([run('read links', 'ip', ipArgs('-j', '-d', 'link', 'show')), ipAddrs()]);
      failOnExit(links);
      return { links: parseLinks(links.stdout), addrs };
    },

    async observeLinkNamed(name: string) {
      if (opts.interfaceReads !== 'processes') {
        const rq = await openRequests(netns, opts.timeoutMs ?? 60_000, `read link ${name}`).catch(() => null);
        if (rq !== null) {
          try {
            return await netlinkLinkNamed(rq, name);
          } finally {
            rq.close();
          }
        }
      }
      const o = await run(`read link ${name}`, 'ip', ipArgs('-j', '-d', 'link', 'show', 'dev', name));
      // `Device "x" does not exist.` (exit 1): no link has that name.
      if (o.exitCode !== 0 && /does not exist/.test(o.stderr)) return null;
      failOnExit(o);
      return parseLinks(o.stdout)[0] ?? null;
    },

    async observePrefixes(withRoutes = true): Promise<string[]> {
      const nl = await openShared();
      if (nl !== null) {
        const read = await netlinkPrefixes(nl, withRoutes).catch(() => null);
        if (read !== null) return read;
      }
      const [addrs, routes] = await Promise.all([ipAddrs(), withRoutes ? ipRoutes() : []]);
      return [...addrs.map((a) => a.cidr), ...routes.map((r) => r.dst)];
    },

    async observeRoutes(): Promise<Route[]> {
      const nl = await openShared();
      if (nl !== null) {
        const read = await netlinkHost(nl, true).catch(() => null);
        if (read !== null) return read.routes;
      }
      return ipRoutes();
    },

    setAcceptRaOff,

    async setIpv6ForwardingOn(): Promise<string[]> {
      const keys = ['net.ipv6.conf.default.forwarding', 'net.ipv6.conf.all.forwarding'];
      if (netns !== undefined) {
        const now = await run('read IPv6 forwarding', ...inNetns('sysctl', '-e', ...keys));
        failOnExit(now);
        const got = parseSysctl(now.stdout);
        const off = keys.filter((k) => got[k] !== undefined && got[k] !== '1');
        if (off.length > 0) failOnExit(await run('turn IPv6 forwarding on', ...inNetns('sysctl', '-q', '-w', ...off.map((k) => `${k}=1`))));
        return off;
      }
      const changed: string[] = [];
      for (const key of keys) {
        const path = netSysctlPath(key);
        const now = await readFile(path, 'utf8').catch(() => null);
        if (now === null || now.trim() === '1') continue; // no IPv6 in this kernel, or on already
        await writeFile(path, '1\n').catch((e: unknown) => {
          throw new DriverError('LN_ERR_KERNEL_EXEC', `could not set ${key} to 1: ${(e as Error).message}`, { cause: e });
        });
        changed.push(key);
      }
      return changed;
    },

    async setRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void> {
      if (netns === undefined) return writeProcRouteLocalnet(values);
      const args = Object.entries(values).map(([iface, on]) => `${ifaceSysctl('ipv4', iface, 'route_localnet')}=${on ? 1 : 0}`);
      if (args.length === 0) return;
      failOnExit(await run('set route_localnet', ...inNetns('sysctl', '-q', '-w', ...args)));
    },

    ipBatch,
    tcBatch,
    iptablesRestore,
    applyLinks: async (changes) => {
      const r = await withIpv6Enabled(changes, (cs) => throughNetlink(cs, 'apply link changes', applyLinkChanges, () => runChanges(cs, ipLines, ipBatch, IP_LINE_LINKS)), enableIpv6);
      // A bridge made here takes no router advertisement from the start; should that fail, the
      // next full read finds it on and plans bridge.accept_ra, which reports the failure.
      const failed = new Set(r.failures.map((f) => f.index));
      await setAcceptRaOff(changes.flatMap((c, i) => (c.kind === 'bridge.create' && !failed.has(i) ? [c.name] : []))).catch(() => undefined);
      return r;
    },
    applyShaping: (changes) => throughNetlink(changes, 'apply shaping changes', applyShapingChanges, () => runChanges(changes, tcLines, tcBatch)),
    async restoreIptables(table, changes) {
      const input = restoreInput(changes, table);
      if (input !== null) await joined(input, table.endsWith('6') ? 6 : 4);
    },

    async nftApply(json, after) {
      applying++;
      let landed = false;
      try {
        failOnExit(await nft('apply nftables rules', json));
        landed = true;
      } finally {
        applying--;
        // A failed transaction changed nothing (it is atomic), but one whose reply was lost may have.
        own = landed && own !== null && after !== undefined ? evolved(own, after) : null;
      }
    },

    flushConntrack: (flushes) => flushConntrack(netns, opts.timeoutMs ?? 60_000, flushes),

  };
}

interface Queued {
  readonly input: string;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Restores of one family asked for in the same tick (a pass's tables, restore.ts) run as one
 * process: one `iptables-restore` for filter, nat and mangle instead of three. Each table keeps its
 * own COMMIT and its own answer: when the process stops at a table, the tables before it are
 * applied, that table fails with the restore's message, and the tables after it run again.
 */
function joinedRestores(restore: (input: string, family: 4 | 6) => Promise<Outcome>): (input: string, family: 4 | 6) => Promise<void> {
  const pending: Record<4 | 6, Queued[] | null> = { 4: null, 6: null };
  const runAll = async (family: 4 | 6, queued: readonly Queued[]): Promise<void> => {
    let rest = queued;
    while (rest.length > 0) {
      const { input, starts } = joinInputs(rest.map((q) => q.input));
      const outcome = await restore(input, family).catch((e: unknown) => e);
      const error = outcome instanceof Error ? outcome : exitError(outcome as Outcome);
      const at = error === null || outcome instanceof Error ? null : failedSection((outcome as Outcome).stderr, starts);
      if (error === null || at === null) {
        for (const q of rest) (error === null ? q.resolve() : q.reject(error));
        return;
      }
      for (const q of rest.slice(0, at)) q.resolve();
      rest[at]?.reject(error);
      rest = rest.slice(at + 1);
    }
  };
  return (input, family) =>
    new Promise<void>((resolve, reject) => {
      let q = pending[family];
      if (q === null) {
        const batch: Queued[] = [];
        q = pending[family] = batch;
        queueMicrotask(() => {
          pending[family] = null;
          void runAll(family, batch);
        });
      }
      q.push({ input, resolve, reject });
    });
}

function batchFailures(outcome: Outcome, lines: readonly string[]): BatchFailure[] {
  const completed = countCompletedLines(outcome.stdout);
  try {
    const failures = parseIpBatchErrors(outcome.stderr, lines, {
      linesPerCommand: IP_BATCH_LINES_PER_COMMAND,
      completed,
    });
    if (failures.length > 0) return failures;
  } catch {
    // Unparseable stderr: fall through to one failure carrying it.
  }
  const line = completed < lines.length ? completed : 0;
  const message = firstLine(outcome.stderr) ?? `ip exited with code ${outcome.exitCode}`;
  return [{ line, command: lines[line] ?? '', message }];
}
