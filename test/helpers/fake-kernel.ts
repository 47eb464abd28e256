// An in-memory kernel that interprets the `ip -batch` and `iptables-restore` inputs the
// reconciler emits, so plans can be applied and re-planned without root. `failNext` makes the
// next batch line matching a pattern fail, like the real `ip -force -batch`.
// It still reads command text: the Kernel port takes batch lines (rendered by kernel/iproute/,
// tc/, iptables/), and tests inject failures by matching those lines.
import type { Addr, BatchFailure, Chain, Kernel, KernelSnapshot, Link, Qdisc, Route } from '../../src/kernel/types.ts';

type MutableLink = { -readonly [K in keyof Link]: Link[K] };

export class FakeKernel implements Kernel {
  links = new Map<string, MutableLink>();
  addrs: Addr[] = [];
  chains = new Map<string, { policy: string | null; rules: string[] }>([
    ['INPUT', { policy: 'ACCEPT', rules: [] }],
    ['FORWARD', { policy: 'DROP', rules: [] }],
    ['OUTPUT', { policy: 'ACCEPT', rules: [] }],
  ]);
  /** The nat table, same shape as `chains` (the filter table). */
  nat = new Map<string, { policy: string | null; rules: string[] }>([
    ['PREROUTING', { policy: 'ACCEPT', rules: [] }],
    ['INPUT', { policy: 'ACCEPT', rules: [] }],
    ['OUTPUT', { policy: 'ACCEPT', rules: [] }],
    ['POSTROUTING', { policy: 'ACCEPT', rules: [] }],
  ]);
  /** ip6tables' filter table (policy ACCEPT, as on a host where Docker runs without IPv6). */
  filter6 = new Map<string, { policy: string | null; rules: string[] }>([
    ['INPUT', { policy: 'ACCEPT', rules: [] }],
    ['FORWARD', { policy: 'ACCEPT', rules: [] }],
    ['OUTPUT', { policy: 'ACCEPT', rules: [] }],
  ]);
  /** false: ip6tables cannot run (IPv6 disabled); observe reports no IPv6 table and restores fail. */
  ipv6 = true;
  /** Root qdiscs by device (tbf only; the kernel's default qdiscs are not listed, as with veths). */
  qdiscs = new Map<string, Qdisc>();
  /** Devices with an ingress qdisc, and where their filters redirect to. */
  ingress = new Map<string, string[]>();
  /** route_localnet by interface; bridges read as false until set. */
  localnet = new Map<string, boolean>();
  calls: { kind: 'observe' | 'ipBatch' | 'iptablesRestore' | 'ip6tablesRestore' | 'nftApply' | 'setRouteLocalnet' | 'tcBatch'; input?: string }[] = [];
  private failPatterns: RegExp[] = [];
  private nextIndex = 10;

