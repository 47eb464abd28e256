import { request } from 'node:http';
import { controlSocket } from '../config.ts';
import { socketAnswers } from './socket.ts';

/** Calls the running daemon's control socket; null when no daemon answers. */
export async function callDaemon(stateDir: string, method: 'GET' | 'POST', path: string): Promise<unknown> {
  const socketPath = controlSocket(stateDir);
  if (!(await socketAnswers(socketPath))) return null;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-length': 0 } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          const body: unknown = JSON.parse(text);
          const err = (body as { error?: unknown } | null)?.error;
          if ((res.statusCode ?? 500) >= 400) reject(new Error(typeof err === 'string' ? err : `daemon answered ${res.statusCode}: ${text}`));
          else resolve(body);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}
