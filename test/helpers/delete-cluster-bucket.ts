// Deletes the cluster's KV bucket (its JetStream stream), or some of its keys, or changes one field
// of a key's JSON value, as a wiped store or a careless operator would:
// `node --import tsx delete-cluster-bucket.ts <servers> [key | key@field=value ...]`, run inside a
// test bed's host (test/e2e/multihost.test.ts), whose NATS servers only its hosts reach.
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
    for (const k of keys) {
      const edit = /^([^@]+)@([^=]+)=(.*)$/.exec(k);
      if (!edit) {
        await kv.delete(k);
        continue;
      }
      const [, key = '', field = '', value] = edit;
      const held = await kv.get(key);
      if (held?.operation !== 'PUT') throw new Error(`${key} is not in the bucket`);
      await kv.put(key, JSON.stringify({ ...held.json<Record<string, unknown>>(), [field]: value }));
    }
  } finally {
    await nc.close();
  }
}

main(process.argv[2] ?? '', process.argv.slice(3)).then(
  () => process.stdout.write('done\n'),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
