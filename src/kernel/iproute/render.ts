import { CREATE_GROUP, type LinkChange } from '../changes.ts';

const ONE_QUEUE = 'numtxqueues 1 numrxqueues 1';

const LINK_KINDS: ReadonlySet<string> = new Set(['bridge.create', 'veth.create', 'ifb.create', 'link.set', 'addr.add', 'addr.del', 'route.add', 'link.delete']);

/** A change that `ip -batch` applies. */
export function isLinkChange<T extends { readonly kind: string }>(c: T): c is T & LinkChange {
  return LINK_KINDS.has(c.kind);
}

/**
 * The `ip -batch` lines for one change. A link is created in CREATE_GROUP (the kernel ignores an
 * ifalias given to `link add`, and a crash may come before the next line), and the line that
 * sets its alias moves it back to group `default`: a link named like ours that has neither is
 * never taken for ours.
 */
export function ipLines(c: LinkChange): string[] {
  const labelled = (name: string, alias: string) => `link set dev ${name} alias ${alias} group default`;
  const replaced = 'replaces' in c ? (c.replaces ?? []).map((n) => `link del dev ${n}`) : [];
  switch (c.kind) {
    case 'bridge.create':
      // The MTU is set after the link is made, not given to `link add`: only an MTU set on the
      // bridge itself (br_change_mtu) is kept; one given at creation is replaced by the smallest of
      // its ports', and by 1500 when its last port leaves (br_mtu_auto_adjust).
      return [
        ...replaced,
        `link add name ${c.name} group ${CREATE_GROUP} type bridge`,
        ...(c.noLinkLocal ? [`link set dev ${c.name} addrgenmode none`] : []),
        `${labelled(c.name, c.alias)} mtu ${c.mtu} up`,
      ];
    case 'veth.create':
      // One tx and one rx queue per end, what a veth uses anyway: without, the kernel allocates
      // one per CPU, then cuts the real number to one and waits for an RCU grace period while
      // holding the rtnl lock (netif_set_real_num_tx_queues), once per veth; 15-20 % of the CPU
      // of creating 2,000 (`ethtool -L` cannot raise a container's channels above 1 then).
      return [
        ...replaced,
        `link add name ${c.name} mtu ${c.mtu} group ${CREATE_GROUP} ${ONE_QUEUE} type veth peer name ${c.peer}${c.peerMac ? ` address ${c.peerMac}` : ''} mtu ${c.mtu} group ${CREATE_GROUP} ${ONE_QUEUE}`,
        labelled(c.peer, c.peerAlias),
        `${labelled(c.name, c.alias)} master ${c.master} up`,
      ];
    case 'ifb.create':
      return [...replaced, `link add name ${c.name} group ${CREATE_GROUP} type ifb`, `${labelled(c.name, c.alias)} up`];
    case 'link.set': {
      const parts = [`link set dev ${c.name}`];
      if (c.mtu !== undefined) parts.push(`mtu ${c.mtu}`);
      if (c.alias !== undefined) parts.push(`alias ${c.alias} group default`);
      if (c.master !== undefined) parts.push(`master ${c.master}`);
      if (c.noLinkLocal) parts.push('addrgenmode none');
      if (c.up) parts.push('up');
      return [parts.join(' ')];
    }
    case 'addr.add':
      return [`addr add ${c.cidr} dev ${c.dev}${c.cidr.includes(':') ? ' nodad' : ''}`];
    case 'addr.del':
      return [`addr del ${c.cidr} dev ${c.dev}`];
    case 'route.add':
      // What the kernel itself adds for the address; `replace`: no failure when it came back meanwhile.
      return c.dst.includes(':')
        ? [`route replace ${c.dst} dev ${c.dev} proto kernel metric 256`]
        : [`route replace ${c.dst} dev ${c.dev} proto kernel scope link src ${c.src}`];
    case 'link.delete':
      return [`link del dev ${c.name}`];
  }
}
