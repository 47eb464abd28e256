// The VXLAN objects of cluster networks as changes (plain data, like kernel/changes.ts) and their
// command lines: the device for `ip -batch`, the FDB entries for `bridge -batch`, the neighbour
// entries for `ip -batch`.
import { CREATE_GROUP } from '../changes.ts';
import { FLOOD_MAC } from '../parse-vxlan.ts';

interface Base {
  readonly owner: { readonly networkId: string | null; readonly endpointId: string | null };
  readonly reason: 'missing' | 'orphan' | 'drifted';
  readonly detail?: string;
}

export type VxlanChange =
  | (Base & {
      readonly kind: 'vxlan.create';
      readonly name: string;
      readonly alias: string;
      readonly vni: number;
      readonly local: string;
      readonly mtu: number;
      readonly master: string;
    })
  /** `dst` null: the bridge's entry (the remote MAC is behind this port), else the device's (→ VTEP). */
  | (Base & { readonly kind: 'fdb.add'; readonly dev: string; readonly mac: string; readonly dst: string | null })
  | (Base & { readonly kind: 'fdb.del'; readonly dev: string; readonly mac: string; readonly dst: string | null })
  | (Base & { readonly kind: 'neigh.set'; readonly dev: string; readonly dst: string; readonly lladdr: string })
  | (Base & { readonly kind: 'neigh.del'; readonly dev: string; readonly dst: string })
  /** A device of ours no cluster network wants any more; or one made again (a `vxlan.create` of its name follows): deleted first. */
  | (Base & { readonly kind: 'vxlan.delete'; readonly name: string })
  /** A device of ours with another MTU, off its bridge or down. */
  | (Base & { readonly kind: 'vxlan.set'; readonly name: string; readonly mtu: number; readonly master: string });

const KINDS: ReadonlySet<string> = new Set(['vxlan.create', 'vxlan.set', 'vxlan.delete', 'fdb.add', 'fdb.del', 'neigh.set', 'neigh.del']);

/** Whether a plan's item (an Action or a VxlanChange) is one of these. */
export function isVxlanChange(c: { readonly kind: string }): c is VxlanChange {
  return KINDS.has(c.kind);
}

/** The object a change is about, for plans and logs: `lnx-…`, `lnx-… MAC → VTEP`, `lnb-… ADDRESS`. */
export function vxlanKey(c: VxlanChange): string {
  switch (c.kind) {
    case 'fdb.add':
    case 'fdb.del':
      return `${c.dev} ${c.mac} ${c.dst === null ? '(bridge port)' : `dst ${c.dst}`}`;
    case 'neigh.set':
      return `${c.dev} ${c.dst} lladdr ${c.lladdr}`;
    case 'neigh.del':
      return `${c.dev} ${c.dst}`;
    default:
      return c.name;
  }
}

/** The devices the changes delete and create again (a `vxlan.delete` and a `vxlan.create` of one name): deleted first. */
export function recreated(changes: readonly VxlanChange[]): Set<string> {
  const created = new Set(changes.flatMap((c) => (c.kind === 'vxlan.create' ? [c.name] : [])));
  return new Set(changes.flatMap((c) => (c.kind === 'vxlan.delete' && created.has(c.name) ? [c.name] : [])));
}

/** VXLAN's IANA port. */
export const VXLAN_PORT = 4789;

/** `ip -batch` lines: the device (created in CREATE_GROUP, then labelled) and neighbour entries. */
export function vxlanIpLines(c: VxlanChange): string[] {
  switch (c.kind) {
    case 'vxlan.create':
      return [
        `link add name ${c.name} mtu ${c.mtu} group ${CREATE_GROUP} type vxlan id ${c.vni} dstport ${VXLAN_PORT} local ${c.local} nolearning`,
        `link set dev ${c.name} alias ${c.alias} group default master ${c.master} up`,
      ];
    case 'vxlan.set':
      return [`link set dev ${c.name} mtu ${c.mtu} master ${c.master} up`];
    case 'neigh.set':
      return [`neigh replace ${c.dst} lladdr ${c.lladdr} dev ${c.dev} nud permanent`];
    case 'neigh.del':
      return [`neigh del ${c.dst} dev ${c.dev}`];
    case 'vxlan.delete':
      return [`link del dev ${c.name}`];
    default:
      return [];
  }
}

/**
 * `bridge -batch` lines. A new device's port answers ARP from the bridge's neighbour entries
 * (`neigh_suppress`: no ARP crosses the tunnel, the gateway's is answered locally) and learns
 * nothing. A remote MAC has one VTEP (`replace`); the flood list has one entry per VTEP
 * (`append`), and each goes by its own `dst`.
 */
export function vxlanFdbLines(c: VxlanChange): string[] {
  switch (c.kind) {
    case 'vxlan.create':
    case 'vxlan.set':
      return [`link set dev ${c.name} neigh_suppress on learning off`];
    case 'fdb.add':
      if (c.dst === null) return [`fdb replace ${c.mac} dev ${c.dev} master static`];
      return [`fdb ${c.mac === FLOOD_MAC ? 'append' : 'replace'} ${c.mac} dev ${c.dev} dst ${c.dst} self permanent`];
    case 'fdb.del':
      return [c.dst === null ? `fdb del ${c.mac} dev ${c.dev} master` : `fdb del ${c.mac} dev ${c.dev} dst ${c.dst} self`];
    default:
      return [];
  }
}
