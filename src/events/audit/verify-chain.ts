// Checks what an observer received from the audit stream, one message at a time: every message
// is a ledgernet CloudEvent whose content matches its hash, and per host the seqs run 1, 2, 3…
// with each prevhash linking to the previous event's hash, and each sits on its host's subject
// (subjectFor, the function the publisher uses, or its subject of before the escape: an upgraded
// host's history goes on from one to the other; see copy() for one published again). The first
// problem is named. An event published without its data (its message would not fit the stream's
// limit: `dataelided`) cannot have its content checked: it is counted and named, and its hash
// must still link to the previous event's and be linked to by the next one's.
import { elidedFromCloudEvent, fromCloudEvent, isSubjectOf, subjectFor } from './cloudevents.ts';
import { eventHash } from '../log/hash.ts';
import { GENESIS_HASH, type StoredEvent } from '../domain/types.ts';

export interface ChainProblem {
  readonly kind: 'malformed' | 'altered' | 'gap' | 'duplicate' | 'broken-link' | 'misfiled';
  readonly message: string;
}

interface HostHead {
  seq: number;
  hash: string;
  /** The seq of its first event checked. */
  first: number;
  /** Its events came on its subjects of before the escape (legacyHostToken: web.1 as web_1). */
  old: boolean;
  /** Its events published again on its own subjects, from the first on (see `copy`): the last of them. */
  copy: { seq: number; hash: string } | null;
}

export interface ChainVerifierOptions {
  /** The first seq expected of each host (default 1); null accepts whatever comes first (`--since TIME`). */
  readonly firstSeq?: number | null;
}

export class ChainVerifier {
  private readonly heads = new Map<string, HostHead>();
  private readonly firstSeq: number | null;
  private count = 0;
  /** The events received without their data (ids), in order. */
  readonly elided: string[] = [];

  constructor(opts: ChainVerifierOptions = {}) {
    this.firstSeq = opts.firstSeq === undefined ? 1 : opts.firstSeq;
  }

  get events(): number {
    return this.count;
  }

  get hosts(): number {
    return this.heads.size;
  }

  /**
   * Feeds one received CloudEvent (parsed JSON) found at `where` (e.g. "stream seq 12"), with
   * the NATS subject it was read from when known.
   */
  push(raw: unknown, where: string, subject?: string): ChainProblem | null {
    const slim = elidedFromCloudEvent(raw);
    const ev = slim ?? fromCloudEvent(raw);
    if (typeof ev === 'string') return { kind: 'malformed', message: `${where} is not a ledgernet CloudEvent: ${ev}` };
    const name = `event ${ev.id} (${where})`;
    if (subject !== undefined && !isSubjectOf(subject, ev.host, ev.type)) {
      return { kind: 'misfiled', message: `${name} of host ${ev.host} is on subject ${subject}, not ${subjectFor(ev.host, ev.type)}` };
    }
    if (ev.id !== `${ev.host}:${ev.seq}`) {
      return { kind: 'altered', message: `${name} was altered: its id does not match source and seq (${ev.host}:${ev.seq})` };
    }
    if (slim === null && eventHash(ev as StoredEvent) !== ev.hash) return { kind: 'altered', message: `${name} was altered: its content does not match its hash` };
    const head = this.heads.get(ev.host);
    const own = subject !== undefined && subject === subjectFor(ev.host, ev.type);
    if (head?.old && own && ev.seq <= head.seq) return this.copy(ev, head, name);
    const problem = head ? this.follows(ev, head, name) : this.starts(ev, name);
    if (problem) return problem;
    this.heads.set(ev.host, { seq: ev.seq, hash: ev.hash, first: head?.first ?? ev.seq, old: subject !== undefined && !own, copy: null });
    this.count += 1;
    if (slim !== null) this.elided.push(ev.id);
    return null;
  }

  /**
   * An event of a host whose history so far came on its subjects of before the escape, on its own
   * subjects and at a seq it had reached: a ledgernet upgraded from before the escape that did not
   * look under the old subjects published the whole log again. Accepted, and not counted, as a
   * copy: a chain of its own from the host's first event, which must reach the event the host is at
   * with its hash (the chain links make every event before it the same too). Past it, the host's
   * events go on on its own subjects.
   */
  private copy(ev: { seq: number; host: string; prevhash: string; hash: string }, head: HostHead, name: string): ChainProblem | null {
    const problem = head.copy ? this.follows(ev, { ...head, ...head.copy }, name) : ev.seq === head.first ? this.starts(ev, name) : null;
    if (problem) return problem;
    if (!head.copy && ev.seq !== head.first) return { kind: 'duplicate', message: `${name} is a duplicate: ${ev.host} was already at seq ${head.seq}` };
    if (ev.seq < head.seq) {
      head.copy = { seq: ev.seq, hash: ev.hash };
      return null;
    }
    if (ev.hash !== head.hash) {
      return { kind: 'duplicate', message: `${name} is a duplicate: ${ev.host} was already at seq ${head.seq}, on the subject of before the escape, with another event (hash differs)` };
    }
    head.copy = null;
    head.old = false;
    return null;
  }

  private starts(ev: { seq: number; host: string; prevhash: string }, name: string): ChainProblem | null {
    if (this.firstSeq === null || ev.seq < this.firstSeq) return null;
    if (ev.seq > this.firstSeq) return gap(ev.host, this.firstSeq, ev.seq, name);
    if (ev.seq === 1 && ev.prevhash !== GENESIS_HASH) {
      return { kind: 'broken-link', message: `${name} is the first event of ${ev.host} but its prevhash is not the genesis hash` };
    }
    return null;
  }

  private follows(ev: { seq: number; host: string; prevhash: string }, head: HostHead, name: string): ChainProblem | null {
    if (ev.seq <= head.seq) return { kind: 'duplicate', message: `${name} is a duplicate: ${ev.host} was already at seq ${head.seq}` };
    if (ev.seq > head.seq + 1) return gap(ev.host, head.seq + 1, ev.seq, name);
    if (ev.prevhash !== head.hash) {
      return {
        kind: 'broken-link',
        message: `${name} does not link to ${ev.host}:${head.seq} (prevhash differs): one of them was altered or replaced`,
      };
    }
    return null;
  }
}

function gap(host: string, from: number, next: number, name: string): ChainProblem {
  const missing = from === next - 1 ? `${host}:${from} is` : `${host}:${from}..${host}:${next - 1} are`;
  return { kind: 'gap', message: `gap: ${missing} missing before ${name}` };
}
