// Link changes as rtnetlink requests (kernel/iproute/rtnl.ts) and the kernel's answers to them
// (kernel/netlink.ts readAnswer), over answers captured from the kernel (fixtures/netlink/acks.hex).
// That the requests make what `ip` makes is test/integration/link-writes.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { find, valueEnd, cString } from '../../../src/kernel/netlink-attrs.ts';
import { readAnswer, type NetlinkMessage, type NetlinkRequests } from '../../../src/kernel/netlink.ts';
import { applyLinkChanges, devicesOf, encodeStep, ipBytes } from '../../../src/kernel/iproute/rtnl.ts';
import type { Request } from '../../../src/kernel/rtnl-apply.ts';
import { linkSteps } from '../../../src/kernel/iproute/steps.ts';
import { ipLines } from '../../../src/kernel/iproute/render.ts';
import { readFixtureLines } from '../../helpers/fixtures.ts';

const base = { owner: { networkId: null, endpointId: null }, reason: 'missing' } as const;

function answers(): Map<string, Buffer[]> {
  const m = new Map<string, Buffer[]>();
  for (const line of readFixtureLines('netlink/acks.hex')) {
    const [name, hex] = line.split(' ') as [string, string];
    m.set(name, [...(m.get(name) ?? []), Buffer.from(hex, 'hex')]);
  }
  return m;
}

/** The top-level attribute types of a request body after its family header of `head` bytes. */
function attrTypes(r: Request, head: number): number[] {
  const types: number[] = [];
  for (let off = head; off + 4 <= r.body.length; off += (r.body.readUInt16LE(off) + 3) & ~3) types.push(r.body.readUInt16LE(off + 2));
  return types;
}

describe('rtnetlink answers', () => {
  const a = answers();
  const seqOf = (b: Buffer) => b.readUInt32LE(8);

  it('an ack with errno 0 is done', () => {
    const [d] = a.get('ack-done') ?? [];
    assert.ok(d);
    assert.deepEqual(readAnswer(d, seqOf(d), []), { errno: 0, detail: null, messages: [] });
  });

  it('an error without words gives its errno; with an extended ack, the kernel\'s words too', () => {
    const [exists] = a.get('ack-exists') ?? [];
    const [words] = a.get('ack-extack') ?? [];
    assert.ok(exists && words);
    assert.deepEqual(readAnswer(exists, seqOf(exists), []), { errno: 17, detail: null, messages: [] });
    assert.deepEqual(readAnswer(words, seqOf(words), []), { errno: 17, detail: 'ipv4: Address already assigned', messages: [] });
  });

  it('a GET\'s answer comes before its ack, in another datagram: kept, then the ack ends it', () => {
    const [link, ack] = a.get('getlink') ?? [];
    assert.ok(link && ack);
    const messages: NetlinkMessage[] = [];
    assert.equal(readAnswer(link, seqOf(link), messages), null, 'no ack yet');
    const done = readAnswer(ack, seqOf(ack), messages);
    assert.equal(done?.errno, 0);
    const [m] = done?.messages ?? [];
    assert.equal(m?.type, 16, 'RTM_NEWLINK');
    assert.equal(m?.payload.readInt32LE(4), 2, 'the ifindex of lnb-aaaa');
    const name = m ? find(m.payload, 16, m.payload.length, 3) : -1;
    assert.equal(m && cString(m.payload, name, valueEnd(m.payload, name)), 'lnb-aaaa');
    const [missing] = a.get('getlink-missing') ?? [];
    assert.ok(missing);
    assert.equal(readAnswer(missing, seqOf(missing), [])?.errno, 19, 'ENODEV');
  });

  it('answers to another request are skipped', () => {
    const [d] = a.get('ack-exists') ?? [];
    assert.ok(d);
    assert.equal(readAnswer(d, seqOf(d) + 1, []), null);
  });
});

