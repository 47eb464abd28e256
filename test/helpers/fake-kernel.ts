// An in-memory kernel holding typed facts (links, addresses, qdiscs, redirects, route_localnet,
// iptables tables) and applying the typed changes of the Kernel port to them, with the checks the
// real kernel makes (File exists, Cannot find device, the master must exist, …), so plans can be
// applied and re-planned without root. It reads no command text: `failNext` fails the next
// changes a predicate picks, and `calls` records the changes sent.
import { CREATE_GROUP, tbfShape } from '../../src/kernel/index.ts';
import type {
  Addr,
  ChangeFailure,
  Chain,
  FirewallChange,
  IptablesTableKey,
  Kernel,
  KernelSnapshot,
  Link,
  LinkChange,
  Qdisc,
  Route,
  ShapingChange,
} from '../../src/kernel/types.ts';
import { applyTableChange, type FakeTable } from './fake-tables.ts';

type MutableLink = { -readonly [K in keyof Link]: Link[K] };
type AnyChange = LinkChange | ShapingChange | FirewallChange;

export type FakeCall =
  | { readonly kind: 'observe' }
  | { readonly kind: 'applyLinks'; readonly changes: readonly LinkChange[] }
  | { readonly kind: 'applyShaping'; readonly changes: readonly ShapingChange[] }
  | { readonly kind: 'restoreIptables'; readonly table: IptablesTableKey; readonly changes: readonly FirewallChange[] }
  | { readonly kind: 'setRouteLocalnet'; readonly values: Readonly<Record<string, boolean>> }
  | { readonly kind: 'setAcceptRaOff'; readonly bridges: readonly string[] }
  | { readonly kind: 'setIpv6ForwardingOn' }
  | { readonly kind: 'nftApply'; readonly json: string };

const INJECTED = 'RTNETLINK answers: Operation not permitted (injected)';

const table = (...chains: [string, string][]): FakeTable => new Map(chains.map(([name, policy]) => [name, { policy, rules: [] }]));

export class FakeKernel implements Kernel {
  links = new Map<string, MutableLink>();
  addrs: Addr[] = [];
  /** The iptables filter table. */
  chains = table(['INPUT', 'ACCEPT'], ['FORWARD', 'DROP'], ['OUTPUT', 'ACCEPT']);
  nat = table(['PREROUTING', 'ACCEPT'], ['INPUT', 'ACCEPT'], ['OUTPUT', 'ACCEPT'], ['POSTROUTING', 'ACCEPT']);
  /** ip6tables' filter table (policy ACCEPT, as on a host where Docker runs without IPv6). */
  filter6 = table(['INPUT', 'ACCEPT'], ['FORWARD', 'ACCEPT'], ['OUTPUT', 'ACCEPT']);
  /** ip6tables' nat table. */
  nat6 = table(['PREROUTING', 'ACCEPT'], ['INPUT', 'ACCEPT'], ['OUTPUT', 'ACCEPT'], ['POSTROUTING', 'ACCEPT']);
  /** The mangle tables (iptables and ip6tables): direct-access protection. */
  mangle = table(['PREROUTING', 'ACCEPT'], ['INPUT', 'ACCEPT'], ['FORWARD', 'ACCEPT'], ['OUTPUT', 'ACCEPT'], ['POSTROUTING', 'ACCEPT']);
  mangle6 = table(['PREROUTING', 'ACCEPT'], ['INPUT', 'ACCEPT'], ['FORWARD', 'ACCEPT'], ['OUTPUT', 'ACCEPT'], ['POSTROUTING', 'ACCEPT']);
  /** false: ip6tables cannot run (IPv6 disabled); observe reports no IPv6 table and restores fail. */
  ipv6 = true;
  /** Root qdiscs by device (tbf only; the kernel's default qdiscs are not listed, as with veths). */
  qdiscs = new Map<string, Qdisc>();
  /** Devices with an ingress qdisc, and where their filters redirect to. */
  ingress = new Map<string, string[]>();
  /** route_localnet by interface; bridges read as false until set. */
  localnet = new Map<string, boolean>();
  /** Routes served by observeRoutes (tests set them). */
  routes: Route[] = [];
  calls: FakeCall[] = [];
  private failures: ((c: AnyChange) => boolean)[] = [];
  private nextIndex = 10;

