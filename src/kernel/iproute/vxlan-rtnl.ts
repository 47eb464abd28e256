// The VXLAN changes of cluster networks as rtnetlink requests sent from this process
// (rtnl-apply.ts): the same requests `ip -batch` and `bridge -batch` send for the lines of
// vxlan.ts, without an `ip` or `bridge` process (a host with cluster networks writes them
// whenever a container comes or goes on another host). In the batches' order: devices, then
// port flags and FDB entries (which need their device on its bridge), then neighbour entries,
// then the devices no network wants. What iproute2 6.1 puts in each request: `vxlan id N dstport
// P local L nolearning` (IFLA_VXLAN_ID, _PORT in network order, _LOCAL or _LOCAL6, _LEARNING 0);
// `bridge link set … neigh_suppress on learning off` (IFLA_PROTINFO, nested, to the bridge);
// `bridge fdb` (state NOARP, with PERMANENT for `permanent` and REACHABLE for `static`; `self` or
// `master`; append or replace); `ip neigh` (state PERMANENT).
import { CREATE_GROUP } from '../changes.ts';
import { cstr, encodeAttrs, u32, u8, type Attr } from '../netlink-attrs.ts';
import { missingDevice, refusal, type Request, type StepCodec } from '../rtnl-apply.ts';
import { FLOOD_MAC } from '../parse-vxlan.ts';
import { devicesOf, encodeStep, ipBytes } from './rtnl.ts';
import type { LinkStep } from './steps.ts';
import { recreated, VXLAN_PORT, type VxlanChange } from './vxlan.ts';

const RTM_NEWLINK = 16;
const RTM_SETLINK = 19;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_PROTINFO = 12;
const IFLA_LINKINFO = 18;
const IFLA_GROUP = 27;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_LOCAL6 = 17;
const IFLA_BRPORT_LEARNING = 8;
const IFLA_BRPORT_NEIGH_SUPPRESS = 32;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_REACHABLE = 0x02;
const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const NTF_MASTER = 0x04;
const ENODEV = 19;

/** One request of a VXLAN change: a link step (labelling, moving, deleting a device) or one of these. */
export type VxlanStep =
  | Extract<LinkStep, { op: 'link.set' | 'link.del' }>
  | { readonly op: 'vxlan.add'; readonly name: string; readonly mtu: number; readonly vni: number; readonly local: string }
  /** `neigh_suppress on learning off` on a bridge port. */
  | { readonly op: 'port.flags'; readonly dev: string }
  | { readonly op: 'fdb.add'; readonly dev: string; readonly mac: string; readonly dst: string | null; readonly append: boolean }
  | { readonly op: 'fdb.del'; readonly dev: string; readonly mac: string; readonly dst: string | null }
  | { readonly op: 'neigh.set'; readonly dev: string; readonly dst: string; readonly lladdr: string }
  | { readonly op: 'neigh.del'; readonly dev: string; readonly dst: string };

/** A change's steps with the batch each belongs to (0 devices, 1 FDB and port flags, 2 neighbours, 3 deleted devices). */
function phased(c: VxlanChange): Array<readonly [number, VxlanStep]> {
  switch (c.kind) {
    case 'vxlan.create':
      return [
        [0, { op: 'vxlan.add', name: c.name, mtu: c.mtu, vni: c.vni, local: c.local }],
        [0, { op: 'link.set', name: c.name, alias: c.alias, master: c.master, up: true }],
        [1, { op: 'port.flags', dev: c.name }],
      ];
    case 'vxlan.set':
      return [
        [0, { op: 'link.set', name: c.name, mtu: c.mtu, master: c.master, up: true }],
        [1, { op: 'port.flags', dev: c.name }],
      ];
    case 'fdb.add':
      return [[1, { op: 'fdb.add', dev: c.dev, mac: c.mac, dst: c.dst, append: c.dst !== null && c.mac === FLOOD_MAC }]];
    case 'fdb.del':
      return [[1, { op: 'fdb.del', dev: c.dev, mac: c.mac, dst: c.dst }]];
    case 'neigh.set':
      return [[2, { op: 'neigh.set', dev: c.dev, dst: c.dst, lladdr: c.lladdr }]];
    case 'neigh.del':
      return [[2, { op: 'neigh.del', dev: c.dev, dst: c.dst }]];
    case 'vxlan.delete':
      return [[3, { op: 'link.del', name: c.name }]];
  }
}

/**
 * The steps of the changes in the order the batches ran them, each with the index of its change.
 * A device deleted and created again in the same changes (its tunnel changed) is deleted first.
 */
export function vxlanSteps(changes: readonly VxlanChange[]): Array<{ readonly change: number; readonly step: VxlanStep }> {
  const remade = recreated(changes);
  const first = (c: VxlanChange, phase: number) => (c.kind === 'vxlan.delete' && remade.has(c.name) ? -1 : phase);
  const all = changes.flatMap((c, change) => phased(c).map(([phase, step]) => ({ phase: first(c, phase), change, step })));
  return all.sort((a, b) => a.phase - b.phase).map(({ change, step }) => ({ change, step }));
}

