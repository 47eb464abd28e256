// The nf_tables ruleset's generation: a number the kernel raises with every commit to any
// nf_tables table of the namespace (nft, iptables-nft, Docker's own rules, ours), and with nothing
// else (a read commits nothing; packets move counters, which iptables-save does not print without
// `-c`). The full observe asks for it before it reads the firewall (observe.ts): the same
// generation as at the last read means the same rules, so that read is the answer and no
// `iptables-save` / `ip6tables-save` process runs. Asked over NETLINK_NETFILTER (NFT_MSG_GETGEN)
// from this process, in microseconds; null when it cannot be asked, and then the firewall is read.
import { find } from './netlink-attrs.ts';
import { NETLINK_NETFILTER, openRequests, type NetlinkMessage } from './netlink.ts';

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;
/** The request's type: the nf_tables subsystem's GETGEN. */
export const GETGEN = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
const NEWGEN = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN;
/** nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id 0. */
const GETGEN_BODY = Buffer.alloc(4);

/** The generation an answer's NFT_MSG_NEWGEN carries (NFTA_GEN_ID, big-endian); null when none does. */
export function generationOf(messages: readonly NetlinkMessage[]): number | null {
  for (const m of messages) {
    if (m.type !== NEWGEN) continue;
    // The payload starts with the 4-byte nfgenmsg, then the attributes.
    const at = find(m.payload, 4, m.payload.length, NFTA_GEN_ID);
    if (at >= 0 && at + 4 <= m.payload.length) return m.payload.readUInt32BE(at);
  }
  return null;
}

/**
 * The nf_tables generation of `netns` (a name under /run/netns; undefined: ours); null when it
 * cannot be asked (no koffi, no nf_tables in this kernel, a refusal, a timeout). Never throws:
 * the caller then reads the firewall as it would without it.
 */
export async function readNfGeneration(netns: string | undefined, timeoutMs: number): Promise<number | null> {
  const req = await openRequests(netns, timeoutMs, 'read the nf_tables generation', NETLINK_NETFILTER).catch(() => null);
  if (req === null) return null;
  try {
    const answer = await req.request(GETGEN, 0, GETGEN_BODY);
    return answer.errno === 0 ? generationOf(answer.messages) : null;
  } catch {
    return null;
  } finally {
    req.close();
  }
}
