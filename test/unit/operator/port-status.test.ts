// `ledgernet status` lists the published ports (Docker shows none for a remote driver): each host
// address and port with the container address and port it leads to, from the firewall a pass writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/index.ts';
import { portRows, portsTable } from '../../../src/operator/port-status.ts';
import { endpointSpec, given, networkSpec } from '../../helpers/events.ts';
import { EP_3, FIREWALL_COMMANDS, NET_C } from '../../helpers/firewall-states.ts';

describe('status: published ports', () => {
  it('one row per forwarded range, by host port, with the container once Docker named it', () => {
    const named: Command = { type: 'RecordNames', networks: [], endpoints: [{ networkId: NET_C, endpointId: EP_3, containerId: 'c0'.repeat(32), name: 'web-1' }] };
    assert.equal(
      portsTable(portRows(given(...FIREWALL_COMMANDS, named))),
      [
        'PUBLISHED              TO                    CONTAINER  ENDPOINT',
        '0.0.0.0:5353/udp       10.231.9.2:53         web-1      e3e3e3e34444',
        '0.0.0.0:7000/tcp       10.231.9.2:7000       web-1      e3e3e3e34444',
        '0.0.0.0:8080/tcp       10.231.7.2:80         -          e1e1e1e12222',
        '127.0.0.1:8443/tcp     10.231.9.2:443        web-1      e3e3e3e34444',
        '0.0.0.0:9000-9002/tcp  10.231.9.2:8000-8002  web-1      e3e3e3e34444',
        '0.0.0.0:49153/tcp      10.231.9.2:22         web-1      e3e3e3e34444',
        '',
      ].join('\n'),
    );
  });

  it('IPv6 forwards after the IPv4 ones, on [::] for every address; an internal network forwards nothing', () => {
    const net = 'f6'.repeat(32);
    const ep = 'e6'.repeat(32);
    const v6net = (internal: boolean) => ({ ...networkSpec(net, '10.231.66.0/24', '10.231.66.1/24'), internal, ipv6: true, ipv6Data: [{ pool: 'fd00:66::/64', gateway: 'fd00:66::1/64', aux: {} }] });
    const cmds: Command[] = [
      { type: 'CreateNetwork', spec: v6net(false) },
      { type: 'CreateEndpoint', spec: { ...endpointSpec(net, ep, '10.231.66.2/24'), addressV6: 'fd00:66::2/64' } },
      { type: 'ProgramExternal', networkId: net, endpointId: ep, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 8088, hostPortEnd: 8088 }] },
    ];
    const rows = portRows(given(...cmds));
    assert.deepEqual(rows.map((r) => `${r.hostIp} ${r.hostPorts.join('-')} -> ${r.ip}:${r.port}`), ['0.0.0.0 8088-8088 -> 10.231.66.2:80', ':: 8088-8088 -> fd00:66::2:80']);
    assert.match(portsTable(rows), /^\[::\]:8088\/tcp +\[fd00:66::2\]:80 +- +e6e6e6e6e6e6$/m);
    const internal = given({ type: 'CreateNetwork', spec: v6net(true) }, ...cmds.slice(1));
    assert.deepEqual(portRows(internal), []);
  });
});
