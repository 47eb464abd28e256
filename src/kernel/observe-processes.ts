// The full observe's reads of links, the bridges' addresses and route_localnet, and qdiscs with
// processes (`ip`, `tc`, `sysctl` in another namespace): the way when this process cannot use
// rtnetlink itself (observe-netlink.ts), or a dump of it failed.
import { readFile } from 'node:fs/promises';
import { DriverError } from '../errors.ts';
import { parseAddrs } from './parse-addrs.ts';
import { parseLinks, parsePlainLinks, type LinkDetail } from './parse-links.ts';
import { ifaceSysctl, routeLocalnetPath, parseSysctl } from './parse-sysctl.ts';
import { parseQdiscs } from './parse-tc.ts';
import { failOnExit, type Outcome, type Runner } from './runner.ts';
import type { Addr, Ipv6Forwarding, Link, Qdisc, Route } from './types.ts';
import { parseRoutes } from './parse-routes.ts';

/** What the full observe reads of the interfaces. */
export interface Interfaces {
  readonly links: readonly Link[];
  /** Of bridges only: a plan looks at no others. */
  readonly addrs: readonly Addr[];
  readonly routeLocalnet: Readonly<Record<string, boolean>>;
  readonly qdiscs: readonly Qdisc[];
  /** The main table's routes, both families. */
  readonly routes: readonly Route[];
  /** The links whose IPv4 forwarding is off (KernelSnapshot.forwardingOff); absent: not read (this file's way). */
  readonly forwardingOff?: readonly string[];
  /** Bridges that take IPv6 router advertisements (KernelSnapshot.acceptRa); absent: not read. */
  readonly acceptRa?: Readonly<Record<string, boolean>>;
  /** IPv6 forwarding of the namespace (KernelSnapshot.ipv6Forwarding); absent: not read. */
  readonly ipv6Forwarding?: Ipv6Forwarding;
}

/**
 * For `ip -j -d -batch -`: the bridges with their details, their addresses, and the main table's
 * IPv4 routes; one JSON array per line (a batch line takes no `-6`: IPv6 routes are one more process).
 */
const BRIDGES_INPUT = 'link show type bridge\naddr show type bridge\nroute show table main\n';

/** `parse`, remembering its last text and result: the same text again is answered without parsing. */
export function reusing<T>(parse: (text: string) => T): (text: string) => T {
  let last: { readonly text: string; readonly value: T } | null = null;
  return (text) => {
    if (last?.text === text) return last.value;
    const value = parse(text);
    last = { text, value };
    return value;
  };
}

async function readProcRouteLocalnet(bridges: readonly string[]): Promise<Record<string, boolean>> {
  const values = await Promise.all(
    bridges.map(async (b) => {
      try {
        return [b, (await readFile(routeLocalnetPath(b), 'utf8')).trim() === '1'] as const;
      } catch (e) {
        // A bridge deleted since `ip link` was read is not an error.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new DriverError('LN_ERR_KERNEL_EXEC', `could not read route_localnet of ${b}: ${(e as Error).message}`, { cause: e });
      }
    }),
  );
  return Object.fromEntries(values.filter((v) => v !== null));
}

const keyOf = (index: number, name: string) => `${index} ${name}`;
const detailOf = (l: Link): LinkDetail => ({ kind: l.kind, ...(l.addrGenMode === undefined ? {} : { addrGenMode: l.addrGenMode }) });

/**
 * Links without `-d`, their kinds from the last read: a link's kind is fixed for its life, and a
 * link is known by its ifindex and name (the kernel gives a new link the next unused ifindex; a
 * link moved in or made with `index N` may take an old one, and is then known by its name as
 * well). Bridges, with their address generation (which can change), come from this pass's
 * `ip -d link show type bridge`: a link known as a bridge and not among them is read again, and
 * so is one known as a veth that names no peer. A link not seen before (or renamed) makes one
 * more read, of every link with `-d`. What this cannot tell: between two reads, a link of
 * another kind than bridge or veth deleted and one of a third kind made under the same name
 * with the same ifindex (`ip link add … index N`). At 2,000 endpoints `-d` made `ip`'s text
 * 4.4 MB instead of 1.7 MB (the bridge-port attributes of every veth), with timers in it, so the
 * same links never printed the same text.
 */
