// "Outside the host" for e2e tests: a network namespace linked to the host by a veth pair, with
// addresses the test chooses (10.231.250.0/30 by default; with `v6`, also <v6>::1 and <v6>::2 in
// a /64). Test traffic goes only there.
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

export interface Outside {
  readonly netns: string;
  /** The host end of the link and its address (what "the host's address" means in tests). */
  readonly hostIf: string;
  readonly hostIp: string;
  readonly ip: string;
  /** With `v6`: the host end's IPv6 address and the namespace's; '' without. */
  readonly hostIp6: string;
  readonly ip6: string;
  /** Runs a command inside the namespace; never throws. */
  exec(args: readonly string[], timeoutMs?: number): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** `wget` from outside; true when the body matches `expect`. */
  fetch(url: string, expect?: RegExp): Promise<boolean>;
  ping(ip: string): Promise<boolean>;
  /** A route in the namespace through the host end (IPv4 or IPv6 by the CIDR). */
  addRoute(cidr: string): Promise<void>;
  remove(): Promise<void>;
}

const BUSYBOX = '/bin/busybox';

/** Creates the namespace and link; `remove()` deletes both (the namespace takes the veth with it). */
export async function createOutside(prefix = '10.231.250', v6 = ''): Promise<Outside> {
  const tag = randomBytes(3).toString('hex');
  const netns = `lnout-${process.pid}-${tag}`;
  const hostIf = `lnt-o${tag}`;
  const peer = `lnt-i${tag}`;
  const hostIp = `${prefix}.1`;
  const ip = `${prefix}.2`;
  const [hostIp6, ip6] = v6 === '' ? ['', ''] : [`${v6}::1`, `${v6}::2`];
  const run = (args: string[]) => execa('ip', args);
  await run(['netns', 'add', netns]);
  try {
    await run(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peer]);
    await run(['link', 'set', peer, 'netns', netns]);
    await run(['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    await run(['link', 'set', hostIf, 'up']);
    await run(['-n', netns, 'addr', 'add', `${ip}/30`, 'dev', peer]);
    await run(['-n', netns, 'link', 'set', peer, 'up']);
    await run(['-n', netns, 'link', 'set', 'lo', 'up']);
    if (v6 !== '') {
      // nodad: usable at once, no duplicate address detection to wait for.
      await run(['addr', 'add', `${hostIp6}/64`, 'dev', hostIf, 'nodad']);
      await run(['-n', netns, 'addr', 'add', `${ip6}/64`, 'dev', peer, 'nodad']);
    }
  } catch (e) {
    await execa('ip', ['link', 'del', hostIf], { reject: false });
    await execa('ip', ['netns', 'del', netns], { reject: false });
    throw e;
  }
  const exec = async (args: readonly string[], timeoutMs = 15_000) => {
    const r = await execa('ip', ['netns', 'exec', netns, ...args], { reject: false, timeout: timeoutMs, stdin: 'ignore' });
    return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    netns,
    hostIf,
    hostIp,
    ip,
    hostIp6,
    ip6,
    exec,
    async fetch(url, expect = /ok/) {
      const r = await exec([BUSYBOX, 'timeout', '5', BUSYBOX, 'wget', '-q', '-O', '-', url]);
      return r.exitCode === 0 && expect.test(r.stdout);
    },
    async ping(target) {
      return (await exec([BUSYBOX, 'ping', '-c', '2', '-W', '1', target])).exitCode === 0;
    },
    async addRoute(cidr) {
      await run(['-n', netns, 'route', 'replace', cidr, 'via', cidr.includes(':') ? hostIp6 : hostIp]);
    },
    async remove() {
      await execa('ip', ['link', 'del', hostIf], { reject: false });
      await execa('ip', ['netns', 'del', netns], { reject: false });
    },
  };
}
