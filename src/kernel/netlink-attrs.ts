// Reading rtnetlink attributes (struct rtattr: length, type, value; 4-byte aligned) by offsets.
// Offsets, not views: a link dump has ~200,000 attributes at 2,000 endpoints, and a Buffer view
// of each cost more than the kernel's whole dump.

/**
 * The first attribute of `type` among those in `buf` from `from` to `to`: the offsets of its
 * value, or null.
 */
export function find(buf: Buffer, from: number, to: number, type: number): [number, number] | null {
  let off = from;
  while (off + 4 <= to) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > to) return null;
    // NLA_F_NESTED and NLA_F_NET_BYTEORDER are flags in the top bits of the type.
    if ((buf.readUInt16LE(off + 2) & 0x3fff) === type) return [off + 4, off + len];
    off += (len + 3) & ~3;
  }
  return null;
}

/** The NUL-terminated string from `from` to `to` (the kernel counts the NUL in the attribute's length). */
export const cString = (b: Buffer, from: number, to: number) => b.toString('utf8', from, to > from && b[to - 1] === 0 ? to - 1 : to);

