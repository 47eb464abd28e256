// rtnetlink dumps from this process (libc's socket calls through koffi), for the full observe's
// reads that processes made dear (observe-netlink.ts). The kernel fills a dump's next datagram
// within the recv that takes the last one, so a recv never waits: they are made synchronously
// (koffi's async calls cost ~50 µs each on this thread, ~250 of them a pass at 2,000
// endpoints), and the event loop gets a turn every few datagrams (~1 ms of the kernel's work).
// In another namespace the socket is made there (setns, socket, setns back: a socket stays in the
// namespace it was made in) and closed after each dump, so nothing pins the namespace while idle.
// Null from `openNetlink` when koffi or libc cannot be loaded: the caller runs the process instead.
import { closeSync, openSync } from 'node:fs';
import { DriverError } from '../errors.ts';
import { cString, find, valueEnd } from './netlink-attrs.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
/** Sockets' own dumps (inet_diag): `ss` reads them through it. */
export const NETLINK_SOCK_DIAG = 4;
/** nfnetlink: nf_tables (the ruleset's generation, nf-generation.ts). */
export const NETLINK_NETFILTER = 12;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_GET_STRICT_CHK = 12;
const CLONE_NEWNET = 0x40000000;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_MIN_TYPE = 0x10;
/** Set by the kernel on a dump's messages when what it dumps changed between two of its datagrams. */
const NLM_F_DUMP_INTR = 0x10;
/** Reads of a dump the kernel marks interrupted, before its last read is taken as it is. */
const DUMP_ATTEMPTS = 10;
/** Bigger than any one message the kernel puts in a dump's datagram (it fills up to 32 kB). */
const BUFFER = 256 * 1024;
/** Datagrams read between two turns of the event loop. */
const YIELD_EVERY = 8;
/** Time the event loop may wait for a turn while many short dumps run in turn. */
const TURN_MS = 5;

interface Libc {
  readonly socket: (domain: number, type: number, protocol: number) => number;
  readonly setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  readonly sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
  readonly recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  readonly close: (fd: number) => number;
  readonly setns: (fd: number, type: number) => number;
  /** `sendto` on one of koffi's threads: a request that waits for the rtnl lock does not stop the event loop. */
  readonly sendtoAsync: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number, done: (err: unknown, n: number) => void) => void;
  readonly strerror: (errno: number) => string;
  readonly bind: (fd: number, addr: Buffer, len: number) => number;
  /** The errno of the last call that failed (koffi keeps it per thread). */
  readonly errno: () => number;
}

let libc: Promise<Libc | null> | null = null;

async function loadLibc(): Promise<Libc | null> {
  try {
    const koffi = (await import('koffi')).default;
    const lib = koffi.load('libc.so.6');
    const sendto = lib.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)');
    return {
      socket: lib.func('int socket(int domain, int type, int protocol)') as Libc['socket'],
      setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as Libc['setsockopt'],
      sendto: sendto as Libc['sendto'],
      sendtoAsync: sendto.async as Libc['sendtoAsync'],
      strerror: lib.func('const char *strerror(int errnum)') as Libc['strerror'],
      recv: lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)') as Libc['recv'],
      close: lib.func('int close(int fd)') as Libc['close'],
      setns: lib.func('int setns(int fd, int nstype)') as Libc['setns'],
      bind: lib.func('int bind(int fd, const void *addr, uint32_t len)') as Libc['bind'],
      errno: () => koffi.errno(),
    };
  } catch {
    return null;
  }
}

/** One message of a dump: its type and its payload (after the 16-byte header), a view into the read buffer. */
export interface NetlinkMessage {
  readonly type: number;
  readonly payload: Buffer;
}

