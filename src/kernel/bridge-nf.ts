// Whether the kernel passes bridged traffic (between containers of one bridge) through the
// firewall: `net.bridge.bridge-nf-call-iptables` and `-ip6tables`, which exist only while the
// br_netfilter module is loaded. Without it, a network's `icc=false` rules never see a packet.
// Docker loads the module when it starts and sets both to 1 when it makes an icc=false network of
// its own; a host tuned for VMs often sets them to 0 (libvirt's advice), and then containers of
// an icc=false network reach each other with nothing saying so.
import { readFile, writeFile } from 'node:fs/promises';
import { netSysctlPath as path, parseSysctl } from './parse-sysctl.ts';
import type { BridgeNf } from './types.ts';
import { createRunner, type Runner } from './runner.ts';

const KEYS = { iptables: 'net.bridge.bridge-nf-call-iptables', ip6tables: 'net.bridge.bridge-nf-call-ip6tables' } as const;

/** null for a setting that does not exist (br_netfilter not loaded), else whether it is 1. */
const setting = (text: string | undefined): boolean | null => (text === undefined ? null : text.trim() === '1');

/**
 * The namespace's bridge-nf settings: in our own namespace from /proc (no process), in another
 * with `sysctl -e` there (tests). Never throws: a read that fails says nothing (undefined).
 */
export async function readBridgeNf(run: Runner, netns: string | undefined): Promise<BridgeNf | undefined> {
  try {
    if (netns === undefined) {
      const read = (key: string) => readFile(path(key), 'utf8').then((t) => t, () => undefined);
      const [v4, v6] = await Promise.all([read(KEYS.iptables), read(KEYS.ip6tables)]);
      return { iptables: setting(v4), ip6tables: setting(v6) };
    }
    const o = await run('read bridge-nf-call', 'ip', ['netns', 'exec', netns, 'sysctl', '-e', KEYS.iptables, KEYS.ip6tables]);
    if (o.exitCode !== 0) return undefined;
    const got = parseSysctl(o.stdout);
    return { iptables: setting(got[KEYS.iptables]), ip6tables: setting(got[KEYS.ip6tables]) };
  } catch {
    return undefined;
  }
}

/** The `sysctl -w` that turns bridge filtering on for the families named. */
export function bridgeNfFix(families: readonly ('iptables' | 'ip6tables')[]): string {
  return `sysctl -w ${families.map((f) => `${KEYS[f]}=1`).join(' ')}`;
}

/**
 * Makes the kernel filter bridged traffic of `families` in our own namespace, as Docker does for
 * an icc=false network of its own: `modprobe br_netfilter` when the settings do not exist, then
 * each setting that is 0 set to 1. Returns the settings it turned on.
 * @throws Error naming what is missing when the module cannot be loaded.
 */
export async function enableBridgeNf(families: readonly ('iptables' | 'ip6tables')[], run: Runner = createRunner(10_000, undefined)): Promise<string[]> {
  const read = (f: 'iptables' | 'ip6tables') => readFile(path(KEYS[f]), 'utf8').then((t) => t.trim(), () => null);
  let now = await Promise.all(families.map(read));
  if (now.includes(null)) {
    const o = await run('load br_netfilter', 'modprobe', ['br_netfilter']).catch((e: unknown) => ({ exitCode: 1, stdout: '', stderr: (e as Error).message }));
    now = await Promise.all(families.map(read));
    if (now.includes(null)) {
      const why = o.exitCode === 0 ? 'it loaded, yet the settings are not there' : o.stderr.trim() || `exit ${o.exitCode}`;
      throw new Error(`the kernel module br_netfilter is not loaded and could not be (modprobe br_netfilter: ${why}); load it`);
    }
  }
  const changed: string[] = [];
  for (const [i, f] of families.entries()) {
    if (now[i] === '1') continue;
    await writeFile(path(KEYS[f]), '1\n').catch((e: unknown) => {
      throw new Error(`could not set ${KEYS[f]} to 1 (${(e as Error).message}); set it (sysctl -w ${KEYS[f]}=1)`);
    });
    changed.push(KEYS[f]);
  }
  return changed;
}