  failNext(pattern: RegExp): void {
    this.failPatterns.push(pattern);
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

  /** Routes served by observeRoutes (tests set them). */
  routes: Route[] = [];

  async observeInterfaces() {
    const snap = await this.observe();
    return { links: snap.links, addrs: snap.addrs };
  }

  async observeRoutes(): Promise<Route[]> {
    return this.routes.map((r) => ({ ...r }));
  }

  async observe(): Promise<KernelSnapshot> {
    this.calls.push({ kind: 'observe' });
    const copy = (m: Map<string, { policy: string | null; rules: string[] }>) => {
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
      qdiscs: [
        ...[...this.qdiscs.values()].map((q) => ({ ...q })),
        ...[...this.ingress.keys()].map((dev) => ({ dev, kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null })),
      ],
      ingressRedirects: Object.fromEntries([...this.ingress].map(([dev, to]) => [dev, [...to]])),
      routeLocalnet: Object.fromEntries(
        [...this.links.values()].filter((l) => l.kind === 'bridge').map((l) => [l.name, this.localnet.get(l.name) ?? false]),
      ),
    };
  }

  async ipBatch(lines: readonly string[]): Promise<{ failures: BatchFailure[] }> {
    this.calls.push({ kind: 'ipBatch', input: lines.join('\n') });
    const failures: BatchFailure[] = [];
    lines.forEach((line, i) => {
      const fail = this.failPatterns.findIndex((p) => p.test(line));
      if (fail >= 0) {
        this.failPatterns.splice(fail, 1);
        failures.push({ line: i, command: line, message: 'RTNETLINK answers: Operation not permitted (injected)' });
        return;
      }
      const err = this.run(line.split(' '));
      if (err) failures.push({ line: i, command: line, message: err });
    });
    return { failures };
  }

  private run(w: string[]): string | null {
    const arg = (k: string) => w[w.indexOf(k) + 1] ?? '';
    if (w[0] === 'link' && w[1] === 'add') {
      const name = arg('name');
      if (this.links.has(name)) return 'RTNETLINK answers: File exists';
      const mtu = w.includes('mtu') ? Number(arg('mtu')) : 1500;
      const type = arg('type');
      // Like the kernel: `group` is applied on creation, `alias` is parsed but ignored.
      const group = w.includes('group') ? arg('group') : 'default';
      this.addLink({ name, kind: type, mtu, up: false, group });
      if (type === 'veth') {
        const peer = arg('peer') === 'name' ? w[w.indexOf('peer') + 2] ?? '' : '';
        this.addLink({ name: peer, kind: 'veth', mtu, up: false, peer: name, group });
        this.links.get(name)!.peer = peer;
      }
      return null;
    }
    if (w[0] === 'link' && w[1] === 'set') {
      const l = this.links.get(arg('dev'));
      if (!l) return `Cannot find device "${arg('dev')}"`;
      if (w.includes('master')) {
        if (!this.links.has(arg('master'))) return `Error: argument "${arg('master')}" is wrong: Device does not exist`;
        l.master = arg('master');
      }
      if (w.includes('mtu')) l.mtu = Number(arg('mtu'));
      if (w.includes('alias')) l.alias = arg('alias');
      if (w.includes('group')) l.group = arg('group');
      if (w.includes('up')) l.up = true;
      return null;
    }
    if (w[0] === 'link' && w[1] === 'del') {
      const l = this.links.get(arg('dev'));
      if (!l) return `Cannot find device "${arg('dev')}"`;
      this.links.delete(l.name);
      this.localnet.delete(l.name);
      this.qdiscs.delete(l.name);
      this.ingress.delete(l.name);
      for (const [dev, to] of this.ingress) this.ingress.set(dev, to.filter((t) => t !== l.name));
      if (l.peer) this.links.delete(l.peer);
      for (const other of this.links.values()) if (other.master === l.name) other.master = null;
      this.addrs = this.addrs.filter((a) => a.dev !== l.name);
      return null;
    }
    if (w[0] === 'addr') {
      const cidr = w[2] ?? '';
      const dev = arg('dev');
      if (!this.links.has(dev)) return `Cannot find device "${dev}"`;
      const exists = this.addrs.some((a) => a.dev === dev && a.cidr === cidr);
      if (w[1] === 'add') {
        if (exists) return 'RTNETLINK answers: File exists';
        this.addrs.push({ dev, cidr, family: cidr.includes(':') ? 'inet6' : 'inet', scope: 'global' });
      } else {
        if (!exists) return 'RTNETLINK answers: Cannot assign requested address';
        this.addrs = this.addrs.filter((a) => !(a.dev === dev && a.cidr === cidr));
      }
      return null;
    }
    return `unknown command ${w.join(' ')}`;
  }

  async tcBatch(lines: readonly string[]): Promise<{ failures: BatchFailure[] }> {
    this.calls.push({ kind: 'tcBatch', input: lines.join('\n') });
    const failures: BatchFailure[] = [];
    lines.forEach((line, i) => {
      const w = line.split(' ');
      const dev = w[w.indexOf('dev') + 1] ?? '';
      if (!this.links.has(dev)) return void failures.push({ line: i, command: line, message: `Cannot find device "${dev}"` });
      if (w[0] === 'filter') {
        const to = w[w.length - 1] ?? '';
        const filters = this.ingress.get(dev);
        if (!filters || !this.links.has(to)) return void failures.push({ line: i, command: line, message: 'Error: Parent Qdisc doesn\'t exists.' });
        filters.push(to);
        return;
      }
      if (w.includes('ingress')) {
        if (w[1] === 'del' && !this.ingress.delete(dev)) failures.push({ line: i, command: line, message: 'Error: Invalid handle.' });
        if (w[1] === 'add') {
          if (this.ingress.has(dev)) failures.push({ line: i, command: line, message: 'Error: Exclusivity flag on, cannot modify.' });
          else this.ingress.set(dev, []);
        }
        return;
      }
      if (w[1] === 'del') {
        if (!this.qdiscs.delete(dev)) failures.push({ line: i, command: line, message: 'Error: Cannot delete qdisc with handle of zero.' });
        return;
      }
      const bits = Number(/^(\d+)bit$/.exec(w[w.indexOf('rate') + 1] ?? '')?.[1]);
      this.qdiscs.set(dev, { dev, kind: 'tbf', handle: '8001:', root: true, parent: null, rate: Math.round(bits / 8) });
    });
    return { failures };
  }

  async setRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void> {
    this.calls.push({ kind: 'setRouteLocalnet', input: JSON.stringify(values) });
    for (const [name, on] of Object.entries(values)) {
      if (!this.links.has(name)) throw new Error(`sysctl: cannot stat /proc/sys/net/ipv4/conf/${name}/route_localnet`);
      this.localnet.set(name, on);
    }
  }

  /** Recorded only: the nftables backend is tested against a real nft (test/integration/nftables.test.ts). */
  async nftApply(json: string): Promise<void> {
    this.calls.push({ kind: 'nftApply', input: json });
  }

  /** The next iptables-restore whose input matches fails as a whole, like the real one. */
  failRestore: RegExp | null = null;

  async iptablesRestore(input: string, family: 4 | 6 = 4): Promise<void> {
    this.calls.push({ kind: family === 6 ? 'ip6tablesRestore' : 'iptablesRestore', input });
    if (family === 6 && !this.ipv6) throw new Error('ip6tables-restore: could not initialize ip6tables (injected: IPv6 disabled)');
    if (this.failRestore?.test(input)) {
      this.failRestore = null;
      throw new Error('iptables-restore: line 3 failed (injected)');
    }
    const table = family === 6 ? 'filter6' : /^\*(\w+)/.exec(input)?.[1] ?? 'filter';
    const source = table === 'nat' ? this.nat : table === 'filter6' ? this.filter6 : this.chains;
    const next = new Map([...source].map(([k, v]) => [k, { policy: v.policy, rules: [...v.rules] }]));
    for (const line of input.split('\n')) {
      if (line === '' || line.startsWith('*') || line === 'COMMIT') continue;
      const m = /^(:|-[AFXDI]) ?(\S+)\s?(.*)$/.exec(line);
      if (!m) throw new Error(`iptables-restore: bad line ${line}`);
      const [, op, chain = '', rest = ''] = m;
      const c = next.get(chain);
      if (op === ':') {
        if (!c) next.set(chain, { policy: null, rules: [] });
      } else if (!c) throw new Error(`iptables-restore: chain ${chain} does not exist`);
      else if (op === '-A') c.rules.push(rest);
      else if (op === '-I') {
        const pm = /^(\d+) (.*)$/.exec(rest);
        if (!pm || Number(pm[1]) > c.rules.length + 1) throw new Error(`iptables-restore: bad -I position in ${line}`);
        c.rules.splice(Number(pm[1]) - 1, 0, pm[2] ?? '');
      }
      else if (op === '-F') c.rules = [];
      else if (op === '-X') next.delete(chain);
      else if (op === '-D') {
        const i = c.rules.indexOf(rest);
        if (i < 0) throw new Error(`iptables-restore: no such rule in ${chain}`);
        c.rules.splice(i, 1);
      }
    }
    if (table === 'nat') this.nat = next;
    else if (table === 'filter6') this.filter6 = next;
    else this.chains = next;
  }
}
