// The holes of test/unit/kernel/firewall-leaks.test.ts, with real packets, per backend, in
// throwaway namespaces: a "host" holding two networks' bridges and firewall (plan → apply), a
// container on each, and a LAN host. Each packet is counted where it would arrive (an nft counter
// in the receiving namespace): the count must stay 0. Needs root.
// - C (egress_deny 192.0.2.0/24) publishes tcp/8443 on 127.0.0.1 only: the LAN host sending a SYN
//   to 127.0.0.1:8443 through the host must not reach the container (moby#41872); the host's own
//   connection to it still does.
// - c1 sends an ICMP echo reply (no conntrack entry: INVALID) to the denied LAN host.
// - B (internal, IPv4 only): b1 gives itself an IPv6 address and sends over IPv6 to the LAN host.
// - c1 sends an ICMP echo reply (INVALID) to a container on Docker's docker0 (isolation).
// - the LAN host sends into B (internal) over a connection tracked before B was internal (an
//   entry left from a network of the same subnet): iptables accepted it by its reply rule.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel } from '../../src/kernel/index.ts';
import { iptablesFirewall } from '../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { EP_1, EP_2, NET_B, endpointSpec, given, networkSpec } from '../helpers/events.ts';
import { NET_C } from '../helpers/firewall-states.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const STATE = given(
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), internal: true } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24'), options: { 'ledgernet.egress_deny': '192.0.2.0/24' } } },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_1, '10.231.8.2/24') },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_C, EP_2, '10.231.9.2/24') },
  { type: 'ProgramExternal', networkId: NET_C, endpointId: EP_2, portmap: [{ proto: 6, port: 443, hostIp: '127.0.0.1', hostPort: 8443, hostPortEnd: 8443 }] },
);

/** Python: a TCP connect with a short timeout (prints OK or FAIL), a UDP datagram, or a raw ICMP echo reply. */
const CLIENT = `
import socket, struct, sys
kind, host = sys.argv[1], sys.argv[2]
if kind == 'tcp':
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(1)
    try: s.connect((host, int(sys.argv[3]))); print('OK')
    except Exception: print('FAIL')
elif kind == 'udp6':
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'leak', (host, 9999))
elif kind == 'udp':
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('', int(sys.argv[4])))
    for _ in range(3): u.sendto(b'stale', (host, int(sys.argv[3])))
else:
    data = b'EXFIL!'
    h = struct.pack('!BBHHH', 0, 0, 0, 0x4242, 1) + data
    t = sum(struct.unpack('!%dH' % (len(h) // 2), h)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).sendto(struct.pack('!BBHHH', 0, 0, ~t & 0xffff, 0x4242, 1) + data, (host, 0))
`;

