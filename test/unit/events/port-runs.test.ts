// endpoint.external.programmed v2 holds published ports as runs (src/events/domain/port-runs.ts):
// a range Docker names port by port is one binding with a count, exactly reversible, and a
// version 1 event (one binding a port) folds to the same state.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { portsText } from '../../../src/events/audit/cloudevents.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { expandRuns, portRuns } from '../../../src/events/domain/port-runs.ts';
import { EventVersions, type PortBinding } from '../../../src/events/domain/types.ts';
import { EP_1, NET_A, endpointSpec, given, networkSpec, stamp } from '../../helpers/events.ts';

/** Docker's portmap for `-p HOST-HOSTEND:PORT-PORTEND/proto` (one binding a port, host port fixed). */
const range = (proto: number, hostIp: string, port: number, hostPort: number, n: number): PortBinding[] =>
  Array.from({ length: n }, (_, i) => ({ proto, port: port + i, hostIp, hostPort: hostPort + i, hostPortEnd: hostPort + i }));

describe('published ports as runs', () => {
  it('a range is one run per protocol and host address, and expands back to the same bindings in the same order', () => {
    const pm = [...range(6, '', 1000, 10000, 1000), ...range(17, '', 1000, 10000, 1000), ...range(6, '127.0.0.1', 80, 8080, 1)];
    const runs = portRuns(pm);
    assert.deepEqual(runs, [
      { proto: 6, port: 1000, hostIp: '', hostPort: 10000, hostPortEnd: 10000, count: 1000 },
      { proto: 17, port: 1000, hostIp: '', hostPort: 10000, hostPortEnd: 10000, count: 1000 },
      { proto: 6, port: 80, hostIp: '127.0.0.1', hostPort: 8080, hostPortEnd: 8080 },
    ]);
    assert.deepEqual(expandRuns(runs), pm);
    assert.deepEqual(portRuns(runs), runs, 'runs are already the fewest');
    assert.equal(portsText(pm), '10000-10999->1000-1999/tcp,10000-10999->1000-1999/udp,127.0.0.1:8080->80/tcp');
    assert.equal(portsText(range(6, '::1', 80, 8080, 3)), '[::1]:8080-8082->80-82/tcp');
  });

  it('ports that do not go on one by one stay apart', () => {
    const pm: PortBinding[] = [
      { proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 },
      { proto: 6, port: 81, hostIp: '', hostPort: 8082, hostPortEnd: 8082 }, // host port skips one
      { proto: 6, port: 82, hostIp: '0.0.0.0', hostPort: 8083, hostPortEnd: 8083 }, // another host address
      { proto: 17, port: 83, hostIp: '0.0.0.0', hostPort: 8084, hostPortEnd: 8084 }, // another protocol
    ];
    assert.deepEqual(portRuns(pm), pm);
  });

  it('is exactly reversible for any list of bindings (property)', () => {
    const binding = fc.record({
      proto: fc.constantFrom(6, 17, 132),
      port: fc.integer({ min: 1, max: 40 }),
      hostIp: fc.constantFrom('', '127.0.0.1', '::'),
      hostPort: fc.integer({ min: 1, max: 40 }),
      hostPortEnd: fc.integer({ min: 1, max: 40 }),
    }).map((b) => ({ ...b }));
    fc.assert(
      fc.property(fc.array(binding, { maxLength: 30 }), (pm) => {
        const runs = portRuns(pm);
        assert.deepEqual(expandRuns(runs), pm);
        assert.ok(runs.every((r) => r.count === undefined || r.count > 1));
      }),
    );
  });

  it('ProgramExternal records a range as runs (v2), and the state holds every port; a v1 event of the same ports folds to the same state', () => {
    const state = given(
      { type: 'CreateNetwork', spec: networkSpec(NET_A) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
      { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/pr' },
    );
    const pm = [...range(6, '', 1000, 10000, 2000), ...range(17, '', 1000, 10000, 2000)];
    const cmd: Command = { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: pm, hostListeners: [] };
    const [ev, ...rest] = decide(cmd, state);
    assert.equal(rest.length, 0);
    assert.ok(ev?.type === 'endpoint.external.programmed');
    assert.equal(ev.data.portmap.length, 2);
    assert.ok(JSON.stringify(ev.data).length < 500, `${JSON.stringify(ev.data).length} bytes`);
    assert.equal(EventVersions['endpoint.external.programmed'], 2);
    const [stored] = stamp([ev], state);
    const after = fold(state, [stored!]);
    assert.deepEqual(after.endpoints[EP_1]?.portmap, pm);
    const v1 = { ...stored!, v: 1, data: { ...ev.data, portmap: pm } } as typeof stored;
    assert.deepEqual(fold(state, [v1!]), after);
    // Docker repeating the call changes nothing.
    assert.deepEqual(decide(cmd, after), []);
  });

  it('a range or -P takes, binding by binding, the lowest port of its range that is free (property; the scan goes on where the last one ended)', () => {
    const base = given(
      { type: 'CreateNetwork', spec: networkSpec(NET_A) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
      { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/pr' },
    );
    const binding = fc.record({ proto: fc.constantFrom(6, 17), hostIp: fc.constantFrom('', '127.0.0.1'), lo: fc.integer({ min: 20000, max: 20010 }), span: fc.integer({ min: 0, max: 12 }) });
    fc.assert(
      fc.property(fc.array(binding, { minLength: 1, maxLength: 25 }), fc.array(fc.integer({ min: 20000, max: 20022 }), { maxLength: 6 }), (bs, listening) => {
        const pm: PortBinding[] = bs.map((b, i) => ({ proto: b.proto, port: 100 + i, hostIp: b.hostIp, hostPort: b.lo, hostPortEnd: b.lo + b.span + 1 }));
        const listeners = listening.map((port) => ({ proto: 'tcp' as const, address: '0.0.0.0', port }));
        let got: PortBinding[];
        try {
          const [ev] = decide({ type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: pm, hostListeners: listeners }, base);
          got = ev?.type === 'endpoint.external.programmed' ? expandRuns(ev.data.portmap) : [];
        } catch {
          return; // a range with no free port: refused whole
        }
        const overlap = (a: string, b: string) => a === '' || b === '' || a === b;
        got.forEach((g, i) => {
          const p = pm[i]!;
          const taken = (n: number) =>
            got.slice(0, i).some((q) => q.proto === g.proto && q.hostPort === n && overlap(q.hostIp, g.hostIp)) || (g.proto === 6 && listening.includes(n));
          assert.ok(g.hostPort >= p.hostPort && g.hostPort <= p.hostPortEnd && !taken(g.hostPort), `binding ${i} got ${g.hostPort}`);
          for (let n = p.hostPort; n < g.hostPort; n++) assert.ok(taken(n), `binding ${i}: ${n} was free, ${g.hostPort} taken`);
        });
      }),
    );
  });
});
