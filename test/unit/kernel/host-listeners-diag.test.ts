// The host's listeners from sock_diag, over dumps captured in a throwaway namespace
// (fixtures/netlink/sock-diag.hex, see fixtures/netlink/README.md; held by test/helpers/listeners.ts's
// script, with one connection), checked against what the same
// namespace's /proc/net files and `ss -Hlntu` showed at the same moment.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diagRequest, parseDiagMessage, parseProcNet, type HostListener } from '../../../src/kernel/host-listeners.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';
import { SCRIPT_LISTENERS, sorted } from '../../helpers/listeners.ts';


function fromDump(): HostListener[] {
  return readFixtureLines('netlink/sock-diag.hex').flatMap((line) => {
    const [proto, hex] = line.split(' ') as ['tcp' | 'udp', string];
    const b = Buffer.from(hex, 'hex');
    assert.equal(b.readUInt16LE(0), 20, 'every answer is a SOCK_DIAG_BY_FAMILY message');
    const l = parseDiagMessage(b.subarray(2), proto);
    return l === null ? [] : [l];
  });
}

describe('host listeners from sock_diag', () => {
  it('reads every listener of the dump: TCP in LISTEN, unconnected UDP; IPv4-mapped as IPv4', () => {
    assert.deepEqual(sorted(fromDump()), SCRIPT_LISTENERS);
  });

  it('finds the same sockets as /proc/net and ss at the same moment', () => {
    const proc = (['tcp', 'tcp6', 'udp', 'udp6'] as const).flatMap((f) => parseProcNet(readFixture(`netlink/sock-diag.proc-net/${f}`), f.startsWith('tcp') ? 'tcp' : 'udp'));
    assert.deepEqual(sorted(fromDump()), sorted(proc));
    // ss prints a dual-stack wildcard as `*` and an IPv4-mapped address in its IPv6 form.
    const ss = readFixtureLines('netlink/sock-diag.ss.txt').map((l) => {
      const [proto, , , , local = ''] = l.split(/\s+/);
      return `${proto} ${local.replace(/^\*:/, '[::]:').replace('[::ffff:127.0.0.2]', '127.0.0.2')}`;
    });
    assert.deepEqual(sorted(fromDump()), ss.sort());
  });

  it('skips a message too short to be a socket or of another family', () => {
    const [first = ''] = readFixtureLines('netlink/sock-diag.hex');
    const b = Buffer.from(first.split(' ')[1] ?? '', 'hex').subarray(2);
    assert.equal(parseDiagMessage(b.subarray(0, 71), 'tcp'), null);
    const other = Buffer.from(b);
    other.writeUInt8(1, 0); // AF_UNIX
    assert.equal(parseDiagMessage(other, 'tcp'), null);
  });

  it('asks only for the states a listener is in', () => {
    const tcp = diagRequest(4, 'tcp');
    assert.deepEqual([tcp.length, tcp[0], tcp[1], tcp.readUInt32LE(4)], [56, 2, 6, 1 << 10]);
    const udp6 = diagRequest(6, 'udp');
    assert.deepEqual([udp6[0], udp6[1], udp6.readUInt32LE(4)], [10, 17, 1 << 7]);
    assert.ok(udp6.subarray(8).every((x) => x === 0), 'any socket id');
  });
});
