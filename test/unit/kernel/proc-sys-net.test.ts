// LEDGERNET_PROC_SYS_NET moves every write of a net sysctl in our own namespace: the managed plugin
// (Docker mounts /proc/sys read-only in it) writes the host's through a bind mount of
// /proc/sys/net (scripts/build-plugin.sh). Here the root is a plain directory holding the files.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createKernel, enableBridgeNf } from '../../../src/kernel/index.ts';

describe('LEDGERNET_PROC_SYS_NET: where net sysctls are written', () => {
  let root: string;
  const was = process.env['LEDGERNET_PROC_SYS_NET'];
  const files: Record<string, string> = {
    'ipv6/conf/default/forwarding': '0',
    'ipv6/conf/all/forwarding': '0',
    'ipv6/conf/lnb-x/accept_ra': '1',
    'ipv4/conf/lnb-x/route_localnet': '0',
    'bridge/bridge-nf-call-iptables': '0',
    'bridge/bridge-nf-call-ip6tables': '1',
  };
  const read = async (rel: string) => (await readFile(join(root, rel), 'utf8')).trim();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ln-proc-sys-net-'));
    for (const [rel, v] of Object.entries(files)) {
      await mkdir(dirname(join(root, rel)), { recursive: true });
      await writeFile(join(root, rel), `${v}\n`);
    }
    process.env['LEDGERNET_PROC_SYS_NET'] = root;
  });
  after(async () => {
    if (was === undefined) delete process.env['LEDGERNET_PROC_SYS_NET'];
    else process.env['LEDGERNET_PROC_SYS_NET'] = was;
    await rm(root, { recursive: true, force: true });
  });

  it("a bridge's accept_ra and route_localnet, IPv6 forwarding and bridge filtering all go under it", async () => {
    const kernel = createKernel({ filterPrefixes: [] });
    await kernel.setAcceptRaOff(['lnb-x']);
    await kernel.setRouteLocalnet({ 'lnb-x': true });
    assert.deepEqual(await kernel.setIpv6ForwardingOn(), ['net.ipv6.conf.default.forwarding', 'net.ipv6.conf.all.forwarding']);
    assert.deepEqual(await enableBridgeNf(['iptables', 'ip6tables']), ['net.bridge.bridge-nf-call-iptables']);
    assert.deepEqual(
      await Promise.all(Object.keys(files).map(read)),
      ['1', '1', '0', '1', '1', '1'],
    );
    assert.deepEqual(await kernel.setIpv6ForwardingOn(), [], 'on already: nothing written');
  });

  it('a write that fails is an error naming the setting (IPv6 is there: not taken for a kernel without it)', async () => {
    const kernel = createKernel({ filterPrefixes: [] });
    await assert.rejects(kernel.setAcceptRaOff(['lnb-gone']), /could not set accept_ra of lnb-gone to 0: ENOENT/);
  });
});
