// A small client for Docker's Engine API over its unix socket (plain node:http with socketPath):
// the few calls ledgernet makes to learn what Docker still has. Every call has a timeout, and a
// Docker that is not there is a DockerUnavailableError, never mistaken for an answer.
import { request } from 'node:http';
import type { DockerNetworkView } from '../api/deferred-network.ts';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** API 1.41 is Docker 20.10's; newer engines still serve it. */
const API_PREFIX = '/v1.41';

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
  readonly NetworkSettings: { readonly Networks: Readonly<Record<string, { readonly NetworkID: string }>> | null };
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

  private async json<T>(method: string, path: string): Promise<T> {
    const text = await this.call(method, path, this.timeoutMs);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new DockerApiError(200, `Docker's answer to ${method} ${path} is not JSON: ${text.slice(0, 200)}`);
    }
  }

  private call(method: string, path: string, timeoutMs: number, body?: unknown): Promise<string> {
    const what = `${method} ${path}`;
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers = { Host: 'docker', ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }) };
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method, path: `${API_PREFIX}${path}`, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new DockerUnavailableError(`Docker at ${this.socketPath}: ${what}: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 400) return resolve(text);
          let message = text.trim();
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            // not JSON: keep the text
          }
          reject(new DockerApiError(status, `Docker refused ${what} (HTTP ${status}): ${message}`));
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(new DockerUnavailableError(`Docker at ${this.socketPath} cannot be asked (${what}): ${e.message}`)));
      req.end(payload);
    });
  }
}
