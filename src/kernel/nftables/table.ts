// The one nftables table ledgernet owns: everything of the nftables backend lives in it, so
// the table itself is the ownership mark (no rule comments needed), and removing it removes all.

/** `inet`: one table for IPv4 and IPv6. */
export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'ledgernet';
/** How changes and the plan name the table: `inet ledgernet`. */
export const NFT_TABLE_LABEL = `${NFT_FAMILY} ${NFT_TABLE}`;
