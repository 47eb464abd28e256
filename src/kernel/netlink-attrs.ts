// Reading rtnetlink attributes (struct rtattr: length, type, value; 4-byte aligned) by offsets.
// Offsets, not views: a link dump has ~200,000 attributes at 2,000 endpoints, and a Buffer view
// of each cost more than the kernel's whole dump.

/** The address families of <sys/socket.h>, as the dumps' messages and attributes carry them. */
export const AF_INET = 2;
export const AF_INET6 = 10;

/**
 * The first attribute of `type` among those in `buf` from `from` to `to`: the offset of its
 * value (its end: `valueEnd`), or -1.
 */
export function find(buf: Buffer, from: number, to: number, type: number): number {
  let off = from;
  while (off + 4 <= to) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > to) return -1;
    // NLA_F_NESTED and NLA_F_NET_BYTEORDER are flags in the top bits of the type.
    if ((buf.readUInt16LE(off + 2) & 0x3fff) === type) return off + 4;
    off += (len + 3) & ~3;
  }
  return -1;
}

/** Where the value of the attribute whose value starts at `start` ends. */
export const valueEnd = (buf: Buffer, start: number): number => start - 4 + buf.readUInt16LE(start - 4);

/** The NUL-terminated string from `from` to `to` (the kernel counts the NUL in the attribute's length). */
export const cString = (b: Buffer, from: number, to: number) => b.toString('utf8', from, to > from && b[to - 1] === 0 ? to - 1 : to);

