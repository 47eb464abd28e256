import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRoutes } from '../../../src/kernel/parse-routes.ts';
import { readFixture } from '../../helpers/fixtures.ts';

describe('parseRoutes', () => {
  it('reads IPv4 routes: default as 0.0.0.0/0, connected prefixes with their device', () => {
    const routes = parseRoutes(readFixture('ip/route-show.host.json'), 4);
    assert.deepEqual(routes[0], { family: 4, dst: '0.0.0.0/0', dev: 'eth0' });
    assert.ok(routes.some((r) => r.dst === '172.17.0.0/16' && r.dev === 'docker0'));
    assert.ok(routes.every((r) => r.dst.includes('/')));
  });

  it('reads IPv6 routes, and a host route gets a full-length prefix', () => {
    const routes = parseRoutes(readFixture('ip/route-show6.host.json'), 6);
    assert.ok(routes.some((r) => r.dst === '::/0'));
    assert.ok(routes.some((r) => r.dst === 'fe80::/64'));
    assert.deepEqual(parseRoutes('[{"dst":"fd00::5","dev":"x","flags":[]}]', 6), [{ family: 6, dst: 'fd00::5/128', dev: 'x' }]);
    assert.deepEqual(parseRoutes('', 6), []);
  });

  it('refuses output that is not the expected JSON', () => {
    assert.throws(() => parseRoutes('[{"dev":"eth0"}]', 4), /could not parse the output of ip -j route show/);
  });
});
