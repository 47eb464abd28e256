// The INPUT accept of cluster networks' VXLAN (UDP 4789 from the peers' VTEPs) against a real
// iptables and nft in a throwaway namespace, with both firewall backends: written, read back with
// nothing left to plan, first in INPUT ahead of a host rule that drops VXLAN, and removed with the
// last cluster network. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { Command } from '../../src/events/domain/commands.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel } from '../../src/kernel/index.ts';
import { iptablesFirewall } from '../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { given, NET_A, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const CLUSTER: readonly Command[] = [
  { type: 'RequestPool', request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26 } } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue' } } },
  ...['2', '3'].map((n): Command => ({ type: 'PeerChange', change: { op: 'member', cluster: 'blue', host: `h${n}`, member: { host: `h${n}`, vtep: `192.0.2.${n}` } }, self: 'h1' })),
];
const ACCEPTS = [
  '-A LEDGERNET-INPUT -s 192.0.2.2/32 -p udp -m udp --dport 4789 -m comment --comment "ledgernet:vxlan" -j ACCEPT',
  '-A LEDGERNET-INPUT -s 192.0.2.3/32 -p udp -m udp --dport 4789 -m comment --comment "ledgernet:vxlan" -j ACCEPT',
];

describe('VXLAN accepted in INPUT, both firewall backends, in a throwaway namespace', { skip }, () => {
  const netns = `lnvxfw-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: HostKernel;
  const inNs = (cmd: string, ...args: string[]) => execa('ip', ['netns', 'exec', netns, cmd, ...args]);
  const firewallOnly = (...cmds: Command[]): DesiredState => ({ bridges: [], veths: [], firewall: desiredFromState(given(...cmds)).firewall });
  const converge = async (d: DesiredState, fw: FirewallBackend) => {
    assert.deepEqual((await applyActions(plan(d, await kernel.observe(), fw), kernel, fw)).failures, []);
    const again = plan(d, await kernel.observe(), fw);
    assert.deepEqual(again, [], `not converged:\n${JSON.stringify(again, null, 2)}`);
  };
  const input = async () => (await inNs('iptables-save', '-t', 'filter')).stdout.split('\n').filter((l) => l.startsWith('-A INPUT') || l.startsWith('-A LEDGERNET-INPUT'));

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    // The host's own rule that drops VXLAN: ours must come first.
    await inNs('iptables', '-A', 'INPUT', '-p', 'udp', '--dport', '4789', '-j', 'DROP');
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  });

  for (const fw of [iptablesFirewall, nftablesFirewall]) {
    it(`${fw.name}: one accept per peer VTEP, read back as written, first in INPUT; gone with the last cluster network`, async () => {
      await converge(firewallOnly(...CLUSTER), fw);
      assert.deepEqual(await input(), [
        '-A INPUT -m comment --comment "ledgernet:hook" -j LEDGERNET-INPUT',
        '-A INPUT -p udp -m udp --dport 4789 -j DROP',
        ...ACCEPTS,
      ]);
      const nft = await inNs('nft', 'list', 'chain', 'inet', 'ledgernet', 'input').catch((e: { exitCode: number; stdout: string }) => e);
      if (fw === nftablesFirewall) {
        assert.match(nft.stdout, /ip saddr 192\.0\.2\.2 udp dport 4789 accept\n\s*ip saddr 192\.0\.2\.3 udp dport 4789 accept/);
      } else assert.notEqual(nft.exitCode, 0, 'the iptables backend has no nftables table');
      await converge(firewallOnly(...CLUSTER, { type: 'DeleteNetwork', networkId: NET_A }), fw);
      assert.deepEqual(await input(), ['-A INPUT -p udp -m udp --dport 4789 -j DROP'], 'only the host\'s rule is left');
    });
  }
});
