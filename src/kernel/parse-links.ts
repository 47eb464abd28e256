import type { Link } from './types.ts';
import type { JsonRecord } from './json-fields.ts';
import {
  asRecord,
  optionalString,
  parseJsonRecords,
  requireNumber,
  requireString,
  requireStringArray,
} from './json-fields.ts';

const WHAT = 'ip -j -d link show';

/**
 * Parses `ip -j -d link show` output into links, in the order `ip` printed them.
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parseLinks(json: string): Link[] {
  return parseJsonRecords(json, WHAT).map(toLink);
}

function toLink(rec: JsonRecord, i: number): Link {
  const label = `entry ${i}`;
  const kind = readKind(rec, label);
  const isVeth = kind === 'veth';
  return {
    name: requireString(rec, 'ifname', WHAT, label),
    index: requireNumber(rec, 'ifindex', WHAT, label),
    kind,
    master: optionalString(rec, 'master', WHAT, label),
    mtu: requireNumber(rec, 'mtu', WHAT, label),
    up: requireStringArray(rec, 'flags', WHAT, label).includes('UP'),
    alias: optionalString(rec, 'ifalias', WHAT, label),
    group: readGroup(rec, label),
    mac: optionalString(rec, 'address', WHAT, label),
    // `link` names the peer only when it is in this namespace; across namespaces `ip` prints
    // `link_index` + `link_netnsid` instead, and the index means nothing here.
    peer: isVeth ? optionalString(rec, 'link', WHAT, label) : null,
    peerInOtherNetns: isVeth && rec['link_netnsid'] !== undefined,
    // Only bridges: the one kind whose address generation ledgernet sets (the isolated gateway mode).
    ...(kind === 'bridge' && typeof rec['inet6_addr_gen_mode'] === 'string' ? { addrGenMode: rec['inet6_addr_gen_mode'] } : {}),
  };
}

function readKind(rec: JsonRecord, label: string): string | null {
  const linkinfo = rec['linkinfo'];
  if (linkinfo === undefined) return null;
  return optionalString(asRecord(linkinfo, WHAT, `${label} linkinfo`), 'info_kind', WHAT, label);
}

function readGroup(rec: JsonRecord, label: string): string | null {
  const group = rec['group'];
  return typeof group === 'number' ? String(group) : optionalString(rec, 'group', WHAT, label);
}
