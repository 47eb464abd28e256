// Names of kernel objects derived from Docker ids. They are recorded in the events, so a later
// change of scheme does not rename objects that already exist.

const IFNAMSIZ = 15;

/** Name prefixes of the links ledgernet makes (bridges, veths, peers, ifbs, and one spare):
 * never a custom bridge name, so no name a user picks can collide with one ledgernet derives. */
export const RESERVED_PREFIXES: readonly string[] = ['lnb-', 'lnv-', 'lnp-', 'lni-', 'lnx-'];

export function bridgeName(networkId: string): string {
  return `lnb-${networkId.slice(0, 11)}`;
}

export function vethName(endpointId: string): string {
  return `lnv-${endpointId.slice(0, 11)}`;
}

/** The container-side end: what Join names as SrcName. */
export function peerName(endpointId: string): string {
  return `lnp-${endpointId.slice(0, 11)}`;
}

/** The ifb device that container egress is redirected to for ledgernet.egress_rate. */
export function ifbName(endpointId: string): string {
  return `lni-${endpointId.slice(0, 11)}`;
}

export function ownerAlias(kind: 'network' | 'endpoint' | 'peer' | 'ifb', id: string): string {
  return `ledgernet:${kind}:${id}`;
}

export function isValidIfName(name: string): boolean {
  return Buffer.byteLength(name) <= IFNAMSIZ && /^[A-Za-z0-9_.-]+$/.test(name);
}

/** The 12-hex short form of a Docker id, as `docker network ls` shows it. */
export function short(id: string): string {
  return id.slice(0, 12);
}
