// A small client for Docker's Engine API over its unix socket (plain node:http with socketPath):
// the few calls ledgernet makes to learn what Docker still has. Every call has a timeout, and a
// Docker that is not there is a DockerUnavailableError, never mistaken for an answer.
//
// The API version is negotiated, not pinned: Docker 29 refuses anything below 1.44 ("client
// version 1.41 is too old"), and Docker 28+ leaves `FirewallBackend` out of /info below 1.49.
// The first call asks the unversioned GET /version once per socket and speaks Docker's newest
// version, capped at the newest one whose changes were read against what ledgernet reads
// (NEWEST_READ; none of those fields moved between 1.41 and it), never below Docker's minimum.
// A call refused as too old or too new (Docker upgraded under a running ledgernet) negotiates
// again and is sent once more.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { DockerNetworkView } from '../api/deferred-network.ts';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** The newest API version read against the fields ledgernet sends and reads (moby's api/docs/CHANGELOG.md up to v1.56). */
const NEWEST_READ = '1.56';
/** Docker 20.10's API version: spoken when Docker answers /version without one. */
const FALLBACK = '1.41';

const parts = (v: string) => v.split('.').map(Number);
const versionOk = (v: unknown): v is string => typeof v === 'string' && /^\d+\.\d+$/.test(v);
/** -1, 0, 1 as `a` is older than, equal to or newer than `b` (`1.9` < `1.41`). */
function compareVersions(a: string, b: string): number {
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 2; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0) ? -1 : 1;
  return 0;
}

/** The API version to speak to a Docker whose GET /version said `server`. Pure. */
export function chooseApiVersion(server: { readonly ApiVersion?: unknown; readonly MinAPIVersion?: unknown }): string {
  const newest = versionOk(server.ApiVersion) ? server.ApiVersion : FALLBACK;
  const v = compareVersions(newest, NEWEST_READ) > 0 ? NEWEST_READ : newest;
  return versionOk(server.MinAPIVersion) && compareVersions(v, server.MinAPIVersion) < 0 ? server.MinAPIVersion : v;
}

/** The negotiated version per Docker socket (shared by every client of that socket in this process). */
const negotiated = new Map<string, Promise<string>>();
const VERSION_REFUSED = /client version \S+ is too (old|new)/i;

/** Docker could not be asked (no socket, refused, timeout, daemon restarting). */
export class DockerUnavailableError extends Error {
  override readonly name = 'DockerUnavailableError';
}

/** Docker answered with an error status. */
export class DockerApiError extends Error {
  override readonly name = 'DockerApiError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface DockerNetwork extends DockerNetworkView {
  readonly Name: string;
}

export interface DockerContainerSummary {
  readonly Id: string;
  readonly Names: readonly string[];
  readonly State: string;
  readonly NetworkSettings?: { readonly Networks?: Readonly<Record<string, { readonly NetworkID: string; readonly EndpointID?: string }>> | null };
}

export interface DockerContainer {
  readonly Id: string;
  readonly Name: string;
  readonly State: { readonly Running: boolean; readonly Status: string; readonly Error: string };
  readonly HostConfig: { readonly RestartPolicy?: { readonly Name?: string } };
  readonly NetworkSettings: { readonly Networks: Readonly<Record<string, { readonly NetworkID: string; readonly EndpointID?: string }>> | null };
}

/** One entry of Docker's event stream (`GET /events`), as far as ledgernet reads it. */
export interface DockerEvent {
  readonly Type?: string;
  readonly Action?: string;
  readonly Actor?: { readonly ID?: string; readonly Attributes?: Readonly<Record<string, string>> | null };
  /** Unix time in nanoseconds. */
  readonly timeNano?: number;
}

/** A running `GET /events` stream. */
export interface DockerEventStream {
  close(): void;
}

export class DockerApi {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  constructor(socketPath: string = DEFAULT_DOCKER_SOCKET, timeoutMs = 5_000) {
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
  }

