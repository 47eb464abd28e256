// Run under `ulimit -f`: appends events until the log refuses, then prints how many were
// acknowledged as durable (the parent checks they all survive and the log is not damaged).
import { EventLog } from '../../src/events/log/log.ts';
import { networkSpec } from './events.ts';

const dir = process.argv[2] ?? '';
const { log } = await EventLog.open(dir, { host: 'h' });
let acked = 0;
let error = '';
for (let i = 0; i < 200; i++) {
  try {
    const spec = { ...networkSpec(`${i}`.padEnd(64, 'a')), options: { pad: 'x'.repeat(400) } };
    await log.append([{ type: 'network.created', data: spec }]).durable;
    acked += 1;
  } catch (e) {
    error = (e as Error).message;
    break;
  }
}
await log.close().catch(() => undefined);
process.stdout.write(JSON.stringify({ acked, error }));