  /**
   * The next `times` changes `pick` selects fail (a refusal the reconciler's re-check meets too: 2).
   * A failed link or shaping change is not applied at all; an iptables restore holding one fails
   * as a whole, like the real one.
   */
  failNext(pick: (c: AnyChange) => boolean, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(pick);
  }

  private injected(changes: readonly AnyChange[]): boolean {
    const i = this.failures.findIndex((pick) => changes.some(pick));
    if (i >= 0) this.failures.splice(i, 1);
    return i >= 0;
  }

  addLink(l: Partial<Link> & { name: string }): void {
    this.links.set(l.name, {
      index: this.nextIndex++,
      kind: null,
      master: null,
      mtu: 1500,
      up: true,
      alias: null,
      group: 'default',
      mac: null,
      peer: null,
      peerInOtherNetns: false,
      ...l,
    });
  }

  /** Deletes a link as `ip link del` does (someone else's hand, in tests); false if there was none. */
  removeLink(name: string): boolean {
    return this.del(name) === null;
  }

  /**
   * Runs only the `link add` step of each create change: the daemon died before the command that
   * labels the link, which stays in CREATE_GROUP without an alias.
   */
  crashAfterLinkAdd(changes: readonly LinkChange[]): void {
    for (const c of changes) {
      if (c.kind === 'bridge.create') this.add(c.name, 'bridge', c.mtu);
      if (c.kind === 'veth.create') this.add(c.name, 'veth', c.mtu, c.peer);
      if (c.kind === 'ifb.create') this.add(c.name, 'ifb', 1500);
    }
  }

  async observeLinkNamed(name: string) {
    return (await this.observe()).links.find((l) => l.name === name || (l.altnames ?? []).includes(name)) ?? null;
  }

  async observeInterfaces() {
    const snap = await this.observe();
    return { links: snap.links, addrs: snap.addrs };
  }

  async observeRoutes(): Promise<Route[]> {
    return this.routes.map((r) => ({ ...r }));
  }

  async observePrefixes(withRoutes = true): Promise<string[]> {
    const [{ addrs }, routes] = await Promise.all([this.observeInterfaces(), withRoutes ? this.observeRoutes() : []]);
    return [...addrs.map((a) => a.cidr), ...routes.map((r) => r.dst)];
  }

  async observe(): Promise<KernelSnapshot> {
    this.calls.push({ kind: 'observe' });
    const copy = (m: FakeTable) => {
      const chains: Record<string, Chain> = {};
      for (const [name, c] of m) chains[name] = { name, policy: c.policy, rules: [...c.rules] };
      return chains;
    };
    return {
      links: [...this.links.values()].map((l) => ({ ...l })),
      addrs: this.addrs.map((a) => ({ ...a })),
      filter: { name: 'filter', chains: copy(this.chains) },
      nat: { name: 'nat', chains: copy(this.nat) },
      filter6: this.ipv6 ? { name: 'filter', chains: copy(this.filter6) } : null,
      nat6: this.ipv6 ? { name: 'nat', chains: copy(this.nat6) } : null,
      mangle: { name: 'mangle', chains: copy(this.mangle) },
      mangle6: this.ipv6 ? { name: 'mangle', chains: copy(this.mangle6) } : null,
      qdiscs: [
        ...[...this.qdiscs.values()].map((q) => ({ ...q })),
        ...[...this.ingress.keys()].map((dev) => ({ dev, kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null, burst: null, limit: null })),
      ],
      ingressRedirects: Object.fromEntries([...this.ingress].map(([dev, to]) => [dev, [...to]])),
      routeLocalnet: Object.fromEntries(
        [...this.links.values()].filter((l) => l.kind === 'bridge').map((l) => [l.name, this.localnet.get(l.name) ?? false]),
      ),
    };
  }

  async applyLinks(changes: readonly LinkChange[]): Promise<{ failures: ChangeFailure[] }> {
    this.calls.push({ kind: 'applyLinks', changes });
    return { failures: this.each(changes, (c) => this.linkChange(c)) };
  }

  async applyShaping(changes: readonly ShapingChange[]): Promise<{ failures: ChangeFailure[] }> {
    this.calls.push({ kind: 'applyShaping', changes });
    return { failures: this.each(changes, (c) => this.shapingChange(c)) };
  }

