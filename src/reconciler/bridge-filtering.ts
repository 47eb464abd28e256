// `icc=false` that the kernel does not enforce. Containers of one network talk across their
// bridge, and the kernel shows that bridged traffic to the firewall (iptables' FORWARD, nftables'
// forward hook) only with the br_netfilter module loaded and `net.bridge.bridge-nf-call-iptables`
// (`-ip6tables` for IPv6) at 1. Docker loads the module when it starts and sets both to 1 when it
// makes an icc=false network of its own; a host tuned for VMs often sets them to 0 (libvirt's
// advice, so that bridged VM traffic skips the firewall), and then the containers of an icc=false
// network reach each other with nothing saying so. This names it (status, the daemon's log, a
// dry-run's warning) with the command that fixes it.
import { networkPolicy } from '../events/domain/options.ts';
import type { NetworkState, State } from '../events/domain/types.ts';
import { bridgeNfFix } from '../kernel/bridge-nf.ts';
import type { KernelSnapshot } from '../kernel/types.ts';

export interface IccProblem {
  /** The icc=false networks whose containers reach each other (Docker's names where known, else 12 hex of the id), sorted. */
  readonly networks: readonly string[];
  /** The settings that are off or missing, as sysctl names them. */
  readonly settings: readonly string[];
  readonly message: string;
}

const labels = (ns: readonly NetworkState[]): string[] => ns.map((n) => n.name ?? n.networkId.slice(0, 12)).sort();

const iccOff = (n: NetworkState): boolean => {
  try {
    return !networkPolicy(n.options).icc;
  } catch {
    return false; // options recorded before they were checked: the firewall plans none of them either
  }
};

/** The families whose bridged traffic the icc=false networks of `state` need filtered. Pure. */
export function bridgeFilteringNeeded(state: State): ('iptables' | 'ip6tables')[] {
  const closed = Object.values(state.networks).filter(iccOff);
  return [...(closed.some((n) => n.ipv4Data.length > 0) ? (['iptables'] as const) : []), ...(closed.some((n) => n.ipv6Data.length > 0) ? (['ip6tables'] as const) : [])];
}

/**
 * The icc=false networks of `state` (their bridges made) that bridge filtering, as the full read
 * `snapshot` shows it, leaves open: IPv4 without bridge-nf-call-iptables, IPv6 without
 * -ip6tables; null when none (or when the read did not look). Pure.
 */
export function iccProblem(state: State, snapshot: Pick<KernelSnapshot, 'links' | 'bridgeNf'>): IccProblem | null {
  const nf = snapshot.bridgeNf;
  if (nf === undefined) return null;
  const present = new Set(snapshot.links.map((l) => l.name));
  const closed = Object.values(state.networks).filter((n) => present.has(n.bridge) && iccOff(n));
  const v4 = nf.iptables === true ? [] : closed.filter((n) => n.ipv4Data.length > 0);
  const v6 = nf.ip6tables === true ? [] : closed.filter((n) => n.ipv6Data.length > 0);
  if (v4.length === 0 && v6.length === 0) return null;
  const families = [...(v4.length > 0 ? (['iptables'] as const) : []), ...(v6.length > 0 ? (['ip6tables'] as const) : [])];
  const settings = families.map((f) => `net.bridge.bridge-nf-call-${f}`);
  const networks = [...new Set([...labels(v4), ...labels(v6)])].sort();
  const missing = (v4.length > 0 && nf.iptables === null) || (v6.length > 0 && nf.ip6tables === null);
  const over = v4.length === 0 ? ' over IPv6' : v6.length > 0 && labels(v6).join() !== labels(v4).join() ? ' (IPv6 too where they have it)' : '';
  return {
    networks,
    settings,
    message:
      `containers of ${networks.join(', ')} (icc=false) reach each other${over}: ` +
      (missing
        ? `the kernel shows traffic inside a bridge to the firewall only with the br_netfilter module, which is not loaded. Load it: modprobe br_netfilter, then ${bridgeNfFix(families)}`
        : `the kernel shows traffic inside a bridge to the firewall only while ${settings.join(' and ')} = 1, and it is 0. ` +
          `Docker sets it when it makes an icc=false network of its own; something set it to 0 since (a host tuned for VMs, a reload of /etc/sysctl.d). Turn it on: ${bridgeNfFix(families)}`) +
      `, and keep it in /etc/sysctl.d/ (every bridge's traffic then passes the FORWARD chain)`,
  };
}