for (const backend of [iptablesFirewall, nftablesFirewall]) {
  describe(`${backend.name}: what the review proved leaked is dropped (real packets)`, { skip }, () => {
    const t = `${process.pid % 10000}${randomBytes(2).toString('hex')}`;
    const [h, o, b1, c1, d1] = ['h', 'o', 'b', 'c', 'd'].map((r) => `lnfw-${r}-${t}`) as [string, string, string, string, string];
    const ip = (ns: string, ...a: string[]) => execa('ip', ['-n', ns, ...a]);
    const nsx = (ns: string, ...a: string[]) => execa('ip', ['netns', 'exec', ns, ...a]);
    const client = (ns: string, ...a: string[]) => nsx(ns, 'python3', '-c', CLIENT, ...a);
    /** A counter in `ns` of what its input sees matching `match` (nft syntax). */
    const counter = async (ns: string, name: string, match: string) => {
      await nsx(ns, 'nft', `add table inet lnfwt; add counter inet lnfwt ${name}; add chain inet lnfwt in { type filter hook input priority -300; }; add rule inet lnfwt in ${match} counter name ${name}`);
    };
    const count = async (ns: string, name: string) => Number(/packets (\d+)/.exec((await nsx(ns, 'nft', 'list', 'counter', 'inet', 'lnfwt', name)).stdout)?.[1]);

    before(async () => {
      for (const ns of [h, o, b1, c1, d1]) await execa('ip', ['netns', 'add', ns]);
      await nsx(h, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
      await nsx(h, 'iptables', '-P', 'FORWARD', 'DROP');
      await nsx(h, 'ip6tables', '-P', 'FORWARD', 'ACCEPT');
      await ip(h, 'link', 'set', 'lo', 'up');
      const kernel = createKernel({ netns: h, filterPrefixes: [VETH_PREFIX] });
      assert.deepEqual((await applyActions(plan(desiredFromState(STATE), await kernel.observe(), backend), kernel, backend)).failures, []);
      for (const [ns, net, addr, gw] of [[b1, NET_B, '10.231.8.2', '10.231.8.1'], [c1, NET_C, '10.231.9.2', '10.231.9.1']] as const) {
        await ip(h, 'link', 'add', `lnfw${ns.charAt(5)}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        await ip(h, 'link', 'set', `lnfw${ns.charAt(5)}`, 'master', networkSpec(net).bridge, 'up');
        await ip(ns, 'link', 'set', 'lo', 'up');
        await ip(ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
        await ip(ns, 'link', 'set', 'eth0', 'up');
        await ip(ns, 'route', 'add', 'default', 'via', gw);
      }
      // Docker's default bridge and a container on it.
      await ip(h, 'link', 'add', 'docker0', 'type', 'bridge');
      await ip(h, 'addr', 'add', '172.17.0.1/16', 'dev', 'docker0');
      await ip(h, 'link', 'set', 'docker0', 'up');
      await ip(h, 'link', 'add', 'lnfwd', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', d1);
      await ip(h, 'link', 'set', 'lnfwd', 'master', 'docker0', 'up');
      await ip(d1, 'addr', 'add', '172.17.0.2/16', 'dev', 'eth0');
      await ip(d1, 'link', 'set', 'eth0', 'up');
      await ip(d1, 'link', 'set', 'lo', 'up');
      await ip(d1, 'route', 'add', 'default', 'via', '172.17.0.1');
      await ip(h, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p', 'netns', o);
      await ip(h, 'addr', 'add', '192.0.2.1/24', 'dev', 'up0');
      await ip(h, 'addr', 'add', '2001:db8::1/64', 'dev', 'up0', 'nodad');
      await ip(h, 'link', 'set', 'up0', 'up');
      await ip(o, 'link', 'set', 'lo', 'up');
      await ip(o, 'addr', 'add', '192.0.2.2/24', 'dev', 'up0p');
      await ip(o, 'addr', 'add', '2001:db8::2/64', 'dev', 'up0p', 'nodad');
      await ip(o, 'link', 'set', 'up0p', 'up');
      await ip(o, 'route', 'add', 'default', 'via', '192.0.2.1');
      await ip(o, '-6', 'route', 'add', 'default', 'via', '2001:db8::1');
    });

    after(async () => {
      for (const ns of [h, o, b1, c1, d1]) await execa('ip', ['netns', 'del', ns], { reject: false });
    });

    it('a port published on 127.0.0.1: not from the LAN host, still from the host itself', async () => {
      await counter(c1, 'syn', 'tcp dport 443');
      // The LAN host routes 127.0.0.1 to the ledgernet host (what a raw-frame sender does).
      await nsx(o, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.up0p.route_localnet=1');
      await ip(o, 'rule', 'add', 'pref', '10', 'to', '127.0.0.1/32', 'lookup', '100');
      await ip(o, 'route', 'replace', '127.0.0.1/32', 'via', '192.0.2.1', 'dev', 'up0p', 'table', '100', 'src', '192.0.2.2');
      await ip(o, 'rule', 'del', 'pref', '0');
      await ip(o, 'rule', 'add', 'pref', '100', 'lookup', 'local');
      await client(o, 'tcp', '127.0.0.1', '8443');
      assert.equal(await count(c1, 'syn'), 0, 'the LAN host reached 127.0.0.1:8443');
      await client(h, 'tcp', '127.0.0.1', '8443');
      assert.ok((await count(c1, 'syn')) > 0, "the host's own connection to 127.0.0.1:8443 is DNATed");
    });

    it('an ICMP echo reply (INVALID) does not pass egress_deny', async () => {
      await counter(o, 'reply', 'icmp type echo-reply');
      await client(c1, 'echoreply', '192.0.2.2');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await count(o, 'reply'), 0);
    });

    it("an ICMP echo reply (INVALID) does not reach Docker's bridges", async () => {
      await counter(d1, 'reply', 'icmp type echo-reply');
      await client(c1, 'echoreply', '172.17.0.2');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await count(d1, 'reply'), 0);
    });

    it('an internal network takes nothing over a connection conntrack already knows (ASSURED, from before it was internal)', async () => {
      await counter(b1, 'stale', 'udp dport 5000');
      // The entry a flow to the same address left when the subnet was another network's, replied to.
      await nsx(h, 'conntrack', '-I', '-p', 'udp', '-s', '192.0.2.2', '-d', '10.231.8.2', '--sport', '40000', '--dport', '5000', '-r', '10.231.8.2', '-q', '192.0.2.2', '--reply-port-src', '5000', '--reply-port-dst', '40000', '-u', 'SEEN_REPLY,ASSURED', '-t', '60');
      assert.match((await nsx(h, 'conntrack', '-L', '-p', 'udp', '--orig-port-dst', '5000')).stdout, /dst=10\.231\.8\.2 .*\[ASSURED\]/);
      await client(o, 'udp', '10.231.8.2', '5000', '40000');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await count(b1, 'stale'), 0);
    });

    it('an internal network without IPv6 forwards no IPv6', async () => {
      await counter(o, 'v6', 'udp dport 9999');
      let ll: string | undefined;
      for (let i = 0; i < 30 && ll === undefined; i++) {
        ll = /fe80::[0-9a-f:]+/.exec((await ip(h, '-6', '-br', 'addr', 'show', 'dev', networkSpec(NET_B).bridge)).stdout)?.[0];
        if (ll === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(ll, 'no link-local address on the bridge');
      await ip(b1, 'addr', 'add', '2001:db8:bbbb::2/64', 'dev', 'eth0', 'nodad');
      await ip(b1, '-6', 'route', 'replace', 'default', 'via', ll, 'dev', 'eth0');
      await ip(h, '-6', 'route', 'replace', '2001:db8:bbbb::/64', 'dev', networkSpec(NET_B).bridge);
      await client(b1, 'udp6', '2001:db8::2');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await count(o, 'v6'), 0);
    });
  });
}
