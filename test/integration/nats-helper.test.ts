// The tests' nats-server helper (test/helpers/nats.ts): a test file the runner kills at its
// timeout runs no `after` hook and no 'exit' handler; the servers it started must not outlive it
// (one once stayed behind after a hung file and held its port and store until a hand kill).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';

const gone = async (pid: number): Promise<boolean> => {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
};

/** A process that starts servers through the helper, prints their pids, then waits to be killed. */
const HOLDER = `
import { createNatsServer, createNatsCluster } from './test/helpers/nats.ts';
import { execa } from 'execa';
const one = await createNatsServer();
await createNatsCluster(3);
const pids = (await execa('pgrep', ['-P', String(process.pid), '-x', 'nats-server'])).stdout.split('\\n').map(Number);
console.log(JSON.stringify({ one: one.port, pids }));
setInterval(() => undefined, 1_000);
`;

describe('nats-server helper', () => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a test process killed with ${signal} (as the runner kills a file at its timeout) takes its servers with it`, async () => {
      const holder = execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HOLDER], { reject: false, cwd: process.cwd() });
      let pids: number[] = [];
      try {
        const line = await new Promise<string>((resolve, reject) => {
          holder.stdout?.on('data', (c: Buffer) => resolve(c.toString()));
          void holder.then((r) => reject(new Error(`the holder exited first: ${r.stderr}`)));
        });
        pids = (JSON.parse(line) as { pids: number[] }).pids;
        assert.equal(pids.length, 4, 'one server and a cluster of three, children of the test process');
        holder.kill(signal);
        await holder;
        for (const pid of pids) assert.ok(await gone(pid), `nats-server ${pid} exited with the test process`);
      } finally {
        holder.kill('SIGKILL');
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
});
