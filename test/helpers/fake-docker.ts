// An HTTP handler that answers around a test's own routes as Docker's Engine API does about
// versions (moby's daemon/server/httputils and router/system): GET /version, unversioned or
// not, says ApiVersion and MinAPIVersion; a versioned path outside [min, api] is refused with
// Docker's 400 and message; the version is taken off the path handed to the test's routes.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface DockerVersions {
  /** The newest version this fake Docker speaks (Docker 20.10: 1.41, 28.5: 1.51, 29.0: 1.52). */
  api: string;
  /** The oldest (20.10 and 28: 1.12 / 1.24; 29: 1.44). */
  min: string;
}

const older = (a: string, b: string) => {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  return (x[0] ?? 0) !== (y[0] ?? 0) ? (x[0] ?? 0) < (y[0] ?? 0) : (x[1] ?? 0) < (y[1] ?? 0);
};

/** `route(req, res, path, version)` gets every request but /version, with `path` unversioned; `version` is the one asked (the newest when none). */
export function fakeDocker(
  versions: DockerVersions,
  route: (req: IncomingMessage, res: ServerResponse, path: string, version: string) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(req.url ?? '/');
    const version = m?.[1] ?? versions.api;
    const path = m?.[2] ?? req.url ?? '/';
    const refuse = (message: string) => void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message }));
    if (older(version, versions.min)) return refuse(`client version ${version} is too old. Minimum supported API version is ${versions.min}, please upgrade your client to a newer version`);
    if (older(versions.api, version)) return refuse(`client version ${version} is too new. Maximum supported API version is ${versions.api}`);
    if (path === '/version') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: 'fake', ApiVersion: versions.api, MinAPIVersion: versions.min }));
    route(req, res, path, version);
  };
}
