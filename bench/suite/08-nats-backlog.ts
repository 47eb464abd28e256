// Row 8: a NATS backlog of 100,000 events drained to JetStream. A log written with the project's
// own writer (as row 5), a real nats-server started here (free port, JetStream, temp store), and
// the daemon's outbox (src/events/audit/outbox.ts with the JetStream publisher) started on it
// with nothing published yet, as after an outage: timed until its cursor reaches the log's head.
// Then checked: the stream holds every event once, in order, and the cursor file names the head.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createNatsServer } from '../../test/helpers/nats.ts';
import { readCursor } from '../../src/events/audit/cursor.ts';
import { Outbox } from '../../src/events/audit/outbox.ts';
import { NatsPublisher } from '../../src/events/audit/publisher-nats.ts';
import { readLog } from '../../src/events/log/read.ts';
import { cpuMs } from '../offline/daemon.ts';
import { generateLog } from '../offline/gen-log.ts';
import { measure, type BenchOptions, type BenchResult } from '../rows.ts';

const quiet = { error() {}, info() {}, warn() {}, debug() {} };
const STREAM = { name: 'LEDGERNET', retention: 'limits', maxAgeMs: 0, duplicateWindowMs: 120_000 } as const;

/** The pid of the nats-server whose command line names `storeDir`. */
function serverPid(storeDir: string): number {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(storeDir)) return Number(p);
    } catch {
      // gone meanwhile
    }
  }
  return 0;
}

interface Drain {
  readonly ms: number;
  /** CPU ms per 1,000 events: the outbox (this process), the nats-server. */
  readonly outboxCpu: number;
  readonly serverCpu: number;
}

/** Drains the whole log of `stateDir` into a fresh stream: ms until the cursor is at the head, and the CPU it took. */
async function drainOnce(url: string, serverPidNow: number, stateDir: string, head: { seq: number; hash: string }): Promise<Drain> {
  const publisher = new NatsPublisher({ connect: () => connect({ servers: url }), stream: STREAM, describe: url });
  const outbox = await Outbox.create({ publisher, host: 'bench', stateDir, log: quiet, initial: [], headSeq: head.seq, headHash: head.hash });
  const c0 = { own: process.cpuUsage(), server: cpuMs(serverPidNow) };
  const t0 = performance.now();
  outbox.start();
  try {
    while (outbox.stats().cursor < head.seq) {
      const s = outbox.stats();
      if (s.conflict || (s.lastError && performance.now() - t0 > 120_000)) throw new Error(`the outbox stopped: ${s.conflict?.message ?? s.lastError}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const ms = performance.now() - t0;
    const own = process.cpuUsage(c0.own);
    const k = head.seq / 1000;
    return { ms, outboxCpu: (own.user + own.system) / 1000 / k, serverCpu: (cpuMs(serverPidNow) - c0.server) / k };
  } finally {
    await outbox.stop();
  }
}

/** The stream holds exactly the log's events, in order, once each; the cursor names the head. */
async function check(url: string, stateDir: string, head: { seq: number; hash: string }): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(STREAM.name);
    if (info.state.messages !== head.seq) throw new Error(`the stream holds ${info.state.messages} messages, the log ${head.seq} events`);
    const jsm = await jetstreamManager(nc);
    for (const seq of [1, Math.ceil(head.seq / 2), head.seq]) {
      const m = await jsm.streams.getMessage(STREAM.name, { seq });
      const ce = m?.json<{ seq: number }>();
      if (ce?.seq !== seq) throw new Error(`stream message ${seq} is event ${ce?.seq}`);
    }
  } finally {
    await nc.close();
  }
  const c = await readCursor(stateDir);
  if (c?.seq !== head.seq || c.hash !== head.hash) throw new Error(`the cursor is ${JSON.stringify(c)}, the head ${JSON.stringify(head)}`);
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const total = opts.smoke ? 2_000 : 100_000;
  const rounds = opts.smoke ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-08-'));
  try {
    const stateDir = join(dir, 'state');
    await generateLog(stateDir, total, { endpoints: 200 });
    const last = (await readLog(stateDir)).events.at(-1);
    if (!last) throw new Error('no events were written');
    const head = { seq: last.seq, hash: last.hash };
    const rates: number[] = [];
    const outboxCpu: number[] = [];
    const serverCpu: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const nats = await createNatsServer();
      try {
        await rm(join(stateDir, 'publish.cursor'), { force: true });
        const d = await drainOnce(nats.url, serverPid(nats.storeDir), stateDir, head);
        await check(nats.url, stateDir, head);
        rates.push(total / (d.ms / 1000));
        outboxCpu.push(d.outboxCpu);
        serverCpu.push(d.serverCpu);
      } finally {
        await nats.stop();
      }
    }
    const rate = measure(`events per second, a backlog of ${total} drained`, 'per s', rates);
    const oc = measure('CPU per 1,000 events: the outbox (reading, checking, publishing)', 'ms', outboxCpu);
    const sc = measure('CPU per 1,000 events: nats-server (JetStream, file store)', 'ms', serverCpu);
    return {
      row: '8 a NATS backlog of 100,000 events drained to JetStream',
      measurements: [rate, oc, sc],
      verdicts: [{ target: '≥ 20,000 events per second', value: rate.median, met: rate.median >= 20_000 }],
      notes: [
        'Each round: a fresh nats-server (JetStream, file store) and no cursor; the outbox reads the log from the file and ' +
          'publishes with msg ids; afterwards the stream holds exactly the log\'s events in order and the cursor names the head.',
        `CPU per event (from /proc, however busy the shared machine is): outbox ${(oc.median / 1000).toFixed(3)} ms, ` +
          `nats-server ${(sc.median / 1000).toFixed(3)} ms; both on the same 2 cores allow at most ` +
          `${Math.round(2_000_000 / (oc.median + sc.median))} events per second.`,
      ],
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
