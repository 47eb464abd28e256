// Kernel change notices: `ip -o monitor link address` prints one line per change to a link or
// an address. The reconciler uses them only as "something changed" triggers (it re-observes
// everything), so drift such as a deleted veth or bridge is seen at once, not at the next tick.
import { spawn } from 'node:child_process';

export interface Watch {
  stop(): void;
}

/**
 * Calls `onChange` (debounced by `debounceMs`) whenever a link or address changes. Restarts the
 * monitor if it exits, at most once a second. `onError` hears about a monitor that keeps dying.
 */
export function watchLinks(
  onChange: () => void,
  opts: { debounceMs?: number; onError?: (e: unknown) => void; relevant?: (line: string) => boolean } = {},
): Watch {
  const debounceMs = opts.debounceMs ?? 200;
  let timer: NodeJS.Timeout | null = null;
  let kill: (() => void) | null = null;
  let stopped = false;
  const fire = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (!stopped) onChange();
    }, debounceMs);
  };
  const start = () => {
    if (stopped) return;
    const started = Date.now();
    const p = spawn('ip', ['-o', 'monitor', 'link', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    kill = () => p.kill();
    let partial = '';
    p.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      if (lines.some((l) => opts.relevant?.(l) ?? true)) fire();
    });
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      if (stopped) return;
      opts.onError?.(new Error(`ip monitor ${why}; restarting`));
      setTimeout(start, Math.max(0, 1000 - (Date.now() - started)));
    };
    p.on('error', (e) => end(`did not run (${e.message})`));
    p.on('close', (code, signal) => end(`exited (${code ?? signal})`));
  };
  // A daemon that exits without stop() (an uncaught error) takes its monitor with it.
  const onExit = () => kill?.();
  process.on('exit', onExit);
  start();
  return {
    stop() {
      stopped = true;
      process.off('exit', onExit);
      if (timer) clearTimeout(timer);
      kill?.();
    },
  };
}

export type DriftKind = 'deleted' | 'down' | 'nomaster' | 'addr-deleted';

/** What the caller, who knows which links are its own, says of a link name. */
export interface OwnedLinks {
  /** Ours and worth watching (not a container-side peer: Docker moves and renames those). */
  watched(name: string): boolean;
  /** Ours and meant to sit on a bridge (a host-side veth). */
  bridged(name: string): boolean;
}

/**
 * What a line of `ip -o monitor link address` says about a link `ours` watches, when it may be
 * drift: the link deleted, set down or (a link meant for a bridge) taken off its bridge, or an
 * address deleted. Null for carrier changes, link-local addresses, added addresses and links
 * `ours` does not watch.
 */
export function driftNotice(line: string, ours: OwnedLinks): { name: string; kind: DriftKind } | null {
  const m = /^(Deleted )?\d+: ([^:@\s]+)/.exec(line);
  if (!m) return null;
  const [, deleted, name = ''] = m;
  if (!ours.watched(name)) return null;
  if (/ inet6? /.test(line)) return deleted !== undefined && !line.includes(' scope link') ? { name, kind: 'addr-deleted' } : null;
  if (deleted) return { name, kind: 'deleted' };
  const flags = (/<([^>]*)>/.exec(line)?.[1] ?? '').split(',');
  if (!flags.includes('UP')) return { name, kind: 'down' };
  return ours.bridged(name) && !line.includes(' master ') ? { name, kind: 'nomaster' } : null;
}