  /** `docker info`: only what ledgernet reads of it (Docker 29+ reports its firewall backend). */
  info(): Promise<{ readonly FirewallBackend?: { readonly Driver?: string } | null }> {
    return this.json('GET', '/info');
  }

  /** `docker version`: the engine's version (`20.10.24+dfsg1`). */
  async version(): Promise<string> {
    return (await this.json<{ readonly Version?: string }>('GET', '/version')).Version ?? '';
  }

  /** `docker plugin inspect`: a managed plugin's name with its tag (`ledgernet/ledgernet:latest`), by id. */
  async pluginName(id: string): Promise<string> {
    const p = await this.json<{ readonly Name?: string }>('GET', `/plugins/${encodeURIComponent(id)}/json`);
    if (!p.Name) throw new DockerApiError(200, `Docker's answer for plugin ${id} names no plugin`);
    return p.Name;
  }

  /** GET /_ping: resolves when Docker answers (within 2 s). */
  async ping(): Promise<void> {
    await this.call('GET', '/_ping', Math.min(this.timeoutMs, 2_000));
  }

  /** Every network Docker has (any driver), each with its options and IPAM config. */
  listNetworks(): Promise<DockerNetwork[]> {
    return this.json<DockerNetwork[]>('GET', '/networks');
  }

  /** Containers; `all` includes stopped ones. */
  listContainers(all: boolean): Promise<DockerContainerSummary[]> {
    return this.json<DockerContainerSummary[]>('GET', `/containers/json?all=${all ? 1 : 0}`);
  }

  inspectContainer(id: string): Promise<DockerContainer> {
    return this.json<DockerContainer>('GET', `/containers/${encodeURIComponent(id)}/json`);
  }

  /** One network with its endpoints (`Containers`) and IPAM config. */
  inspectNetwork<T>(id: string): Promise<T> {
    return this.json<T>('GET', `/networks/${encodeURIComponent(id)}`);
  }

  /** `docker network disconnect [-f]`: removes the endpoint Docker holds for `container` on the network. */
  async disconnect(networkId: string, container: string, force: boolean, timeoutMs = 60_000): Promise<void> {
    await this.call('POST', `/networks/${encodeURIComponent(networkId)}/disconnect`, timeoutMs, { Container: container, Force: force });
  }

  /** Starts a container; one that already runs is fine (304). */
  async startContainer(id: string, timeoutMs = 60_000): Promise<void> {
    await this.call('POST', `/containers/${encodeURIComponent(id)}/start`, timeoutMs);
  }

