import type { Link, VxlanInfo } from './types.ts';
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
const WHAT_PLAIN = 'ip -j link show';

/** What `-d` adds to a link that a plan reads: its kind, and a bridge's IPv6 address generation. */
export type LinkDetail = Pick<Link, 'kind' | 'addrGenMode'>;

/**
 * Parses `ip -j -d link show` output into links, in the order `ip` printed them.
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parseLinks(json: string): Link[] {
  return parseJsonRecords(json, WHAT).map((rec, i) => {
    const detail = detailOf(rec, `entry ${i}`);
    const link = toLink(rec, i, WHAT, detail);
    return detail.kind === 'vxlan' ? { ...link, vxlan: readVxlan(rec, `entry ${i}`) } : link;
  });
}

/**
 * Parses `ip -j link show` output (no `-d`: a third of the text, and no timers, so the same
 * links print the same text) into links, their detail from `detailOf` (by ifindex and name).
 * Null when `detailOf` does not know a link's detail, or a veth it knows prints no peer: the
 * caller reads them with `-d`.
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parsePlainLinks(json: string, detailOf: (index: number, name: string) => LinkDetail | undefined): Link[] | null {
  const out: Link[] = [];
  for (const [i, rec] of parseJsonRecords(json, WHAT_PLAIN).entries()) {
    const label = `entry ${i}`;
    const detail = detailOf(requireNumber(rec, 'ifindex', WHAT_PLAIN, label), requireString(rec, 'ifname', WHAT_PLAIN, label));
    // A veth always names its peer (`link`, or `link_index` across namespaces): without, it is not the veth it was.
    if (detail === undefined || (detail.kind === 'veth' && rec['link'] === undefined && rec['link_index'] === undefined)) return null;
    out.push(toLink(rec, i, WHAT_PLAIN, detail));
  }
  return out;
}

function detailOf(rec: JsonRecord, label: string): LinkDetail {
  const kind = readKind(rec, label);
  // Only bridges: the one kind whose address generation ledgernet sets (the isolated gateway mode).
  return { kind, ...(kind === 'bridge' && typeof rec['inet6_addr_gen_mode'] === 'string' ? { addrGenMode: rec['inet6_addr_gen_mode'] } : {}) };
}

function toLink(rec: JsonRecord, i: number, what: string, detail: LinkDetail): Link {
  const label = `entry ${i}`;
  const isVeth = detail.kind === 'veth';
  return {
    name: requireString(rec, 'ifname', what, label),
    index: requireNumber(rec, 'ifindex', what, label),
    kind: detail.kind,
    master: optionalString(rec, 'master', what, label),
    mtu: requireNumber(rec, 'mtu', what, label),
    up: requireStringArray(rec, 'flags', what, label).includes('UP'),
    alias: optionalString(rec, 'ifalias', what, label),
    group: readGroup(rec, label, what),
    mac: optionalString(rec, 'address', what, label),
    // `link` names the peer only when it is in this namespace; across namespaces `ip` prints
    // `link_index` + `link_netnsid` instead, and the index means nothing here.
    peer: isVeth ? optionalString(rec, 'link', what, label) : null,
    peerInOtherNetns: isVeth && rec['link_netnsid'] !== undefined,
    ...(detail.addrGenMode === undefined ? {} : { addrGenMode: detail.addrGenMode }),
    ...readAltnames(rec, label, what),
  };
}

/** `altnames` as `ip` prints it (only for a link that has some), else nothing. */
function readAltnames(rec: JsonRecord, label: string, what: string): { altnames?: readonly string[] } {
  if (rec['altnames'] === undefined) return {};
  const names = requireStringArray(rec, 'altnames', what, label);
  return names.length > 0 ? { altnames: names } : {};
}

function readKind(rec: JsonRecord, label: string): string | null {
  const linkinfo = rec['linkinfo'];
  if (linkinfo === undefined) return null;
  return optionalString(asRecord(linkinfo, WHAT, `${label} linkinfo`), 'info_kind', WHAT, label);
}

/** A VXLAN device's `info_data`: `id`, `local` (`local6` for IPv6; neither when it has none) and `port`. */
function readVxlan(rec: JsonRecord, label: string): VxlanInfo {
  const data = asRecord(asRecord(rec['linkinfo'], WHAT, `${label} linkinfo`)['info_data'], WHAT, `${label} linkinfo.info_data`);
  const local = optionalString(data, 'local', WHAT, label) ?? optionalString(data, 'local6', WHAT, label);
  return { vni: requireNumber(data, 'id', WHAT, label), local, port: requireNumber(data, 'port', WHAT, label) };
}

function readGroup(rec: JsonRecord, label: string, what: string): string | null {
  const group = rec['group'];
  return typeof group === 'number' ? String(group) : optionalString(rec, 'group', what, label);
}
