// The floor of row 1: a libnetwork remote network driver that does no work on Docker's path.
// Before any round it makes a bridge `lnfloor0` with the network's gateway address and a pool of
// veth pairs (host end on that bridge and up, container end `lnfc<k>` free), so `Join` answers at
// once with an existing SrcName and the container gets a working interface; every other call is
// answered at once (Docker's default IPAM gives the addresses). It records, per call, when the
// request's headers arrived, when its body was read, and when the reply was written, so the
// probe can show that the driver's own time is ~0 and where Docker spends the rest.
// Used by bench/probes/floor-cost.ts; `stop()` removes the socket, the bridge and every veth.
import { execFileSync } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { measureSubnet } from '../docker/measure.ts';
import type { Session } from '../docker/session.ts';
import { TEST_IMAGE } from '../../test/helpers/docker.ts';

export const FLOOR_DRIVER = 'lnfloor';
/** The floor network's gateway: startFloorDriver puts it on its bridge, createFloorNetwork gives Docker its subnet. */
export const FLOOR_GATEWAY = '10.242.253.1/24';
const SOCK = `/run/docker/plugins/${FLOOR_DRIVER}.sock`;
const BRIDGE = 'lnfloor0';
const host = (k: number) => `lnfh${k}`;
const peer = (k: number) => `lnfc${k}`;

export interface FloorCall {
  method: string;
  /** performance.now() when the headers arrived, the body was read, the reply was written. */
  received: number;
  read: number;
  replied: number;
}

export interface FloorDriver {
  readonly calls: FloorCall[];
  /** veth pairs still free. */
  free(): number;
  stop(): Promise<void>;
}

function ipBatch(lines: string[]): void {
  execFileSync('ip', ['-batch', '-'], { input: `${lines.join('\n')}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** Removes what an earlier run may have left (a dead probe): the bridge and every lnfh/lnfc link. */
function removeLinks(): void {
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => n === BRIDGE || /^lnf[hc]\d+$/.test(n));
  // Deleting one end of a pair deletes both: delete host ends first, then whatever is left.
  for (const n of links.sort((a, b) => (a.startsWith('lnfh') ? -1 : b.startsWith('lnfh') ? 1 : 0))) {
    try {
      execFileSync('ip', ['link', 'del', 'dev', n], { stdio: 'ignore' });
    } catch {
      /* gone with its peer */
    }
  }
}

function removeSocket(): void {
  try {
    unlinkSync(SOCK);
  } catch {
    /* none */
  }
}

type Reply = Record<string, unknown>;

function answer(method: string, body: string, state: { gateway: string; pool: number[]; joined: Map<string, number> }): Reply {
  switch (method) {
    case 'Plugin.Activate':
      return { Implements: ['NetworkDriver'] };
    case 'NetworkDriver.GetCapabilities':
      return { Scope: 'local', ConnectivityScope: 'local' };
    case 'NetworkDriver.Join': {
      const k = state.pool.shift();
      if (k === undefined) return { Err: 'lnfloor: the veth pool is empty' };
      const { EndpointID } = JSON.parse(body) as { EndpointID: string };
      state.joined.set(EndpointID, k);
      return { InterfaceName: { SrcName: peer(k), DstPrefix: 'eth' }, Gateway: state.gateway };
    }
    case 'NetworkDriver.EndpointOperInfo':
      return { Value: {} };
    default:
      // CreateNetwork, CreateEndpoint, Leave, DeleteEndpoint, DeleteNetwork, Program/Revoke…
      return {};
  }
}

/**
 * Starts the driver for a network whose gateway is `gatewayCidr` (e.g. 10.242.253.1/24) with
 * `poolSize` veth pairs made now. Give the Docker network the same subnet.
 */
export async function startFloorDriver(gatewayCidr: string, poolSize: number): Promise<FloorDriver> {
  removeLinks();
  removeSocket();
  const lines = [`link add name ${BRIDGE} type bridge`, `addr add ${gatewayCidr} dev ${BRIDGE}`, `link set dev ${BRIDGE} up`];
  for (let k = 0; k < poolSize; k++) {
    lines.push(`link add name ${host(k)} type veth peer name ${peer(k)}`, `link set dev ${host(k)} master ${BRIDGE} up`);
  }
  ipBatch(lines);
  const state = { gateway: gatewayCidr.split('/')[0] ?? '', pool: Array.from({ length: poolSize }, (_, k) => k), joined: new Map<string, number>() };
  const calls: FloorCall[] = [];
  const srv: Server = createServer((req, res) => {
    const received = performance.now();
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const read = performance.now();
      const method = (req.url ?? '').slice(1);
      const out = answer(method, body, state);
      res.setHeader('content-type', 'application/vnd.docker.plugins.v1+json');
      res.end(JSON.stringify(out));
      calls.push({ method, received, read, replied: performance.now() });
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(SOCK, resolve);
  });
  // A Ctrl-C ends the probe through process.exit (the session's handler): still remove our links.
  const leftovers = () => {
    removeSocket();
    removeLinks();
  };
  process.once('exit', leftovers);
  return {
    calls,
    free: () => state.pool.length,
    async stop() {
      await new Promise<void>((r) => srv.close(() => r()));
      process.off('exit', leftovers);
      leftovers();
    },
  };
}

/** Creates the Docker network of the floor driver (its gateway FLOOR_GATEWAY) and shows it works: a container on it reaches the gateway. */
export async function createFloorNetwork(s: Session): Promise<string> {
  const name = s.name('net-floor');
  await s.docker(['network', 'create', '-d', FLOOR_DRIVER, '--subnet', measureSubnet(253), name]);
  await s.docker(['run', '--rm', '--name', s.name('floor-ping'), '--network', name, TEST_IMAGE, 'ping', '-c', '1', '-W', '2', FLOOR_GATEWAY.split('/')[0] ?? '']);
  return name;
}
