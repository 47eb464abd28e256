// The name Docker knows this driver by, and whether Docker's API answers the daemon.
//
// A driver installed on a socket is known by the socket's base name (`ledgernet`). A managed
// plugin is known by its reference with the tag (`ledgernet/ledgernet:latest`, whatever name
// `docker plugin create` or `install --alias` gave it), which the plugin is never told. It learns
// it from the mount Docker gives every plugin: the host's /run/docker/plugins/<plugin id> on the
// plugin socket's directory (the root of that mount in /proc/self/mountinfo), and then Docker's
// API: GET /plugins/<id>/json. At dockerd's start Docker enables plugins before its API answers,
// so the name is asked for in the background until Docker answers; until then the socket's base
// name (or LEDGERNET_DRIVER_NAME, which always wins) stands in.
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { driverNameOf } from '../config.ts';
import { DockerApiError, type DockerApi } from './docker-api.ts';

const PLUGIN_ID = /^[0-9a-f]{64}$/;

/** `\040` and the other octal escapes of /proc/self/mountinfo's path fields, undone. */
const unescapeMountPath = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/**
 * The managed plugin's id when this process runs inside one: the mount on `socketDir` whose
 * root (field 4 of mountinfo, the path inside its filesystem) ends in `plugins/<64 hex>`. Pure.
 */
export function managedPluginId(mountinfo: string, socketDir: string): string | null {
  let found: string | null = null;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5 || unescapeMountPath(f[4] ?? '') !== socketDir) continue;
    const root = unescapeMountPath(f[3] ?? '');
    const id = basename(root);
    // The last mount on a mount point is the one seen.
    found = PLUGIN_ID.test(id) && basename(dirname(root)) === 'plugins' ? id : null;
  }
  return found;
}

export interface DockerLinkStatus {
  readonly socket: string;
  readonly driverName: string;
  /** Where the name came from: `LEDGERNET_DRIVER_NAME`, `the plugin socket`, or `managed plugin <id>`. */
  readonly driverNameFrom: string;
  /** Docker answered GET /_ping just now. */
  readonly answering: boolean;
  readonly error?: string;
}

export interface DockerLinkDeps {
  readonly api: Pick<DockerApi, 'socketPath' | 'pluginName' | 'ping'>;
  /** The plugin socket Docker calls (its base name is the fallback name). */
  readonly socket: string;
  /** LEDGERNET_DRIVER_NAME: wins over everything. */
  readonly driverName?: string | undefined;
  readonly log: Pick<Logger, 'info' | 'warn'>;
  /** /proc/self/mountinfo's text (tests give another). */
  readonly mountinfo?: () => Promise<string>;
  readonly retryMs?: number;
}

/** The driver's name as Docker knows it (asked of Docker when ledgernet runs as a managed plugin). */
export class DockerLink {
  private readonly deps: DockerLinkDeps;
  private name: string;
  private from: string;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(deps: DockerLinkDeps) {
    this.deps = deps;
    this.name = driverNameOf({ socket: deps.socket, ...(deps.driverName ? { driverName: deps.driverName } : {}) });
    this.from = deps.driverName ? 'LEDGERNET_DRIVER_NAME' : 'the plugin socket';
  }

  /** The name now (the fallback until a managed plugin's name is known); bound, so it can be handed on. */
  readonly driverName = (): string => this.name;

  /**
   * Looks for the managed plugin's id and, when there is one, asks Docker for its name in the
   * background until it answers (never holds up serving: Docker may be waiting on this plugin).
   */
  async start(): Promise<void> {
    if (this.deps.driverName) return;
    const text = await (this.deps.mountinfo ?? (() => readFile('/proc/self/mountinfo', 'utf8')))().catch(() => '');
    const id = managedPluginId(text, dirname(this.deps.socket));
    if (!id) return;
    this.from = `managed plugin ${id.slice(0, 12)}, whose name Docker has not given yet`;
    let told = false;
    const ask = async () => {
      try {
        const name = await this.deps.api.pluginName(id);
        if (this.stopped) return;
        this.name = name;
        this.from = `managed plugin ${id.slice(0, 12)}`;
        this.deps.log.info({ driverName: name, plugin: id }, `Docker knows this driver as ${name} (the managed plugin's name)`);
        return;
      } catch (e) {
        if (this.stopped) return;
        const why = e instanceof Error ? e.message : String(e);
        // A 404 will not change: Docker does not list this plugin (another engine's mount?).
        if (e instanceof DockerApiError && e.status === 404) {
          this.from = `managed plugin ${id.slice(0, 12)}, which Docker does not know (${why})`;
          this.deps.log.warn({ plugin: id, reason: why }, `Docker does not know the managed plugin ${id.slice(0, 12)}: its networks are matched by the plugin socket's name ${this.name}`);
          return;
        }
        if (!told) this.deps.log.info({ plugin: id, reason: why }, "asking Docker for the managed plugin's name: Docker does not answer yet, asking again");
        told = true;
      }
      this.timer = setTimeout(() => void ask(), this.deps.retryMs ?? 2_000);
    };
    void ask();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** For `ledgernet status`: the name, where it came from, and whether Docker answers now. */
  async status(): Promise<DockerLinkStatus> {
    const base = { socket: this.deps.api.socketPath, driverName: this.name, driverNameFrom: this.from };
    try {
      await this.deps.api.ping();
      return { ...base, answering: true };
    } catch (e) {
      return { ...base, answering: false, error: e instanceof Error ? e.message : String(e) };
    }
  }
}
