import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, DeliverPolicy, RetentionPolicy } from '@nats-io/jetstream';
import { spawn } from 'node:child_process';
const port = 14222;
const srv = spawn('nats-server', ['-js', '-sd', '/tmp/natsproto', '-p', String(port), '-a', '127.0.0.1'], { stdio: 'inherit' });
await new Promise(r => setTimeout(r, 500));
const nc = await connect({ servers: `127.0.0.1:${port}` });
const jsm = await jetstreamManager(nc);
try { console.log((await jsm.streams.info('LEDGERNET')).config.duplicate_window); } catch (e) { console.log('no stream', (e as Error).name, (e as Error).message, (e as any).code, (e as any).api_error); }
await jsm.streams.add({ name: 'LEDGERNET', subjects: ['ledgernet.>'], duplicate_window: 1_000_000_000, retention: RetentionPolicy.Limits });
const js = jetstream(nc);
for (let i = 1; i <= 3; i++) {
  const a = await js.publish(`ledgernet.h1.events.t${i}`, JSON.stringify({ seq: i }), { msgID: `h1:${i}` });
  console.log(a);
}
console.log(await js.publish(`ledgernet.h1.events.t1`, JSON.stringify({ seq: 1 }), { msgID: `h1:1` }));
await js.publish(`ledgernet.h2.events.t1`, JSON.stringify({ seq: 1 }), { msgID: `h2:1` });
const m = await jsm.streams.getMessage('LEDGERNET', { last_by_subj: 'ledgernet.h1.events.>' });
console.log('last h1', m?.seq, m?.subject, m?.string());
const m2 = await jsm.streams.getMessage('LEDGERNET', { last_by_subj: 'ledgernet.h9.events.>' }).catch(e => e.message);
console.log('last h9', m2);
const c = await js.consumers.get('LEDGERNET', { filter_subjects: 'ledgernet.h1.events.>' });
const info = await c.info(true);
console.log('pending', info.num_pending);
const it = await c.fetch({ max_messages: 100, expires: 1000 });
for await (const x of it) { console.log('got', x.seq, x.subject, x.info.pending, x.headers?.get('Nats-Msg-Id')); if (x.info.pending === 0) break; }
console.log(await jsm.msgs?.delete);
console.log(await jsm.streams.deleteMessage('LEDGERNET', 2));
await nc.close();
srv.kill();
