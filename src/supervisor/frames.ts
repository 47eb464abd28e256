// The framed link between the supervisor and its worker: one kept-open unix connection carries
// every call, each message `[u32 BE length][JSON]`, a request `{i, m, b}` (id, method, body) and
// its reply `{i, s, b}` (id, status, body) in any order. Writes made in the same turn of the
// event loop go out as one write (corked until its check phase), so a burst of calls or of answers
// (a group commit acknowledges many at once) costs one syscall each way, and neither side parses
// HTTP a second time (row 6 of issue 11: the hop's HTTP client, server and per-call writes were
// most of the supervisor's CPU and a third of the worker's).
import type { Socket } from 'node:net';

export interface FrameRequest {
  readonly i: number;
  readonly m: string;
  readonly b: string;
}

export interface FrameReply {
  readonly i: number;
  readonly s: number;
  readonly b: string;
}

/** No call or answer comes near this; a larger length means a broken stream. */
const MAX_FRAME = 64 * 1024 * 1024;

/** Writes `msg` as one frame; writes in the same tick are sent together. */
export function sendFrame(socket: Socket, msg: FrameRequest | FrameReply): void {
  if (socket.destroyed) return;
  const json = Buffer.from(JSON.stringify(msg), 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.length, 0);
  if (socket.writableCorked === 0) {
    socket.cork();
    // After the poll phase, not the tick: the calls read from Docker's connections in one pass
    // of the event loop each end in their own tick, and should share a write.
    setImmediate(() => socket.uncork());
  }
  socket.write(head);
  socket.write(json);
}

/**
 * Calls `onMessage` with each whole frame's JSON as it arrives on `socket`; a frame that does not
 * parse or is too large destroys the socket (the other side's pending calls fail in transport).
 */
export function readFrames(socket: Socket, onMessage: (msg: unknown) => void): void {
  // The reads of a frame not yet whole are kept in a list and joined once it is (joining on every
  // read costs a large frame's length times its number of reads).
  let parts: Buffer[] = [];
  let have = 0;
  let need = 4;
  socket.on('data', (chunk: Buffer) => {
    parts.push(chunk);
    have += chunk.length;
    if (have < need) return;
    const buf = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, have);
    let at = 0;
    while (buf.length - at >= 4) {
      const len = buf.readUInt32BE(at);
      if (len > MAX_FRAME) {
        socket.destroy(new Error(`a frame of ${len} bytes on the worker link`));
        return;
      }
      if (buf.length - at - 4 < len) break;
      let msg: unknown;
      try {
        msg = JSON.parse(buf.toString('utf8', at + 4, at + 4 + len));
      } catch (e) {
        socket.destroy(new Error(`a frame that is not JSON on the worker link: ${(e as Error).message}`));
        return;
      }
      at += 4 + len;
      onMessage(msg);
    }
    const rest = buf.subarray(at);
    parts = rest.length === 0 ? [] : [rest];
    have = rest.length;
    need = rest.length >= 4 ? 4 + rest.readUInt32BE(0) : 4;
  });
}
