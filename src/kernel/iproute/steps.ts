// A link change as the kernel requests that make it, in order: one `ip -batch` line each
// (render.ts) or one rtnetlink message each (rtnl.ts), so the two ways say the same thing.
import { CREATE_GROUP, type LinkChange } from '../changes.ts';

/** The peer end of a veth pair, made in the same request. */
interface PeerSpec {
  readonly name: string;
  readonly mac: string | null;
  readonly mtu: number;
}

/**
 * One request. A link is made in CREATE_GROUP (the kernel ignores an ifalias given at creation,
 * and a crash may come before the next step); a `link.set` with an alias also moves the link back
 * to group `default`: a link named like ours that has neither is never taken for ours.
 */
export type LinkStep =
  | {
      readonly op: 'link.add';
      readonly name: string;
      readonly kind: 'bridge' | 'veth' | 'ifb';
      /** For a veth: its MTU, one tx and one rx queue per end, and the peer. */
      readonly veth?: { readonly mtu: number; readonly peer: PeerSpec };
    }
  | {
      readonly op: 'link.set';
      readonly name: string;
      readonly mtu?: number;
      /** Also sets group `default`. */
      readonly alias?: string;
      readonly master?: string;
      /** `addrgenmode none`: no new IPv6 link-local address. */
      readonly noLinkLocal?: true;
      readonly up?: true;
    }
  | { readonly op: 'link.del'; readonly name: string }
  | { readonly op: 'addr.add' | 'addr.del'; readonly dev: string; readonly cidr: string }
  /** The connected route the kernel makes for an address (`proto kernel`; IPv4 `scope link src`, IPv6 metric 256), replaced. */
  | { readonly op: 'route.replace'; readonly dev: string; readonly dst: string; readonly src: string };

/** The requests of one change, in the order they are sent. */
export function linkSteps(c: LinkChange): LinkStep[] {
  const replaced: LinkStep[] = 'replaces' in c ? (c.replaces ?? []).map((name) => ({ op: 'link.del', name })) : [];
  switch (c.kind) {
    case 'bridge.create':
      // The MTU is set after the link is made, not given at creation: only an MTU set on the
      // bridge itself (br_change_mtu) is kept; one given at creation is replaced by the smallest of
      // its ports', and by 1500 when its last port leaves (br_mtu_auto_adjust).
      return [
        ...replaced,
        { op: 'link.add', name: c.name, kind: 'bridge' },
        ...(c.noLinkLocal ? [{ op: 'link.set', name: c.name, noLinkLocal: true } as const] : []),
        { op: 'link.set', name: c.name, alias: c.alias, mtu: c.mtu, up: true },
      ];
    case 'veth.create':
      // One tx and one rx queue per end, what a veth uses anyway: without, the kernel allocates
      // one per CPU, then cuts the real number to one and waits for an RCU grace period while
      // holding the rtnl lock (netif_set_real_num_tx_queues), once per veth; 15-20 % of the CPU
      // of creating 2,000 (`ethtool -L` cannot raise a container's channels above 1 then).
      return [
        ...replaced,
        { op: 'link.add', name: c.name, kind: 'veth', veth: { mtu: c.mtu, peer: { name: c.peer, mac: c.peerMac, mtu: c.mtu } } },
        { op: 'link.set', name: c.peer, alias: c.peerAlias },
        { op: 'link.set', name: c.name, alias: c.alias, master: c.master, up: true },
      ];
    case 'ifb.create':
      return [...replaced, { op: 'link.add', name: c.name, kind: 'ifb' }, { op: 'link.set', name: c.name, alias: c.alias, up: true }];
    case 'link.set': {
      const { name, mtu, alias, master, noLinkLocal, up } = c;
      return [{ op: 'link.set', name, ...(mtu === undefined ? {} : { mtu }), ...(alias === undefined ? {} : { alias }), ...(master === undefined ? {} : { master }), ...(noLinkLocal ? { noLinkLocal } : {}), ...(up ? { up } : {}) }];
    }
    case 'addr.add':
    case 'addr.del':
      return [{ op: c.kind, dev: c.dev, cidr: c.cidr }];
    case 'route.add':
      return [{ op: 'route.replace', dev: c.dev, dst: c.dst, src: c.src }];
    case 'link.delete':
      return [{ op: 'link.del', name: c.name }];
  }
}

const ONE_QUEUE = 'numtxqueues 1 numrxqueues 1';

/** The `ip -batch` line of one step. */
export function stepLine(s: LinkStep): string {
  switch (s.op) {
    case 'link.add': {
      if (!s.veth) return `link add name ${s.name} group ${CREATE_GROUP} type ${s.kind}`;
      const { mtu, peer } = s.veth;
      return `link add name ${s.name} mtu ${mtu} group ${CREATE_GROUP} ${ONE_QUEUE} type veth peer name ${peer.name}${peer.mac ? ` address ${peer.mac}` : ''} mtu ${peer.mtu} group ${CREATE_GROUP} ${ONE_QUEUE}`;
    }
    case 'link.set': {
      const parts = [`link set dev ${s.name}`];
      if (s.mtu !== undefined) parts.push(`mtu ${s.mtu}`);
      if (s.alias !== undefined) parts.push(`alias ${s.alias} group default`);
      if (s.master !== undefined) parts.push(`master ${s.master}`);
      if (s.noLinkLocal) parts.push('addrgenmode none');
      if (s.up) parts.push('up');
      return parts.join(' ');
    }
    case 'link.del':
      return `link del dev ${s.name}`;
    case 'addr.add':
      return `addr add ${s.cidr} dev ${s.dev}${s.cidr.includes(':') ? ' nodad' : ''}`;
    case 'addr.del':
      return `addr del ${s.cidr} dev ${s.dev}`;
    case 'route.replace':
      return s.dst.includes(':')
        ? `route replace ${s.dst} dev ${s.dev} proto kernel metric 256`
        : `route replace ${s.dst} dev ${s.dev} proto kernel scope link src ${s.src}`;
  }
}