  /** Applies every change like `-force` does (a failure does not stop the others); the first error of each. */
  private each<C extends AnyChange>(changes: readonly C[], apply: (c: C) => (string | null)[]): ChangeFailure[] {
    return changes.flatMap((c, index) => {
      const message = this.injected([c]) ? INJECTED : apply(c).find((e) => e !== null);
      return message ? [{ index, message }] : [];
    });
  }

  /** The steps of one change, in the order of its `ip -batch` lines (kernel/iproute/render.ts). */
  private linkChange(c: LinkChange): (string | null)[] {
    const replaced = 'replaces' in c ? (c.replaces ?? []).map((n) => this.del(n)) : [];
    switch (c.kind) {
      case 'bridge.create':
        return [...replaced, this.add(c.name, 'bridge', c.mtu), this.set(c.name, { alias: c.alias, up: true, ...(c.noLinkLocal ? { noLinkLocal: true } : {}) })];
      case 'veth.create':
        return [
          ...replaced,
          this.add(c.name, 'veth', c.mtu, c.peer, c.peerMac),
          this.set(c.peer, { alias: c.peerAlias }),
          this.set(c.name, { alias: c.alias, master: c.master, up: true }),
        ];
      case 'ifb.create':
        return [...replaced, this.add(c.name, 'ifb', 1500), this.set(c.name, { alias: c.alias, up: true })];
      case 'link.set':
        return [this.set(c.name, c)];
      case 'addr.add':
      case 'addr.del':
        return [this.addr(c.kind === 'addr.add', c.dev, c.cidr)];
      case 'link.delete':
        return [this.del(c.name)];
      case 'route.add':
        // `route replace`: the route to the destination, through this device.
        if (!this.links.has(c.dev)) return [`Cannot find device "${c.dev}"`];
        this.routes = [...this.routes.filter((r) => r.dst !== c.dst), { family: c.dst.includes(':') ? 6 : 4, dst: c.dst, dev: c.dev }];
        return [null];
    }
  }

  /** `link add` in ledgernet's creation group, down; a veth with its peer. Like the kernel, no alias. */
  private add(name: string, kind: string, mtu: number, peer?: string, peerMac?: string | null): string | null {
    if (this.links.has(name) || (peer !== undefined && this.links.has(peer))) return 'RTNETLINK answers: File exists';
    this.addLink({ name, kind, mtu, up: false, group: CREATE_GROUP, peer: peer ?? null });
    if (peer !== undefined) this.addLink({ name: peer, kind, mtu, up: false, group: CREATE_GROUP, peer: name, ...(peerMac ? { mac: peerMac } : {}) });
    return null;
  }

  /** `link set`; setting the alias moves the link back to group `default` (see CREATE_GROUP). */
  private set(name: string, f: { readonly mtu?: number; readonly alias?: string; readonly master?: string; readonly up?: true; readonly noLinkLocal?: true }): string | null {
    const l = this.links.get(name);
    if (!l) return `Cannot find device "${name}"`;
    if (f.master !== undefined) {
      if (!this.links.has(f.master)) return `Error: argument "${f.master}" is wrong: Device does not exist`;
      l.master = f.master;
    }
    if (f.mtu !== undefined) l.mtu = f.mtu;
    if (f.alias !== undefined) [l.alias, l.group] = [f.alias, 'default'];
    if (f.up) l.up = true;
    if (f.noLinkLocal) l.addrGenMode = 'none';
    return null;
  }

  /** `link del`: takes the peer, the addresses, qdiscs and redirects along, and frees enslaved links. */
  private del(name: string): string | null {
    const l = this.links.get(name);
    if (!l) return `Cannot find device "${name}"`;
    for (const gone of [l.name, ...(l.peer ? [l.peer] : [])]) {
      this.links.delete(gone);
      this.localnet.delete(gone);
      this.qdiscs.delete(gone);
      this.ingress.delete(gone);
      this.addrs = this.addrs.filter((a) => a.dev !== gone);
    }
    for (const [dev, to] of this.ingress) this.ingress.set(dev, to.filter((t) => t !== l.name));
    for (const other of this.links.values()) if (other.master === l.name) other.master = null;
    return null;
  }