/** One dump: its request (`type`, `body`: the family header) and what gets each answer (its payload is only valid during the call). */
export interface Dump {
  readonly what: string;
  readonly type: number;
  readonly body: Buffer;
  readonly each: (m: NetlinkMessage) => void;
  /**
   * Ask the kernel to filter the dump by its request's header (NETLINK_GET_STRICT_CHK, Linux
   * 4.20+: a route dump of one table). A kernel without it dumps everything: `each` filters too.
   */
  readonly strict?: boolean;
  /**
   * A dump the kernel may refuse (IPv6 disabled: no netconf of AF_INET6): an error ends it with
   * what it read so far instead of failing the others.
   */
  readonly optional?: boolean;
  /**
   * Drops what `each` took from a read the kernel marked interrupted (NLM_F_DUMP_INTR: the table
   * changed between two datagrams, so an item may be missing or there twice), before the dump is
   * read again (up to 10 reads; the last is taken as it is). Without it, an interrupted dump is
   * taken as it is.
   */
  readonly restart?: () => void;
}

export interface Netlink {
  /**
   * Runs the dumps at once, each on a socket of its own (made together: one trip into the
   * namespace, whose setns costs ~5 ms).
   * @throws DriverError `LN_ERR_KERNEL_EXEC` when a socket cannot be made or read, or the kernel answers an error.
   */
  dump(dumps: readonly Dump[]): Promise<void>;
  /**
   * Runs the dumps one after the other on one socket (not strict), reading into one buffer: for
   * many small dumps (one per device), where a socket and a buffer each cost more than the dump.
   * @throws DriverError `LN_ERR_KERNEL_EXEC` as `dump`.
   */
  dumpInTurn(dumps: readonly Dump[]): Promise<void>;
}

/**
 * rtnetlink (or another netlink `protocol`) in `netns` (a name under /run/netns; undefined: ours),
 * or null when libc cannot be called.
 */
