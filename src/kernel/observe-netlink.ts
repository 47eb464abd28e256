// The full observe's reads of links, the bridges' addresses and route_localnet, qdiscs, routes and IPv6 forwarding from
// rtnetlink dumps in this process (netlink.ts): no `ip`, `tc` or `sysctl` process. At 2,000
// endpoints those processes cost ~100 ms of CPU a pass (`ip link` ~49 ms, `tc qdisc` ~40 ms, of
// which ~25 ms its own dump of every link to name devices) and a spawn each; the three dumps here
// cost the kernel ~35 ms and their parse a few ms. A dump carries every link's kind and settings,
// so nothing is remembered between reads. The ingress filters of devices with an ingress qdisc
// (an endpoint's egress rate) come from one filter dump per device, not a `tc -batch`.
import { DriverError } from '../errors.ts';
import type { Dump, Netlink, NetlinkMessage, NetlinkRequests } from './netlink.ts';
import { cstr, encodeAttrs } from './netlink-attrs.ts';
import type { Interfaces } from './observe-processes.ts';
import { ADDR_DUMP_REQUEST, LINK_DUMP_REQUEST, RTM_GETADDR, RTM_GETLINK, addrOf, addrsOf, linkOf, namedLinks, namesOf, hostGroupNames, type DumpedAddr, type DumpedLink } from './parse-link-dump.ts';
import { RTM_GETROUTE, namedRoutes, routeDumpRequest, routeOf, type DumpedRoute } from './parse-route-dump.ts';
import { RTM_GETTFILTER, filterOf, ingressFilterDumpRequest, namedRedirects, type DumpedFilter } from './parse-filter-dump.ts';
import { QDISC_DUMP_REQUEST, RTM_GETQDISC, namedQdiscs, qdiscOf, type DumpedQdisc } from './parse-qdisc-dump.ts';
import { NETCONF6_DUMP_REQUEST, RTM_GETNETCONF, ipv6Forwarding, netconfOf, type DumpedNetconf } from './parse-netconf-dump.ts';
import type { Addr, Link, Route } from './types.ts';

/**
 * A dump whose items `of` reads from its messages, into `into` (which other dumps may fill at the
 * same time); a read the kernel marks interrupted takes back only this dump's items.
 */
export function collect<T>(what: string, type: number, body: Buffer, of: (m: NetlinkMessage) => T | null, into: T[]): Dump {
  let mine: T[] = [];
  return {
    what,
    type,
    body,
    each: (m) => {
      const item = of(m);
      if (item === null) return;
      into.push(item);
      mine.push(item);
    },
    restart: () => {
      // One occurrence of each item of its own (equal numbers or strings are alike anyway).
      const left = new Map<T, number>();
      for (const item of mine) left.set(item, (left.get(item) ?? 0) + 1);
      mine = [];
      let kept = 0;
      for (const item of into) {
        const n = left.get(item) ?? 0;
        if (n > 0) left.set(item, n - 1);
        else into[kept++] = item;
      }
      into.length = kept;
    },
  };
}

/** The interfaces from the kernel's dumps of links, addresses and qdiscs (made at once). */
export async function netlinkInterfaces(nl: Netlink): Promise<Interfaces> {
  // Device group names as `ip` prints them (/etc/iproute2/group).
  const names = hostGroupNames();
  const dumped: DumpedLink[] = [];
  const addrs: DumpedAddr[] = [];
  const qdiscs: DumpedQdisc[] = [];
  const routes4: DumpedRoute[] = [];
  const routes6: DumpedRoute[] = [];
  const netconf: DumpedNetconf[] = [];
  await nl.dump([
    collect('read links', RTM_GETLINK, LINK_DUMP_REQUEST, (m) => linkOf(m, names), dumped),
    collect('read addresses', RTM_GETADDR, ADDR_DUMP_REQUEST, addrOf, addrs),
    collect('read qdiscs', RTM_GETQDISC, QDISC_DUMP_REQUEST, qdiscOf, qdiscs),
    { ...collect('read IPv4 routes', RTM_GETROUTE, routeDumpRequest(4), routeOf, routes4), strict: true },
    { ...collect('read IPv6 routes', RTM_GETROUTE, routeDumpRequest(6), routeOf, routes6), strict: true },
    // A kernel without IPv6 refuses it: then there is no IPv6 forwarding to report.
    { ...collect('read IPv6 forwarding', RTM_GETNETCONF, NETCONF6_DUMP_REQUEST, netconfOf, netconf), optional: true },
  ]);
  const v6 = ipv6Forwarding(netconf);
  const byIndex = namesOf(dumped);
  const links = namedLinks(dumped, byIndex);
  const bridges = links.filter((l) => l.kind === 'bridge');
  const localnet = new Map(dumped.flatMap((d) => (d.kind === 'bridge' ? [[d.index, d.routeLocalnet]] : [])));
  return {
    links,
    addrs: addrsOf(bridges, addrs),
    routeLocalnet: Object.fromEntries(bridges.flatMap((b) => {
      const on = localnet.get(b.index);
      return on === null || on === undefined ? [] : [[b.name, on]];
    })),
    qdiscs: namedQdiscs(qdiscs, byIndex),
    routes: namedRoutes([...routes4, ...routes6], byIndex),
    forwardingOff: dumped.flatMap((d) => (d.forwarding === false ? [d.name] : [])),
    acceptRa: Object.fromEntries(dumped.flatMap((d) => (d.acceptRa === null ? [] : [[d.name, d.acceptRa]]))),
    ...(v6 === null ? {} : { ipv6Forwarding: v6 }),
  };
}

