// Names and ownership markers of the kernel objects ledgernet makes: the only module that spells
// the link prefixes (lnb-, lnv-, …) and the `ledgernet:` tag (link ifalias, rule comment).
// test/unit/events/naming-spelled-once.test.ts fails when code elsewhere in src spells them.
// Names are recorded in the events, so a later change of scheme does not rename objects that
// already exist.

const IFNAMSIZ = 15;

/** Link name prefixes, by what the link is. `vxlan` is kept for cluster networks. */
const PREFIX = { bridge: 'lnb-', veth: 'lnv-', peer: 'lnp-', ifb: 'lni-', vxlan: 'lnx-' } as const;

/** Name prefixes of the links ledgernet makes (bridges, veths, peers, ifbs, and one spare):
 * never a custom bridge name, so no name a user picks can collide with one ledgernet derives. */
export const RESERVED_PREFIXES: readonly string[] = Object.values(PREFIX);

/** The prefix of every bridge name ledgernet derives (custom names aside). */
export const BRIDGE_PREFIX: string = PREFIX.bridge;

/** The prefix of host-side veth names: the devices whose ingress filters `observe` reads. */
export const VETH_PREFIX: string = PREFIX.veth;

export function bridgeName(networkId: string): string {
  return `${PREFIX.bridge}${networkId.slice(0, 11)}`;
}

export function vethName(endpointId: string): string {
  return `${PREFIX.veth}${endpointId.slice(0, 11)}`;
}

/** The container-side end: what Join names as SrcName. */
export function peerName(endpointId: string): string {
  return `${PREFIX.peer}${endpointId.slice(0, 11)}`;
}

/** The ifb device that container egress is redirected to for ledgernet.egress_rate. */
export function ifbName(endpointId: string): string {
  return `${PREFIX.ifb}${endpointId.slice(0, 11)}`;
}

/** The VXLAN device of a cluster network, enslaved to its bridge. */
export function vxlanName(networkId: string): string {
  return `${PREFIX.vxlan}${networkId.slice(0, 11)}`;
}

/** Host-side links with a derived name whose drift matters: bridges, veths, ifbs (not the
 * container-side peers, which Docker moves and renames). */
export function isDerivedHostLinkName(name: string): boolean {
  return [PREFIX.bridge, PREFIX.veth, PREFIX.ifb].some((p) => name.startsWith(p));
}

/** A host-side veth name: such a link belongs on its network's bridge. */
export function isVethName(name: string): boolean {
  return name.startsWith(PREFIX.veth);
}

/** Marks what ledgernet owns: the start of every link ifalias and iptables rule comment. */
export const OWNER_TAG = 'ledgernet:';

export type AliasKind = 'network' | 'endpoint' | 'peer' | 'ifb' | 'vxlan';

export function ownerAlias(kind: AliasKind, id: string): string {
  return `${OWNER_TAG}${kind}:${id}`;
}

/** An ifalias or rule comment that carries ledgernet's tag (any kind, any id). */
export function isOwnerTagged(text: string | null): boolean {
  return (text ?? '').startsWith(OWNER_TAG);
}

/** The kind and id an ifalias of `ownerAlias` names; null for anything else. */
export function parseOwnerAlias(alias: string | null): { kind: AliasKind; id: string } | null {
  const m = /^([a-z]+):(.+)$/.exec(isOwnerTagged(alias) ? (alias ?? '').slice(OWNER_TAG.length) : '');
  if (!m) return null;
  const kind = m[1] as AliasKind;
  return ['network', 'endpoint', 'peer', 'ifb', 'vxlan'].includes(kind) ? { kind, id: m[2] ?? '' } : null;
}

export function isValidIfName(name: string): boolean {
  // The kernel refuses `.` and `..` too (dev_valid_name).
  return Buffer.byteLength(name) <= IFNAMSIZ && /^[A-Za-z0-9_.-]+$/.test(name) && name !== '.' && name !== '..';
}

/** The 12-hex short form of a Docker id, as `docker network ls` shows it. */
export function short(id: string): string {
  return id.slice(0, 12);
}