export async function openNetlink(netns: string | undefined, timeoutMs: number, protocol = NETLINK_ROUTE): Promise<Netlink | null> {
  libc ??= loadLibc();
  const c = await libc;
  if (c === null) return null;
  const where = netns === undefined ? '' : ` in network namespace ${netns}`;
  const fail = (what: string, why: string): never => {
    throw new DriverError('LN_ERR_KERNEL_EXEC', `could not ${what}${where}: ${why}`);
  };
  const socket = (d: Dump): number => makeSocket(c, protocol, timeoutMs, d.strict ? [NETLINK_GET_STRICT_CHK] : []);
  const run = async (fd: number, d: Dump, buffer = Buffer.allocUnsafe(BUFFER)): Promise<void> => {
    if (d.optional !== true) return runDump(fd, d, buffer);
    try {
      await runDump(fd, d, buffer);
    } catch (e) {
      if (!(e instanceof DriverError)) throw e;
    }
  };
  const runDump = async (fd: number, d: Dump, buffer: Buffer): Promise<void> => {
    if (fd < 0) fail(d.what, 'no netlink socket');
    const req = Buffer.alloc(16 + d.body.length);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(d.type, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    d.body.copy(req, 16);
    const kernel = Buffer.alloc(12);
    kernel.writeUInt16LE(AF_NETLINK, 0);
    for (let attempt = 1; ; attempt++) {
      const marks = { interrupted: false };
      req.writeUInt32LE(attempt, 8);
      if (c.sendto(fd, req, req.length, 0, kernel, 12) !== req.length) fail(d.what, 'the dump request was not sent');
      for (let i = 1; ; i++) {
        const n = c.recv(fd, buffer, BUFFER, 0);
        if (n <= 0) fail(d.what, n === 0 ? 'the kernel closed the socket' : 'reading the dump failed or timed out');
        if (readDatagram(buffer.subarray(0, n), d.each, (why) => fail(d.what, why), marks)) break;
        if (i % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      if (!marks.interrupted || d.restart === undefined || attempt >= DUMP_ATTEMPTS) return;
      d.restart();
    }
  };
  return {
    async dump(dumps) {
      const make = () => dumps.map((d) => socket(d));
      const fds = netns === undefined ? make() : inNetns(c, netns, make, dumps[0]?.what ?? 'read the kernel', fail);
      try {
        await Promise.all(dumps.map((d, i) => run(fds[i] ?? -1, d)));
      } finally {
        for (const fd of fds) if (fd >= 0) c.close(fd);
      }
    },
    async dumpInTurn(dumps) {
      const make = () => makeSocket(c, protocol, timeoutMs, []);
      const fd = netns === undefined ? make() : inNetns(c, netns, make, dumps[0]?.what ?? 'read the kernel', fail);
      try {
        const buffer = Buffer.allocUnsafe(BUFFER);
        let turn = performance.now();
        for (const d of dumps) {
          await run(fd, d, buffer);
          // Each dump is short (`run` yields only every few datagrams): the loop gets a turn every few ms.
          if (performance.now() - turn > TURN_MS) {
            await new Promise((resolve) => setImmediate(resolve));
            turn = performance.now();
          }
        }
      } finally {
        if (fd >= 0) c.close(fd);
      }
    },
  };
}

/** A netlink socket that gives up reading after `timeoutMs`, with the SOL_NETLINK options in `on` set; negative when none can be made. */
function makeSocket(c: Libc, protocol: number, timeoutMs: number, on: readonly number[]): number {
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return fd;
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
  tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
  c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  for (const option of on) c.setsockopt(fd, SOL_NETLINK, option, one, 4);
  return fd;
}

/** The kernel's answer to one request. */
export interface NetlinkAnswer {
  /** 0: done; else the errno it failed with. */
  readonly errno: number;
  /** The kernel's own words for the error (its extended ack), when it gave any. */
  readonly detail: string | null;
  /** Copies of the messages that came before the ack (a GET's answer). */
  readonly messages: readonly NetlinkMessage[];
}

export interface NetlinkRequests {
  /**
   * Sends one request (NLM_F_REQUEST | NLM_F_ACK | `flags`) and waits for its ack. The kernel
   * handles an rtnetlink request inside the send, so the ack is there when it returns. `slow`:
   * the send runs on one of koffi's threads (~50 µs more), for requests the kernel takes
   * milliseconds over (deleting a link waits for an RCU grace period: ~16 ms for a veth, ~45 ms
   * for a bridge); the others are sent from this thread.
   * @throws DriverError `LN_ERR_KERNEL_EXEC` when the socket cannot send or read.
   */
  request(type: number, flags: number, body: Buffer, slow?: boolean): Promise<NetlinkAnswer>;
  /** The C library's text for an errno (`File exists`), as `ip` prints it. */
  strerror(errno: number): string;
  close(): void;
}

/** Extended acks: the kernel says why, in words (Linux 4.12+; an older kernel ignores the option). */
const NETLINK_EXT_ACK = 11;
/** Acks without a copy of the request. */
const NETLINK_CAP_ACK = 10;
const NLM_F_ACK = 0x4;
/** An ack that carries attributes (the extended ack's words). */
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

/**
 * An rtnetlink (or another netlink `protocol`) socket in `netns` (a name under /run/netns;
 * undefined: ours) for requests, one at a time; null when libc cannot be called.
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the socket cannot be made.
 */
export async function openRequests(netns: string | undefined, timeoutMs: number, what: string, protocol = NETLINK_ROUTE): Promise<NetlinkRequests | null> {
  libc ??= loadLibc();
  const c = await libc;
  if (c === null) return null;
  const fail = failing(netns, what);
  const fd = socketIn(c, netns, fail, () => makeSocket(c, protocol, timeoutMs, [NETLINK_EXT_ACK, NETLINK_CAP_ACK]));
  const kernel = Buffer.alloc(12);
  kernel.writeUInt16LE(AF_NETLINK, 0);
  const buffer = Buffer.allocUnsafe(BUFFER);
  let seq = 0;
  let closed = false;
  return {
    async request(type, flags, body, slow = false) {
      if (closed) fail('the netlink socket is closed');
      const req = Buffer.alloc(16 + body.length);
      req.writeUInt32LE(req.length, 0);
      req.writeUInt16LE(type, 4);
      req.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | flags, 6);
      req.writeUInt32LE((seq = (seq + 1) >>> 0), 8);
      body.copy(req, 16);
      const sent = slow
        ? await new Promise<number>((resolve) => c.sendtoAsync(fd, req, req.length, 0, kernel, 12, (err, n) => resolve(err ? -1 : n)))
        : c.sendto(fd, req, req.length, 0, kernel, 12);
      if (sent !== req.length) fail('the request was not sent');
      const messages: NetlinkMessage[] = [];
      for (;;) {
        const n = c.recv(fd, buffer, BUFFER, 0);
        if (n <= 0) fail(n === 0 ? 'the kernel closed the socket' : 'reading the answer failed or timed out');
        const answer = readAnswer(buffer.subarray(0, n), seq, messages);
        if (answer) return answer;
      }
    },
    strerror: (errno) => c.strerror(errno),
    close() {
      if (!closed) c.close(fd);
      closed = true;
    },
  };
}

/** Reads one datagram of answers to request `seq`: the answer once its ack came, else null (messages copied into `messages`). */
export function readAnswer(buf: Buffer, seq: number, messages: NetlinkMessage[]): NetlinkAnswer | null {
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) return { errno: 71 /* EPROTO */, detail: `a netlink message of ${len} bytes at ${off} of ${buf.length}`, messages };
    const type = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    if (buf.readUInt32LE(off + 8) === seq) {
      if (type === NLMSG_ERROR && len >= 20) {
        // The kernel sends the errno negated (0 - x: no -0 for an ack).
        const errno = 0 - buf.readInt32LE(off + 16);
        let detail: string | null = null;
        // With NETLINK_CAP_ACK the request's header (16 bytes) follows the errno, then the attributes.
        if (flags & NLM_F_ACK_TLVS) {
          const at = find(buf, off + 36, off + len, NLMSGERR_ATTR_MSG);
          if (at >= 0) detail = cString(buf, at, valueEnd(buf, at));
        }
        return { errno, detail, messages };
      }
      if (type !== NLMSG_DONE) messages.push({ type, payload: Buffer.from(buf.subarray(off + 16, off + len)) });
    }
    off += (len + 3) & ~3;
  }
  return null;
}

