// Kernel changes sent as rtnetlink requests from this process (netlink.ts), step by step: the
// loop that links (iproute/rtnl.ts) and shaping (tc/rtnl.ts) share. Like `ip -force -batch` and
// `tc -force -batch`, every step runs even after one failed, and a change fails with its first
// failing step, in the words the tool prints; but a change whose step that makes a link failed
// stops there, and a later change naming that link is not run (its name is held by a link the
// plan did not know, someone else's: those steps would find that link by its name and change it). The devices a step names by index are found by name
// (RTM_GETLINK) once per apply, and forgotten when a step makes or deletes a link of that name.
import type { NetlinkAnswer, NetlinkRequests } from './netlink.ts';
import { cstr, encodeAttrs } from './netlink-attrs.ts';
import type { ChangeFailure, ChangesResult } from './types.ts';

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const IFLA_IFNAME = 3;
const ENODEV = 19;

/** One request: its message type, flags (besides REQUEST and ACK) and body. */
export interface Request {
  readonly type: number;
  readonly flags: number;
  readonly body: Buffer;
}

/** What ip and tc say of a device they cannot find. */
export const missingDevice = (name: string) => `Cannot find device "${name}"`;

/** What `ip` (and `tc`) print for a request the kernel refused: its extended ack's words, else `RTNETLINK answers: <strerror>`. */
export function refusal(nl: NetlinkRequests, a: NetlinkAnswer): string {
  return a.detail ? `Error: ${a.detail}.` : `RTNETLINK answers: ${nl.strerror(a.errno)}`;
}

/** The index of the link named `name`; a string says why there is none (`missing` when it does not exist). */
export async function findLink(nl: NetlinkRequests, name: string, missing: string): Promise<number | string> {
  // struct ifinfomsg all zero (any family, any index), the name as IFLA_IFNAME.
  const a = await nl.request(RTM_GETLINK, 0, Buffer.concat([Buffer.alloc(16), encodeAttrs([[IFLA_IFNAME, cstr(name)]])]));
  if (a.errno === ENODEV) return missing;
  if (a.errno !== 0) return refusal(nl, a);
  const m = a.messages.find((x) => x.type === RTM_NEWLINK && x.payload.length >= 16);
  return m ? m.payload.readInt32LE(4) : missing;
}

/** How the steps of one kind of change become requests. */
export interface StepCodec<S> {
  /** The devices a step names by index, found by name first: `[name, what the tool says when it is missing]`. */
  devices(s: S): ReadonlyArray<readonly [string, string]>;
  /** The step's request, the devices given by index; a string says why there is none. */
  encode(s: S, index: (name: string) => number): Request | string;
  /** The name of a link the step makes or deletes (its index is then forgotten), else null. */
  remakes(s: S): string | null;
  /** The name of the link the step makes, else null: when it fails, no later step naming it is sent. */
  creates?(s: S): string | null;
  /** The links the step names (changes, deletes, enslaves to, adds an address or route to). */
  names?(s: S): readonly string[];
  /** Whether the request waits in the kernel (a deletion's RCU grace period): sent from another thread. */
  slow(s: S): boolean;
  /** The tool's words for a request the kernel refused. */
  failure(s: S, a: NetlinkAnswer, nl: NetlinkRequests): string;
}

/** Time the event loop may wait between two of its turns while requests are sent from its thread. */
const TURN_MS = 5;

/** What a change is told when a step of its names a link whose `link add` failed before. */
export const notMade = (name: string) => `not run: ${name} was not made (its link add failed: the name is held by another link)`;

/**
 * Applies the changes in order, every step of each (but none after a failed `creates` step of
 * the same change, and no change with a step naming that link), and reports each change that
 * failed once, with its first failure. The event loop gets a turn every few ms.
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the socket itself fails (nothing after that ran).
 */
export async function applyStepsByNetlink<C, S>(
  nl: NetlinkRequests,
  changes: readonly C[],
  stepsOf: (c: C) => Iterable<S>,
  codec: StepCodec<S>,
): Promise<ChangesResult> {
  const indexes = new Map<string, number>();
  let turn = performance.now();
  const send = async (s: S): Promise<string | null> => {
    if (performance.now() - turn > TURN_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      turn = performance.now();
    }
    for (const [name, missing] of codec.devices(s)) {
      if (indexes.has(name)) continue;
      const at = await findLink(nl, name, missing);
      if (typeof at === 'string') return at;
      indexes.set(name, at);
    }
    const remade = codec.remakes(s);
    if (remade !== null) indexes.delete(remade);
    const req = codec.encode(s, (name) => indexes.get(name) ?? 0);
    if (typeof req === 'string') return req;
    const a = await nl.request(req.type, req.flags, req.body, codec.slow(s));
    return a.errno === 0 ? null : codec.failure(s, a, nl);
  };
  const failures: ChangeFailure[] = [];
  // Links whose `link add` failed (EEXIST: a link, or an altname, of that name the plan did not
  // know): a step naming one would find that link by its name, and it is not ours.
  const unmade = new Set<string>();
  for (const [index, c] of changes.entries()) {
    const held = unmade.size === 0 ? undefined : [...stepsOf(c)].flatMap((s) => codec.names?.(s) ?? []).find((n) => unmade.has(n));
    if (held !== undefined) {
      failures.push({ index, message: notMade(held) });
      continue;
    }
    let first: string | null = null;
    for (const s of stepsOf(c)) {
      const why = await send(s);
      first ??= why;
      const made = why === null ? null : (codec.creates?.(s) ?? null);
      if (made !== null) {
        unmade.add(made);
        break;
      }
    }
    if (first !== null) failures.push({ index, message: first });
  }
  return { failures };
}
