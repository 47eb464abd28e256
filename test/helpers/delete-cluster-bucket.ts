// Deletes the cluster's KV bucket (its JetStream stream), or some of its keys, as a wiped store or
// a careless operator would: `node --import tsx delete-cluster-bucket.ts <servers> [key...]`, run
// inside a test bed's host (test/e2e/multihost.test.ts), whose NATS servers only its hosts reach.
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

async function main(servers: string, keys: readonly string[]): Promise<void> {
  const nc = await connect({ servers: servers.split(',') });
  try {
    if (keys.length === 0) {
      await (await jetstreamManager(nc)).streams.delete('KV_ledgernet-cluster');
      return;
    }
    const kv = await new Kvm(nc).open('ledgernet-cluster');
    for (const k of keys) await kv.delete(k);
  } finally {
    await nc.close();
  }
}

main(process.argv[2] ?? '', process.argv.slice(3)).then(
  () => process.stdout.write('deleted\n'),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