const MSG_DONTWAIT = 0x40;
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;

/** A netlink socket subscribed to multicast groups, read without waiting. */
export interface NetlinkNotices {
  /**
   * Hands each message the kernel sent since the last call to `each` (its payload valid during
   * the call), in order; false when the kernel dropped some since (the socket's buffer was full:
   * ENOBUFS) or the socket could not be read.
   */
  drain(each: (m: NetlinkMessage) => void): boolean;
  close(): void;
}

/**
 * A netlink socket of `protocol` in `netns` (a name under /run/netns; undefined: ours) bound to
 * the multicast `groups` (a bit mask: group n is bit n - 1); null when libc cannot be called.
 * Its notices wait in the socket's buffer until `drain` (no thread, no process).
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the socket cannot be made or bound.
 */
export async function openNotices(netns: string | undefined, protocol: number, groups: number, what: string): Promise<NetlinkNotices | null> {
  libc ??= loadLibc();
  const c = await libc;
  if (c === null) return null;
  const make = () => {
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) return fd;
    // struct sockaddr_nl: family, padding, port id (0: the kernel picks), groups.
    const addr = Buffer.alloc(12);
    addr.writeUInt16LE(AF_NETLINK, 0);
    addr.writeUInt32LE(groups >>> 0, 8);
    if (c.bind(fd, addr, 12) === 0) return fd;
    c.close(fd);
    return -2;
  };
  const fd = socketIn(c, netns, failing(netns, what), make);
  const buffer = Buffer.allocUnsafe(BUFFER);
  let closed = false;
  return {
    drain(each) {
      if (closed) return false;
      let whole = true;
      for (;;) {
        const n = c.recv(fd, buffer, BUFFER, MSG_DONTWAIT);
        if (n > 0) {
          if (!readNotices(buffer.subarray(0, n), each)) whole = false;
          continue;
        }
        if (n === 0) return false;
        const errno = c.errno();
        if (errno === EAGAIN) return whole;
        if (errno === ENOBUFS) whole = false;
        else if (errno !== EINTR) return false;
      }
    },
    close() {
      if (!closed) c.close(fd);
      closed = true;
    },
  };
}