  /**
   * `docker events`: calls `onEvent` for each event matching `filters` (Docker's filter JSON)
   * from now on (from `since`, unix seconds with a fraction, when given), and `onEnd` once when
   * the stream ends or cannot be opened (Docker stopped or restarted: open another).
   */
  events(filters: Readonly<Record<string, readonly string[]>>, since: string | null, onEvent: (e: DockerEvent) => void, onEnd: (why: Error) => void): DockerEventStream {
    let closed = false;
    let req: ClientRequest | null = null;
    const end = (why: Error) => {
      if (closed) return;
      closed = true;
      req?.destroy();
      onEnd(why);
    };
    const query = `filters=${encodeURIComponent(JSON.stringify(filters))}${since === null ? '' : `&since=${since}`}`;
    this.apiVersion(this.timeoutMs).then(
      (version) => {
        if (closed) return;
        req = this.open('GET', `/v${version}`, `/events?${query}`, undefined, (res) => {
          if ((res.statusCode ?? 0) >= 400) {
            void readAll(res).then((text) => end(refusal('GET /events', res.statusCode ?? 0, text)), end);
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              const event = line === '' ? null : parseEvent(line);
              if (!event) continue;
              try {
                onEvent(event);
              } catch (e) {
                // The handler's own failure, not a bad line: the stream ends with it, so it is seen.
                end(new Error(`handling Docker's ${event.Type ?? ''} ${event.Action ?? ''} event failed: ${e instanceof Error ? e.message : String(e)}`));
                return;
              }
            }
          });
          res.on('error', (e) => end(new DockerUnavailableError(`Docker at ${this.socketPath}: GET /events: ${e.message}`)));
          res.on('end', () => end(new DockerUnavailableError(`Docker at ${this.socketPath} ended its event stream`)));
        }, end);
      },
      (e: unknown) => end(e instanceof Error ? e : new Error(String(e))),
    );
    return {
      close: () => {
        closed = true;
        req?.destroy();
      },
    };
  }

  private async json<T>(method: string, path: string): Promise<T> {
    const text = await this.call(method, path, this.timeoutMs);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new DockerApiError(200, `Docker's answer to ${method} ${path} is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /** The version this socket's Docker is spoken to in: asked once (GET /version, unversioned), again after a refusal of the version. */
  private apiVersion(timeoutMs: number): Promise<string> {
    let v = negotiated.get(this.socketPath);
    if (!v) {
      v = this.send('GET', '', '/version', timeoutMs).then(
        (text) => {
          try {
            return chooseApiVersion(JSON.parse(text) as object);
          } catch {
            return FALLBACK;
          }
        },
        (e: unknown) => {
          // Docker answered, with an error (a proxy, an engine without /version): the fallback.
          if (e instanceof DockerApiError) return FALLBACK;
          throw e;
        },
      );
      negotiated.set(this.socketPath, v);
      // Nobody answered: ask again next time.
      const mine = v;
      v.catch(() => negotiated.get(this.socketPath) === mine && negotiated.delete(this.socketPath));
    }
    return v;
  }

  private async call(method: string, path: string, timeoutMs: number, body?: unknown): Promise<string> {
    const version = await this.apiVersion(timeoutMs);
    try {
      return await this.send(method, `/v${version}`, path, timeoutMs, body);
    } catch (e) {
      if (!(e instanceof DockerApiError && e.status === 400 && VERSION_REFUSED.test(e.message))) throw e;
      // Docker was upgraded (or downgraded) under this process: negotiate again, send once more.
      const current = negotiated.get(this.socketPath);
      if (current && (await current.catch(() => null)) === version) negotiated.delete(this.socketPath);
      return this.send(method, `/v${await this.apiVersion(timeoutMs)}`, path, timeoutMs, body);
    }
  }

  private send(method: string, prefix: string, path: string, timeoutMs: number, body?: unknown): Promise<string> {
    const what = `${method} ${path}`;
    return new Promise((resolve, reject) => {
      const req = this.open(method, prefix, path, body, (res) => {
        readAll(res).then((text) => {
          const status = res.statusCode ?? 0;
          if (status < 400) resolve(text);
          else reject(refusal(what, status, text));
        }, (e: Error) => reject(new DockerUnavailableError(`Docker at ${this.socketPath}: ${what}: ${e.message}`)));
      }, reject);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    });
  }

  /** One request to Docker's socket (the body as JSON); a request that cannot be made is reported as Docker being unavailable. */
  private open(method: string, prefix: string, path: string, body: unknown, onResponse: (res: IncomingMessage) => void, onError: (e: DockerUnavailableError) => void): ClientRequest {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers = { Host: 'docker', ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }) };
    const req = request({ socketPath: this.socketPath, method, path: `${prefix}${path}`, headers }, onResponse);
    req.on('error', (e) => onError(new DockerUnavailableError(`Docker at ${this.socketPath} cannot be asked (${method} ${path.split('?')[0]}): ${e.message}`)));
    req.end(payload);
    return req;
  }
}

/** A response's whole body as text. */
function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** Docker's refusal of `what`, with its message (the JSON `message`, or the text as it came). */
function refusal(what: string, status: number, text: string): DockerApiError {
  let message = text.trim();
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? message;
  } catch {
    // not JSON: keep the text
  }
  return new DockerApiError(status, `Docker refused ${what} (HTTP ${status}): ${message}`);
}

/** One line of the event stream as an event, or null when it is not JSON (nothing else comes on that stream). */
function parseEvent(line: string): DockerEvent | null {
  try {
    return JSON.parse(line) as DockerEvent;
  } catch {
    return null;
  }
}
