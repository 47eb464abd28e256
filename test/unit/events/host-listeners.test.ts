// ProgramExternalConnectivity against the host's own listeners (read through sock_diag by the api, /proc/net as its fallback):
// a fixed host port a program on the host listens on is refused with LN_ERR_PORT_IN_USE naming
// the port, the protocol and the listener's address, as Docker's bridge driver refuses it (its
// docker-proxy cannot bind); a range or -P skips it; the endpoint's own ports (Docker repeating
// the call) are not refused. Which addresses collide follows bind(2): a wildcard covers its
// family, `::` (dual stack) covers IPv4 too, `''` (no HostIP) covers every address.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { expandRuns } from '../../../src/events/domain/port-runs.ts';
import type { HostListener } from '../../../src/events/domain/ports.ts';
import type { PortBinding } from '../../../src/events/domain/types.ts';
import { EP_1, NET_A, endpointSpec, given, networkSpec } from '../../helpers/events.ts';

const joined = given(
  { type: 'CreateNetwork', spec: networkSpec(NET_A) },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
  { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/hl' },
);

const tcp = (hostIp: string, hostPort: number, hostPortEnd = hostPort): PortBinding => ({ proto: 6, port: 80, hostIp, hostPort, hostPortEnd });
const listen = (address: string, port: number, proto: 'tcp' | 'udp' = 'tcp'): HostListener => ({ proto, address, port });
const program = (portmap: PortBinding[], hostListeners: HostListener[]): Command => ({ type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap, hostListeners });

/** The host ports decide publishes, or the code and message it refuses with. */
function outcome(portmap: PortBinding[], listeners: HostListener[], state = joined): number[] | string {
  try {
    return decide(program(portmap, listeners), state).flatMap((e) => ('portmap' in e.data ? expandRuns(e.data.portmap).map((p) => p.hostPort) : []));
  } catch (e) {
    assert.ok(e instanceof DriverError, String(e));
    return `${e.code}: ${e.message}`;
  }
}

describe('published ports and the host\'s listeners', () => {
  it('a fixed port a program listens on is refused, naming the port, the protocol and its address', () => {
    assert.equal(
      outcome([tcp('', 18080)], [listen('127.0.0.1', 18080)]),
      'LN_ERR_PORT_IN_USE: host port tcp/18080 on every host address is in use: a program on the host listens on tcp 127.0.0.1:18080; ' +
        'stop it or publish another host port (nothing was published)',
    );
    assert.match(String(outcome([tcp('0.0.0.0', 18080)], [listen('::', 18080)])), /^LN_ERR_PORT_IN_USE: host port tcp\/18080 on 0\.0\.0\.0 .* tcp \[::\]:18080;/);
  });

  it('which addresses collide: as bind(2) for docker-proxy', () => {
    const refused = (hostIp: string, address: string) => typeof outcome([tcp(hostIp, 18080)], [listen(address, 18080)]) === 'string';
    for (const [hostIp, address, expected] of [
      ['', '127.0.0.1', true],
      ['', '0.0.0.0', true],
      ['', '::1', true],
      ['0.0.0.0', '127.0.0.1', true],
      ['0.0.0.0', '0.0.0.0', true],
      ['0.0.0.0', '::', true], // a dual-stack socket takes IPv4 too
      ['0.0.0.0', '::1', false],
      ['127.0.0.1', '127.0.0.1', true],
      ['127.0.0.1', '0.0.0.0', true],
      ['127.0.0.1', '127.0.0.2', false],
      ['10.1.2.3', '127.0.0.1', false],
    ] as const) {
      assert.equal(refused(hostIp, address), expected, `HostIP ${JSON.stringify(hostIp)} against a listener on ${address}`);
    }
  });

  it('another protocol or another port is no collision', () => {
    assert.deepEqual(outcome([tcp('', 18080)], [listen('0.0.0.0', 18080, 'udp'), listen('0.0.0.0', 18081)]), [18080]);
    assert.equal(typeof outcome([{ ...tcp('', 18080), proto: 17 }], [listen('0.0.0.0', 18080, 'udp')]), 'string');
  });

  it('a range and -P skip ports programs listen on', () => {
    assert.deepEqual(outcome([tcp('', 18080, 18082)], [listen('0.0.0.0', 18080), listen('127.0.0.1', 18081)]), [18082]);
    assert.deepEqual(outcome([tcp('', 0, 0)], [listen('0.0.0.0', 49153)]), [49154]);
    assert.match(String(outcome([tcp('', 18080, 18081)], [listen('0.0.0.0', 18080), listen('0.0.0.0', 18081)])), /^LN_ERR_CONFLICT: no free host port in 18080-18081/);
  });

  it('Docker repeating the call: the endpoint\'s own ports are not refused, and nothing new is written', () => {
    const programmed = given(
      { type: 'CreateNetwork', spec: networkSpec(NET_A) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
      { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/hl' },
      program([tcp('', 18080)], []),
    );
    assert.deepEqual(decide(program([tcp('', 18080)], [listen('0.0.0.0', 18080)]), programmed), []);
  });
});