function linkReader(run: Runner, nsArgs: (...args: string[]) => string[]): (plain: Outcome, bridges: string) => Promise<Link[]> {
  let known = new Map<string, LinkDetail>();
  let last: { readonly text: string; readonly bridges: string; readonly links: Link[] } | null = null;
  const readDetailed = async () => {
    const o = await run('read links with their details', 'ip', nsArgs('-j', '-d', 'link', 'show'));
    failOnExit(o);
    return parseLinks(o.stdout);
  };
  return async (plain, bridgesText) => {
    const fresh = new Map(parseLinks(bridgesText).map((l) => [keyOf(l.index, l.name), detailOf(l)]));
    const signature = JSON.stringify([...fresh]);
    if (last !== null && last.text === plain.stdout && last.bridges === signature) return last.links;
    const links = parsePlainLinks(plain.stdout, (index, name) => {
      const key = keyOf(index, name);
      const detail = fresh.get(key) ?? known.get(key);
      // Every bridge is in `fresh`: one known as a bridge and not there is not that bridge any more.
      return detail?.kind === 'bridge' && !fresh.has(key) ? undefined : detail;
    });
    // Kept for the same text only when it was read from that text.
    last = links === null ? null : { text: plain.stdout, bridges: signature, links };
    const all = links ?? (await readDetailed());
    known = new Map(all.map((l) => [keyOf(l.index, l.name), detailOf(l)]));
    return all;
  };
}

/** The interfaces read with processes (output through a file: `createRunner(…, 'file')`). */
export function processInterfaces(run: Runner, netns: string | undefined): () => Promise<Interfaces> {
  const nsArgs = (...args: string[]): string[] => (netns === undefined ? args : ['-n', netns, ...args]);
  // sysctl has no namespace flag; `ip netns exec` enters the namespace first.
  const inNetns = (cmd: string, ...args: string[]): [string, string[]] => (netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]]);
  const readLinks = linkReader(run, nsArgs);
  const qdiscs = reusing(parseQdiscs);
  const readRouteLocalnet = async (bridges: readonly string[]): Promise<Record<string, boolean>> => {
    if (bridges.length === 0) return {};
    // In our own namespace /proc/sys is read directly: no process, and no dependency on procps
    // (the managed plugin's rootfs has no sysctl binary). -e: a bridge deleted since is not an error.
    if (netns === undefined) return readProcRouteLocalnet(bridges);
    const keys = bridges.map((b) => ifaceSysctl('ipv4', b, 'route_localnet'));
    const o = await run('read route_localnet', ...inNetns('sysctl', '-e', ...keys));
    failOnExit(o);
    const values = parseSysctl(o.stdout);
    return Object.fromEntries(bridges.flatMap((b, i) => (values[keys[i] ?? ''] === undefined ? [] : [[b, values[keys[i] ?? ''] === '1']])));
  };

  return async () => {
    const [l, b, q, r6] = await Promise.all([
      run('read links', 'ip', nsArgs('-j', 'link', 'show')),
      run('read bridges, their addresses and IPv4 routes', 'ip', nsArgs('-j', '-d', '-batch', '-'), BRIDGES_INPUT),
      // -r: tbf's limit is printed only raw.
      run('read qdiscs', 'tc', nsArgs('-j', '-r', 'qdisc', 'show')),
      run('read IPv6 routes', 'ip', nsArgs('-j', '-6', 'route', 'show', 'table', 'main')),
    ]);
    for (const o of [l, b, q]) failOnExit(o);
    const [bridges = '', bridgeAddrs = '', routes4 = ''] = b.stdout.split('\n');
    // IPv6 may be disabled on the host: then there are no IPv6 routes.
    const routes = [...parseRoutes(routes4, 4), ...(r6.exitCode === 0 ? parseRoutes(r6.stdout, 6) : [])];
    const links = await readLinks(l, bridges);
    const routeLocalnet = await readRouteLocalnet(links.filter((link) => link.kind === 'bridge').map((link) => link.name));
    return { links, addrs: parseAddrs(bridgeAddrs), routeLocalnet, qdiscs: qdiscs(q.stdout), routes };
  };
}