const isLinkStep = (s: VxlanStep): s is Extract<LinkStep, { op: 'link.set' | 'link.del' }> => s.op === 'link.set' || s.op === 'link.del';

/** struct ndmsg. */
function ndmsg(family: number, ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));

/** The request of one step, its devices given by index; a string says why there is none. Pure. */
export function encodeVxlanStep(s: VxlanStep, index: (name: string) => number): Request | string {
  if (isLinkStep(s)) return encodeStep(s, index);
  if ('mac' in s && !MAC.test(s.mac)) return `"${s.mac}" is not a MAC address`;
  if ('lladdr' in s && !MAC.test(s.lladdr)) return `"${s.lladdr}" is not a MAC address`;
  switch (s.op) {
    case 'vxlan.add': {
      const local = ipBytes(s.local);
      if (!local) return `"${s.local}" is not an address`;
      const port = Buffer.alloc(2);
      port.writeUInt16BE(VXLAN_PORT);
      const data: Attr[] = [[IFLA_VXLAN_ID, u32(s.vni)], [IFLA_VXLAN_PORT, port], [local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, local.bytes], [IFLA_VXLAN_LEARNING, u8(0)]];
      const attrs: Attr[] = [[IFLA_IFNAME, cstr(s.name)], [IFLA_MTU, u32(s.mtu)], [IFLA_GROUP, u32(Number(CREATE_GROUP))], [IFLA_LINKINFO, [[IFLA_INFO_KIND, Buffer.from('vxlan')], [IFLA_INFO_DATA, data]]]];
      return { type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, body: Buffer.concat([Buffer.alloc(16), encodeAttrs(attrs)]) };
    }
    case 'port.flags': {
      const head = Buffer.alloc(16);
      head.writeUInt8(AF_BRIDGE, 0);
      head.writeInt32LE(index(s.dev), 4);
      const flags: Attr = [IFLA_PROTINFO | NLA_F_NESTED, [[IFLA_BRPORT_NEIGH_SUPPRESS, u8(1)], [IFLA_BRPORT_LEARNING, u8(0)]]];
      return { type: RTM_SETLINK, flags: 0, body: Buffer.concat([head, encodeAttrs([flags])]) };
    }
    case 'fdb.add':
    case 'fdb.del': {
      const dst = s.dst === null ? null : ipBytes(s.dst);
      if (s.dst !== null && !dst) return `"${s.dst}" is not an address`;
      const add = s.op === 'fdb.add';
      // `self permanent` toward a VTEP, `master static` on the bridge; a deletion names which.
      const state = !add ? NUD_NOARP : dst ? NUD_NOARP | NUD_PERMANENT : NUD_NOARP | NUD_REACHABLE;
      const head = ndmsg(AF_BRIDGE, index(s.dev), state, dst ? NTF_SELF : NTF_MASTER);
      const attrs: Attr[] = [[NDA_LLADDR, macBytes(s.mac)], ...(dst ? [[NDA_DST, dst.bytes] as const] : [])];
      const flags = !add ? 0 : NLM_F_CREATE | (s.op === 'fdb.add' && s.append ? NLM_F_APPEND : NLM_F_REPLACE);
      return { type: add ? RTM_NEWNEIGH : RTM_DELNEIGH, flags, body: Buffer.concat([head, encodeAttrs(attrs)]) };
    }
    case 'neigh.set':
    case 'neigh.del': {
      const dst = ipBytes(s.dst);
      if (!dst) return `"${s.dst}" is not an address`;
      const head = ndmsg(dst.family === 4 ? AF_INET : AF_INET6, index(s.dev), NUD_PERMANENT, 0);
      if (s.op === 'neigh.del') return { type: RTM_DELNEIGH, flags: 0, body: Buffer.concat([head, encodeAttrs([[NDA_DST, dst.bytes]])]) };
      return { type: RTM_NEWNEIGH, flags: NLM_F_CREATE | NLM_F_REPLACE, body: Buffer.concat([head, encodeAttrs([[NDA_DST, dst.bytes], [NDA_LLADDR, macBytes(s.lladdr)]])]) };
    }
  }
}

/** How VXLAN steps become requests: devices by index, a device's deletion from another thread. */
export const VXLAN_CODEC: StepCodec<VxlanStep> = {
  devices: (s) => (isLinkStep(s) ? devicesOf(s) : s.op === 'vxlan.add' ? [] : [[s.dev, missingDevice(s.dev)]]),
  encode: encodeVxlanStep,
  remakes: (s) => (s.op === 'vxlan.add' || s.op === 'link.del' ? s.name : null),
  slow: (s) => s.op === 'link.del',
  failure: (s, a, nl) => (a.errno === ENODEV && isLinkStep(s) ? missingDevice(s.name) : refusal(nl, a)),
};
