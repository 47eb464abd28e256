// Reading rtnetlink attributes (struct rtattr: length, type, value; 4-byte aligned) by offsets,
// and writing them for requests. Offsets, not views: a link dump has ~200,000 attributes at 2,000 endpoints, and a Buffer view
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

/** One attribute: its type and its value, or the attributes nested in it. */
export type Attr = readonly [type: number, value: Buffer | readonly Attr[]];

/** Attributes in rtnetlink's layout (length, type, value, padded to 4 bytes), nested where the value is a list. */
export function encodeAttrs(list: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, value] of list) {
    const v = Buffer.isBuffer(value) ? value : encodeAttrs(value);
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + v.length, 0);
    head.writeUInt16LE(type, 2);
    parts.push(head, v, Buffer.alloc(((v.length + 3) & ~3) - v.length));
  }
  return Buffer.concat(parts);
}

export const u8 = (n: number): Buffer => Buffer.from([n]);
export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
/** A name as `ip` sends it: NUL-terminated. */
export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);

