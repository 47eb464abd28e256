// Deletes the cluster's KV bucket (its JetStream stream), as a wiped store or a careless operator
// would: `node --import tsx delete-cluster-bucket.ts <servers>`, run inside a test bed's host
// (test/e2e/multihost.test.ts), whose NATS servers only its hosts reach.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

async function main(servers: string): Promise<void> {
  const nc = await connect({ servers: servers.split(',') });
  try {
    await (await jetstreamManager(nc)).streams.delete('KV_ledgernet-cluster');
  } finally {
    await nc.close();
  }
}

main(process.argv[2] ?? '').then(
  () => process.stdout.write('deleted\n'),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