describe('link changes as rtnetlink requests', () => {
  const veth = { ...base, kind: 'veth.create', name: 'lnv-b2b2b2b2b2b', peer: 'lnc-b2b2b2b2b2b', alias: 'ledgernet:endpoint:x', peerAlias: 'ledgernet:endpoint:x', mtu: 1450, master: 'lnb-a1a1a1a1a1a', peerMac: '02:42:0a:e7:4d:02', replaces: ['lnv-old'] } as const;

  it('the same steps as the ip lines, one request each', () => {
    const steps = linkSteps(veth);
    assert.deepEqual(steps.map((s) => s.op), ['link.del', 'link.add', 'link.set', 'link.set']);
    assert.equal(ipLines(veth).length, steps.length);
    assert.match(ipLines(veth)[1] ?? '', /^link add name lnv-b2b2b2b2b2b mtu 1450 group 1280198004 numtxqueues 1 numrxqueues 1 type veth peer name lnc-b2b2b2b2b2b address 02:42:0a:e7:4d:02 mtu 1450 group 1280198004/);
  });

  it('links are changed (RTM_SETLINK) and deleted by name; a master by its index, found by name first', () => {
    const index = (n: string) => ({ 'lnb-a1a1a1a1a1a': 3 })[n] ?? 0;
    const [del, add, peer, host] = linkSteps(veth).map((s) => ({ s, r: encodeStep(s, index) as Request }));
    assert.ok(del && add && peer && host);
    assert.deepEqual(devicesOf(del.s), []);
    assert.deepEqual([del.r.type, del.r.body.readInt32LE(4), attrTypes(del.r, 16)], [17, 0, [3]], 'RTM_DELLINK of IFLA_IFNAME, no group: never a group delete');
    assert.deepEqual(devicesOf(add.s), []);
    assert.deepEqual([add.r.type, add.r.flags], [16, 0x600], 'RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL');
    assert.deepEqual(attrTypes(add.r, 16), [3, 4, 27, 31, 32, 18], 'name, mtu, group, queues, linkinfo');
    // The alias step of the host end: RTM_SETLINK (never RTM_NEWLINK: without NLM_F_CREATE, a
    // missing name with a group there changes the whole group), group default, the master's index, up.
    assert.deepEqual(devicesOf(host.s).map(([n]) => n), ['lnb-a1a1a1a1a1a']);
    assert.deepEqual([host.r.type, host.r.flags, host.r.body.readInt32LE(4), host.r.body.readUInt32LE(8), host.r.body.readUInt32LE(12)], [19, 0, 0, 1, 1]);
    assert.deepEqual(attrTypes(host.r, 16), [3, 27, 20, 10]);
    assert.equal(peer.r.type, 19);
    const at = find(host.r.body, 16, host.r.body.length, 27);
    assert.equal(host.r.body.readUInt32LE(at), 0, 'group default');
    const master = find(host.r.body, 16, host.r.body.length, 10);
    assert.equal(host.r.body.readUInt32LE(master), 3);
    const alias = find(host.r.body, 16, host.r.body.length, 20);
    assert.equal(host.r.body.toString('utf8', alias, valueEnd(host.r.body, alias)), 'ledgernet:endpoint:x', 'as ip sends it: no NUL');
  });

  it('the peer is described inside the request: its name, MAC, MTU, group and queues', () => {
    const add = encodeStep(linkSteps(veth)[1]!, () => 0) as Request;
    const info = find(add.body, 16, add.body.length, 18);
    const data = find(add.body, info, valueEnd(add.body, info), 2);
    const peer = find(add.body, data, valueEnd(add.body, data), 1);
    const at = (t: number) => find(add.body, peer + 16, valueEnd(add.body, peer), t);
    assert.equal(cString(add.body, at(3), valueEnd(add.body, at(3))), 'lnc-b2b2b2b2b2b');
    assert.equal(add.body.subarray(at(1), at(1) + 6).toString('hex'), '02420ae74d02');
    assert.deepEqual([4, 27, 31, 32].map((t) => add.body.readUInt32LE(at(t))), [1450, 1280198004, 1, 1]);
  });

  it('addresses and routes: IPv6 without DAD, IPv4 routes scoped to the link from the gateway', () => {
    const index = () => 4;
    const v6 = encodeStep({ op: 'addr.add', dev: 'lnb-a', cidr: 'fd00:231:77::1/64' }, index) as Request;
    assert.deepEqual([v6.type, v6.body[0], v6.body[1], v6.body[2], v6.body.readUInt32LE(4)], [20, 10, 64, 2, 4]);
    const del = encodeStep({ op: 'addr.del', dev: 'lnb-a', cidr: '10.231.77.1/24' }, index) as Request;
    assert.deepEqual([del.type, del.flags, attrTypes(del, 8)], [21, 0, [2]]);
    const route = encodeStep({ op: 'route.replace', dev: 'lnb-a', dst: '10.231.77.0/24', src: '10.231.77.1' }, index) as Request;
    assert.deepEqual([...route.body.subarray(0, 8)], [2, 24, 0, 0, 254, 2, 253, 1]);
    assert.deepEqual([route.flags, attrTypes(route, 12)], [0x500, [1, 4, 7]]);
    const route6 = encodeStep({ op: 'route.replace', dev: 'lnb-a', dst: 'fd00:231:77::/64', src: 'fd00:231:77::1' }, index) as Request;
    assert.deepEqual([...route6.body.subarray(0, 8)], [10, 64, 0, 0, 254, 2, 0, 1]);
    assert.equal(route6.body.readUInt32LE(find(route6.body, 12, route6.body.length, 6)), 256, 'metric 256');
  });

  it('an address, prefix or MAC that does not parse fails its step with what is wrong', () => {
    assert.equal(encodeStep({ op: 'addr.add', dev: 'x', cidr: '10.1.2/24' }, () => 1), '"10.1.2/24" is not an address with a prefix length');
    assert.equal(encodeStep({ op: 'addr.add', dev: 'x', cidr: '10.1.2.3/33' }, () => 1), '"10.1.2.3/33" is not an address with a prefix length');
    assert.equal(encodeStep({ op: 'route.replace', dev: 'x', dst: '10.1.2.0/24', src: 'fd00::1' }, () => 1), '"fd00::1" is not an IPv4 address');
    assert.equal(encodeStep(linkSteps({ ...veth, peerMac: '02:42:0a' })[1]!, () => 1), '"02:42:0a" is not a MAC address');
  });

  it('reads addresses as the kernel wants their bytes', () => {
    assert.equal(ipBytes('10.231.77.1')?.bytes.toString('hex'), '0ae74d01');
    assert.equal(ipBytes('fd00:231:77::1')?.bytes.toString('hex'), 'fd000231007700000000000000000001');
    assert.equal(ipBytes('::')?.bytes.toString('hex'), '0'.repeat(32));
    assert.equal(ipBytes('1:2:3:4:5:6:7:8')?.bytes.toString('hex'), '00010002000300040005000600070008');
    assert.equal(ipBytes('::ffff:10.0.0.1')?.bytes.toString('hex'), '00000000000000000000ffff0a000001');
    for (const bad of ['10.1.2', '10.1.2.256', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8:9', 'fd00::g', '', '::1.2.3']) assert.equal(ipBytes(bad), null, bad);
  });
});

describe('applyLinkChanges', () => {
  const TYPES: Record<number, string> = { 16: 'new', 17: 'del', 18: 'get', 19: 'set', 20: 'addr' };
  /** A socket that records `<request> <link name>` and refuses RTM_NEWLINK of `taken` with EEXIST (someone else's link, or altname, holds it). */
  const socket = (taken: string, sent: string[]): NetlinkRequests => ({
    request: async (type, _flags, body) => {
      const at = find(body, type === 20 ? 8 : 16, body.length, 3);
      const name = at < 0 ? '' : cString(body, at, valueEnd(body, at));
      sent.push(`${TYPES[type] ?? type} ${name}`.trim());
      if (type === 16 && name === taken) return { errno: 17, detail: null, messages: [] };
      if (type === 18) {
        const link = Buffer.alloc(16);
        link.writeInt32LE(7, 4);
        return { errno: 0, detail: null, messages: [{ type: 16, payload: link }] };
      }
      return { errno: 0, detail: null, messages: [] };
    },
    strerror: (errno) => (errno === 17 ? 'File exists' : `errno ${errno}`),
    close: () => undefined,
  });

  it("stops a change at its failed link add (the name is someone else's link), and a later change naming that link: no alias, MTU, up or address for it; the other changes run", async () => {
    const sent: string[] = [];
    const changes = [
      { ...base, kind: 'bridge.create', name: 'lnb-taken', alias: 'ledgernet:network:a', mtu: 1400 },
      { ...base, kind: 'addr.add', dev: 'lnb-taken', cidr: '10.231.7.1/24' },
      { ...base, kind: 'ifb.create', name: 'lnf-free', alias: 'ledgernet:ifb:b' },
    ] as const;
    const { failures } = await applyLinkChanges(socket('lnb-taken', sent), changes);
    assert.deepEqual(failures, [
      { index: 0, message: 'RTNETLINK answers: File exists' },
      { index: 1, message: 'not run: lnb-taken was not made (its link add failed: the name is held by another link)' },
    ]);
    assert.deepEqual(sent, ['new lnb-taken', 'new lnf-free', 'set lnf-free'], 'nothing sent for lnb-taken after its failed link add, not even a look-up');
  });
});