/**
 * Every link and every address of the namespace (not only the bridges'), and with `withRoutes` the
 * main table's routes of both families: what a Docker call checks a new network's subnet and
 * bridge name against (main.ts's host view). Two to four dumps, no `ip` process on Docker's path.
 */
export async function netlinkHost(nl: Netlink, withRoutes: boolean): Promise<{ links: Link[]; addrs: Addr[]; routes: Route[] }> {
  const names = hostGroupNames();
  const dumped: DumpedLink[] = [];
  const addrs: DumpedAddr[] = [];
  const routes: DumpedRoute[] = [];
  await nl.dump([
    collect('read links', RTM_GETLINK, LINK_DUMP_REQUEST, (m) => linkOf(m, names), dumped),
    collect('read addresses', RTM_GETADDR, ADDR_DUMP_REQUEST, addrOf, addrs),
    ...(withRoutes
      ? [
          { ...collect('read IPv4 routes', RTM_GETROUTE, routeDumpRequest(4), routeOf, routes), strict: true },
          { ...collect('read IPv6 routes', RTM_GETROUTE, routeDumpRequest(6), routeOf, routes), strict: true },
        ]
      : []),
  ]);
  const byIndex = namesOf(dumped);
  const links = namedLinks(dumped, byIndex);
  return { links, addrs: addrsOf(links, addrs), routes: namedRoutes(routes, byIndex) };
}

/**
 * Every address (`local/prefixlen`) and every main-table route's destination, IPv4 then IPv6, from
 * dumps of addresses and routes at once: no link dump (what names them is not needed here, and
 * at 200 networks the link dump is the larger part of the read).
 */
/** IFNAMSIZ of <linux/if.h>: a link's name has at most 15 bytes; an altname up to 127 (IFLA_ALT_IFNAME). */
const IFNAMSIZ = 16;
const IFLA_IFNAME = 3;
const IFLA_ALT_IFNAME = 53;
const ENODEV = 19;

/**
 * The link that has `name` as its name or an altname (RTM_GETLINK: one request, no dump); null
 * when the kernel has none (ENODEV).
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the kernel answers with another error.
 */
export async function netlinkLinkNamed(rq: NetlinkRequests, name: string): Promise<DumpedLink | null> {
  const attr = Buffer.byteLength(name) < IFNAMSIZ ? IFLA_IFNAME : IFLA_ALT_IFNAME;
  const a = await rq.request(RTM_GETLINK, 0, Buffer.concat([LINK_DUMP_REQUEST, encodeAttrs([[attr, cstr(name)]])]));
  if (a.errno === ENODEV) return null;
  if (a.errno !== 0) throw new DriverError('LN_ERR_KERNEL_EXEC', `could not read link ${name}: ${a.detail ?? rq.strerror(a.errno)}`);
  const groups = hostGroupNames();
  return a.messages.map((m) => linkOf(m, groups)).find((l) => l !== null) ?? null;
}

export async function netlinkPrefixes(nl: Netlink, withRoutes = true): Promise<string[]> {
  const addrs: DumpedAddr[] = [];
  const routes4: DumpedRoute[] = [];
  const routes6: DumpedRoute[] = [];
  await nl.dump([
    collect('read addresses', RTM_GETADDR, ADDR_DUMP_REQUEST, addrOf, addrs),
    ...(withRoutes
      ? [
          { ...collect('read IPv4 routes', RTM_GETROUTE, routeDumpRequest(4), routeOf, routes4), strict: true },
          { ...collect('read IPv6 routes', RTM_GETROUTE, routeDumpRequest(6), routeOf, routes6), strict: true },
        ]
      : []),
  ]);
  return [...addrs.map((a) => a.addr.cidr), ...routes4.map((r) => r.dst), ...routes6.map((r) => r.dst)];
}

/**
 * The redirect targets of each device's ingress filters (`devices`, found among `links`), from one
 * filter dump per device, in turn on one socket; null when a device is not among the links or a
 * filter is of a kind parse-filter-dump.ts does not read (the caller asks tc then).
 */
export async function netlinkRedirects(nl: Netlink, devices: readonly string[], links: readonly Link[]): Promise<Record<string, string[]> | null> {
  const index = new Map(links.map((l) => [l.name, l.index]));
  const asked = new Map<number, string>();
  for (const d of devices) {
    const i = index.get(d);
    if (i === undefined) return null;
    asked.set(i, d);
  }
  const dumped: DumpedFilter[] = [];
  await nl.dumpInTurn([...asked].map(([ifindex, d]) => collect(`read the ingress filters of ${d}`, RTM_GETTFILTER, ingressFilterDumpRequest(ifindex), filterOf, dumped)));
  return namedRedirects(dumped, asked, new Map(links.map((l) => [l.index, l.name])));
}
