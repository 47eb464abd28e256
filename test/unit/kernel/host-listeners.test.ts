// The host's listeners from /proc/net/{tcp,tcp6,udp,udp6}, over files captured on the test machine
// (fixtures/proc-net/) while a script held: TCP listeners on 127.0.0.1:18080, [::]:18081 (dual
// stack), [::1]:18082, 0.0.0.0:18084 (with an established connection to it), ::ffff:127.0.0.2:18085;
// UDP sockets bound on 0.0.0.0:18083 and [::1]:18086 and a connected UDP client; and the machine's
// own listener on 0.0.0.0:2024.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseProcNet, parseSctpEps, readHostListeners, readProcNetListeners, readSctpListeners } from '../../../src/kernel/host-listeners.ts';
import { resolvePorts } from '../../../src/events/domain/ports.ts';
import { DriverError } from '../../../src/errors.ts';
import { readFixture } from '../../helpers/fixtures.ts';

const FILES = ['tcp', 'tcp6', 'udp', 'udp6'] as const;

describe('host listeners from /proc/net', () => {
  it('tcp: only sockets in LISTEN, not the two ends of an established connection', () => {
    assert.deepEqual(parseProcNet(readFixture('proc-net/tcp'), 'tcp'), [
      { proto: 'tcp', address: '0.0.0.0', port: 18084 },
      { proto: 'tcp', address: '0.0.0.0', port: 2024 },
      { proto: 'tcp', address: '127.0.0.1', port: 18080 },
    ]);
  });

  it('tcp6: IPv6 addresses in canonical form, an IPv4-mapped one as its IPv4 address', () => {
    assert.deepEqual(parseProcNet(readFixture('proc-net/tcp6'), 'tcp'), [
      { proto: 'tcp', address: '::', port: 18081 },
      { proto: 'tcp', address: '::1', port: 18082 },
      { proto: 'tcp', address: '127.0.0.2', port: 18085 },
    ]);
  });

  it('udp and udp6: bound, unconnected sockets only (a connected client socket is not a listener)', () => {
    assert.deepEqual(parseProcNet(readFixture('proc-net/udp'), 'udp'), [{ proto: 'udp', address: '0.0.0.0', port: 18083 }]);
    assert.deepEqual(parseProcNet(readFixture('proc-net/udp6'), 'udp'), [{ proto: 'udp', address: '::1', port: 18086 }]);
  });

  it('other IPv6 addresses: the longest zero run is folded, a single zero group is not', () => {
    // fd00:231::2 and 2001:db8:0:1:0:0:0:5 as /proc writes them (four host-order words).
    const line = (hex: string, port: string) => `   0: ${hex}:${port} 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0`;
    const text = ['  sl  local_address ...', line('310200FD' + '00000000' + '00000000' + '02000000', '1F90'), line('B80D0120' + '01000000' + '00000000' + '05000000', '0050')].join('\n');
    assert.deepEqual(parseProcNet(text, 'tcp'), [
      { proto: 'tcp', address: 'fd00:231::2', port: 8080 },
      { proto: 'tcp', address: '2001:db8:0:1::5', port: 80 },
    ]);
  });

  it('readProcNetListeners reads all four files; one that is missing (no IPv6) gives none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ln-procnet-'));
    try {
      for (const f of FILES.filter((f) => f !== 'udp6')) await writeFile(join(dir, f), readFixture(`proc-net/${f}`));
      const all = await readProcNetListeners(dir);
      assert.equal(all.length, 3 + 3 + 1);
      assert.ok(all.some((l) => l.proto === 'udp' && l.port === 18083));
      assert.ok(!all.some((l) => l.port === 18086), 'udp6 was not there');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('this machine: a socket this test opens shows up, read through sock_diag and from /proc/net', async () => {
    const { createServer } = await import('node:net');
    const srv = createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const port = (srv.address() as { port: number }).port;
      const fallbacks: string[] = [];
      for (const read of [() => readHostListeners((why) => fallbacks.push(why)), () => readProcNetListeners()]) {
        assert.ok((await read()).some((l) => l.proto === 'tcp' && l.address === '127.0.0.1' && l.port === port));
      }
      assert.deepEqual(fallbacks, [], 'sock_diag answered: no fall back to /proc/net');
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
  });
});

// SCTP: /proc/net/sctp/eps, present only with the sctp module (absent on this machine's kernel).
// The fixture follows net/sctp/proc.c's format (fixtures/proc-net/README.md); not a capture.
describe('host SCTP endpoints from /proc/net/sctp/eps', () => {
  it('one listener per bound address of every endpoint with a port, listening or not; IPv6 printed in full is canonical', () => {
    assert.deepEqual(parseSctpEps(readFixture('proc-net/sctp-eps')), [
      { proto: 'sctp', address: '0.0.0.0', port: 9999 },
      { proto: 'sctp', address: '::', port: 3868 },
      { proto: 'sctp', address: '10.0.0.102', port: 11165 },
      { proto: 'sctp', address: '10.0.0.70', port: 11165 },
      { proto: 'sctp', address: '::1', port: 2905 },
    ]);
  });

  it('no sctp directory (the module is not loaded): none, and no error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ln-procnet-'));
    try {
      assert.deepEqual(await readSctpListeners(dir), []);
      await mkdir(join(dir, 'sctp'));
      await writeFile(join(dir, 'sctp', 'eps'), readFixture('proc-net/sctp-eps'));
      assert.equal((await readSctpListeners(dir)).length, 5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a fixed SCTP host port a program holds is refused by name; a range skips it; the same port over TCP is free', () => {
    const listeners = parseSctpEps(readFixture('proc-net/sctp-eps'));
    const ep = { endpointId: 'e'.repeat(64), networkId: 'n'.repeat(64), portmap: [] } as unknown as Parameters<typeof resolvePorts>[2];
    const state = { endpoints: {}, networks: {} } as unknown as Parameters<typeof resolvePorts>[1];
    const bind = (proto: number, hostPort: number, hostPortEnd = hostPort) => ({ proto, port: 80, hostIp: '', hostPort, hostPortEnd });
    assert.throws(
      () => resolvePorts([bind(132, 9999)], state, ep, null, listeners),
      (e: unknown) => e instanceof DriverError && e.code === 'LN_ERR_PORT_IN_USE' && e.message.includes('host port sctp/9999 on every host address is in use: a program on the host listens on sctp 0.0.0.0:9999'),
    );
    assert.throws(() => resolvePorts([{ ...bind(132, 11165), hostIp: '10.0.0.70' }], state, ep, null, listeners), /sctp 10\.0\.0\.70:11165/);
    assert.deepEqual(resolvePorts([{ ...bind(132, 11165), hostIp: '10.0.0.5' }], state, ep, null, listeners).map((p) => p.hostPort), [11165], 'another address is free');
    assert.deepEqual(resolvePorts([bind(132, 9998, 10000)], state, ep, null, listeners).map((p) => p.hostPort), [9998]);
    assert.deepEqual(resolvePorts([bind(132, 9999, 10000)], state, ep, null, listeners).map((p) => p.hostPort), [10000], 'the range skips 9999');
    assert.deepEqual(resolvePorts([bind(6, 9999)], state, ep, null, listeners).map((p) => p.hostPort), [9999], 'tcp/9999 is not sctp/9999');
  });
});
