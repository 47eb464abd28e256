import { DriverError } from '../errors.ts';

/**
 * Parses `sysctl key…` output (`net.ipv4.conf.lnb-x.route_localnet = 1` per line) into
 * key → value, keys as printed (sysctl prints a `.` inside an interface name as `/`).
 * @throws DriverError `LN_ERR_KERNEL_PARSE` on a line without ` = `.
 */
export function parseSysctl(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^(\S+) = (.*)$/.exec(line.trim());
    if (m === null) {
      throw new DriverError('LN_ERR_KERNEL_PARSE', 'could not parse the output of sysctl', { cause: new Error(`bad line: ${line}`) });
    }
    out[m[1] ?? ''] = m[2] ?? '';
  }
  return out;
}

/** The sysctl key of an interface setting; a `.` in the name is written `/`, as sysctl wants. */
export function ifaceSysctl(family: 'ipv4' | 'ipv6', iface: string, setting: string): string {
  return `net.${family}.conf.${iface.replaceAll('.', '/')}.${setting}`;
}

/**
 * The file of a net sysctl in our own namespace, `rel` under /proc/sys/net (`ipv4/conf/eth0/…`).
 * LEDGERNET_PROC_SYS_NET moves the root: Docker mounts /proc/sys read-only in a managed plugin,
 * whose config binds the host's /proc/sys/net elsewhere, writable (scripts/build-plugin.sh). The
 * files are the opener's namespace's, so that mount is the plugin's (the host's) own.
 */
export const procSysNet = (rel: string): string => `${process.env['LEDGERNET_PROC_SYS_NET'] || '/proc/sys/net'}/${rel}`;

/** The file of a net sysctl given by key (`net.ipv6.conf.all.forwarding`; no interface name with dots). */
export const netSysctlPath = (key: string): string => procSysNet(key.replace(/^net\./, '').replaceAll('.', '/'));

/** The /proc file of an interface's route_localnet (in our own namespace, read and written without sysctl). */
export const routeLocalnetPath = (iface: string): string => procSysNet(`ipv4/conf/${iface}/route_localnet`);

/** The /proc file of an interface's accept_ra (in our own namespace). */
export const acceptRaPath = (iface: string): string => procSysNet(`ipv6/conf/${iface}/accept_ra`);

/** The /proc file of an interface's disable_ipv6 (in our own namespace). */
export const disableIpv6Path = (iface: string): string => procSysNet(`ipv6/conf/${iface}/disable_ipv6`);
