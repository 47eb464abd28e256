import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namedRoutes, routeOf, type DumpedRoute } from '../../../src/kernel/parse-route-dump.ts';
import { parseRoutes } from '../../../src/kernel/index.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

const dumped = (): DumpedRoute[] =>
  readFixtureLines('netlink/route-dump.hex').flatMap((hex) => {
    const b = Buffer.from(hex, 'hex');
    const r = routeOf({ type: b.readUInt16LE(0), payload: b.subarray(2) });
    return r === null ? [] : [r];
  });
const names = (): Map<number, string> => new Map(JSON.parse(readFixture('netlink/route-dump.links.json')) as [number, string][]);

describe('routes from the kernel dump', () => {
  it('reads the main table of both families as ip -j [-6] route show table main prints them, in its order', () => {
    const want = [...parseRoutes(readFixture('netlink/route-dump.ip.json'), 4), ...parseRoutes(readFixture('netlink/route-dump.ip6.json'), 6)];
    assert.deepEqual(namedRoutes(dumped(), names()), want);
  });

  it('leaves out the local table and multicast routes the dump also holds', () => {
    const all = readFixtureLines('netlink/route-dump.hex').length;
    assert.ok(all > dumped().length, `${all} messages, ${dumped().length} routes`);
    assert.ok(!dumped().some((r) => r.dst.startsWith('127.') || r.dst.startsWith('ff00:') || r.dst === '10.231.80.1/32'));
  });

  it('reads a deleted subnet route as absent, and the bridge that still has it as present', () => {
    const routes = namedRoutes(dumped(), names());
    assert.ok(routes.some((r) => r.dst === '10.231.80.0/24' && r.dev === 'lnb-aaaa'));
    assert.ok(routes.some((r) => r.dst === 'fd00:0:0:1::/64' && r.dev === 'lnb-aaaa'));
    assert.ok(!routes.some((r) => r.dst === '10.231.81.0/24' || r.dst === 'fd00:0:0:2::/64'));
  });

  it('reads blackhole, unreachable, prohibit and throw routes of both families as ip -j prints them (an operator\'s blackhole on a subnet is not a deleted route)', () => {
    const typed = readFixtureLines('netlink/route-types-dump.hex').flatMap((line) => {
      const b = Buffer.from(line.replace(/^route /, ''), 'hex');
      const r = routeOf({ type: b.readUInt16LE(0), payload: b.subarray(2) });
      return r === null ? [] : [r];
    });
    const links = new Map(JSON.parse(readFixture('netlink/route-types-dump.links.json')) as [number, string][]);
    const want = [...parseRoutes(readFixture('netlink/route-types-dump.ip.json'), 4), ...parseRoutes(readFixture('netlink/route-types-dump.ip6.json'), 6)];
    const routes = namedRoutes(typed, links);
    assert.deepEqual(routes, want);
    assert.deepEqual(routes.filter((r) => r.family === 4), [
      { family: 4, dst: '10.231.7.0/24', dev: null },
      { family: 4, dst: '10.231.8.0/24', dev: null },
      { family: 4, dst: '10.231.9.0/24', dev: null },
      { family: 4, dst: '10.231.10.0/24', dev: null },
    ]);
    assert.ok(routes.some((r) => r.dst === 'fd00:7::/64' && r.dev === 'lo'), 'the IPv6 blackhole (the kernel gives it lo)');
  });
});