  private addr(add: boolean, dev: string, cidr: string): string | null {
    if (!this.links.has(dev)) return `Cannot find device "${dev}"`;
    const exists = this.addrs.some((a) => a.dev === dev && a.cidr === cidr);
    if (add && exists) return 'RTNETLINK answers: File exists';
    if (!add && !exists) return 'RTNETLINK answers: Cannot assign requested address';
    if (add) this.addrs.push({ dev, cidr, family: cidr.includes(':') ? 'inet6' : 'inet', scope: 'global' });
    else this.addrs = this.addrs.filter((a) => !(a.dev === dev && a.cidr === cidr));
    return null;
  }

  /** The steps of one change, in the order of its `tc -batch` lines (kernel/tc/render.ts). */
  private shapingChange(c: ShapingChange): (string | null)[] {
    if (!this.links.has(c.name)) return [`Cannot find device "${c.name}"`];
    const dropIngress = () => (this.ingress.delete(c.name) ? null : 'Error: Invalid handle.');
    switch (c.kind) {
      case 'qdisc.delete':
        return [this.qdiscs.delete(c.name) ? null : 'Error: Cannot delete qdisc with handle of zero.'];
      case 'redirect.delete':
        return [dropIngress()];
      case 'qdisc.set':
        this.qdiscs.set(c.name, { dev: c.name, kind: 'tbf', handle: '8001:', root: true, parent: null, rate: Math.round(c.rate / 8), ...tbfShape(c.rate, c.mtu) });
        return [null];
      case 'redirect.set': {
        const dropped = c.replace ? dropIngress() : null;
        const added = this.ingress.has(c.name) ? 'Error: Exclusivity flag on, cannot modify.' : (this.ingress.set(c.name, []), null);
        const filters = this.ingress.get(c.name);
        const filtered = filters && this.links.has(c.to) ? (filters.push(c.to), null) : "Error: Parent Qdisc doesn't exists.";
        return [dropped, added, filtered];
      }
    }
  }

  async setRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void> {
    this.calls.push({ kind: 'setRouteLocalnet', values });
    for (const [name, on] of Object.entries(values)) {
      if (!this.links.has(name)) throw new Error(`sysctl: cannot stat /proc/sys/net/ipv4/conf/${name}/route_localnet`);
      this.localnet.set(name, on);
    }
  }

  async setAcceptRaOff(bridges: readonly string[]): Promise<void> {
    this.calls.push({ kind: 'setAcceptRaOff', bridges });
    for (const name of bridges) if (!this.links.has(name)) throw new Error(`sysctl: cannot stat /proc/sys/net/ipv6/conf/${name}/accept_ra`);
  }

  /** Turning IPv6 forwarding on fails with this message (a test sets it); null: it works (and changes nothing here). */
  ipv6ForwardingError: string | null = null;

  async setIpv6ForwardingOn(): Promise<string[]> {
    this.calls.push({ kind: 'setIpv6ForwardingOn' });
    if (this.ipv6ForwardingError !== null) throw new Error(this.ipv6ForwardingError);
    return [];
  }

  /** Recorded only: the nftables backend is tested against a real nft (test/integration/nftables.test.ts). */
  async nftApply(json: string): Promise<void> {
    this.calls.push({ kind: 'nftApply', json });
  }

  /** All or nothing per table, like the real restore. */
  async restoreIptables(key: IptablesTableKey, changes: readonly FirewallChange[]): Promise<void> {
    this.calls.push({ kind: 'restoreIptables', table: key, changes });
    if (key.endsWith('6') && !this.ipv6) throw new Error('ip6tables-restore: could not initialize ip6tables (injected: IPv6 disabled)');
    if (this.injected(changes)) throw new Error('iptables-restore: line 3 failed (injected)');
    const field = ({ filter: 'chains', nat: 'nat', filter6: 'filter6', nat6: 'nat6', mangle: 'mangle', mangle6: 'mangle6' } as const)[key];
    const next: FakeTable = new Map([...this[field]].map(([k, v]) => [k, { policy: v.policy, rules: [...v.rules] }]));
    for (const c of changes) applyTableChange(next, c);
    this[field] = next;
  }
}