/** Hands each message of one datagram of notices to `each`; false when the datagram is cut short. */
export function readNotices(buf: Buffer, each: (m: NetlinkMessage) => void): boolean {
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) return false;
    const type = buf.readUInt16LE(off + 4);
    // Below NLMSG_MIN_TYPE: netlink's own (noop, error, done, overrun), no notice.
    if (type >= NLMSG_MIN_TYPE) each({ type, payload: buf.subarray(off + 16, off + len) });
    off += (len + 3) & ~3;
  }
  return true;
}

/** Throws `LN_ERR_KERNEL_EXEC`: could not `what` (in `netns`): why. */
const failing =
  (netns: string | undefined, what: string) =>
  (why: string): never => {
    throw new DriverError('LN_ERR_KERNEL_EXEC', `could not ${what}${netns === undefined ? '' : ` in network namespace ${netns}`}: ${why}`);
  };

/** The socket `make` makes (in `netns` when named); -2 from `make`: the kernel refused to bind it. */
function socketIn(c: Libc, netns: string | undefined, fail: (why: string) => never, make: () => number): number {
  const fd = netns === undefined ? make() : inNetns(c, netns, make, '', (_w, why) => fail(why));
  if (fd < 0) fail(fd === -2 ? 'the kernel refused to subscribe the socket' : 'no netlink socket');
  return fd;
}

/** Runs `make` with this thread in `netns`, then back in its own namespace. */
function inNetns<T>(c: Libc, netns: string, make: () => T, what: string, fail: (what: string, why: string) => never): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  try {
    let target: number;
    try {
      target = openSync(`/run/netns/${netns}`, 'r');
    } catch (e) {
      return fail(what, `cannot open the namespace: ${(e as Error).message}`);
    }
    try {
      if (c.setns(target, CLONE_NEWNET) !== 0) fail(what, 'setns failed');
    } finally {
      closeSync(target);
    }
    try {
      return make();
    } finally {
      // Left in the other namespace, every later socket of this process would be made there.
      if (c.setns(home, CLONE_NEWNET) !== 0) throw new Error(`could not return from network namespace ${netns}`);
    }
  } finally {
    closeSync(home);
  }
}

/**
 * Hands each message of one datagram to `each`; true once the dump is done. An error message
 * (but an ack, error 0) calls `fail` with its errno. `marks.interrupted` is set when a message
 * carries NLM_F_DUMP_INTR.
 */
export function readDatagram(buf: Buffer, each: (m: NetlinkMessage) => void, fail: (why: string) => never, marks?: { interrupted: boolean }): boolean {
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    const type = buf.readUInt16LE(off + 4);
    if (len < 16 || off + len > buf.length) fail(`a netlink message of ${len} bytes at ${off} of ${buf.length}`);
    if (marks !== undefined && (buf.readUInt16LE(off + 6) & NLM_F_DUMP_INTR) !== 0) marks.interrupted = true;
    if (type === NLMSG_DONE) return true;
    if (type === NLMSG_ERROR) {
      const errno = -buf.readInt32LE(off + 16);
      if (errno !== 0) fail(`the kernel answered errno ${errno}`);
    } else each({ type, payload: buf.subarray(off + 16, off + len) });
    off += (len + 3) & ~3;
  }
  return false;
}
