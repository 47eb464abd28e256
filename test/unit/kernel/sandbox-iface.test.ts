// The container's interface, from `ip -j addr show` captured inside a real Docker sandbox.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseSandboxIface } from '../../../src/kernel/sandbox-iface.ts';
import { REPO_ROOT } from '../../helpers/daemon.ts';

const dump = readFileSync(join(REPO_ROOT, 'fixtures', 'ip', 'addr-show.container-sandbox.json'), 'utf8');

describe('parseSandboxIface', () => {
  it("finds the interface whose peer is the host's veth: its global IPv4 and IPv6 addresses (not link-local) and its MAC", () => {
    assert.deepEqual(parseSandboxIface(dump, 22371), { name: 'eth0', address: '10.231.250.2/24', addressV6: 'fd00:231:250::2/64', mac: '02:42:0a:e7:fa:02' });
  });

  it('null for a veth that is not in this sandbox (or not moved in yet), and for loopback', () => {
    assert.equal(parseSandboxIface(dump, 22370), null, "the container end's own ifindex is not its peer's");
    assert.equal(parseSandboxIface(dump, 1), null);
    assert.equal(parseSandboxIface('[]', 22371), null);
  });
});
