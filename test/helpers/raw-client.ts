// A client that writes raw bytes to a unix socket (a request cut short, a head without its body)
// and reads whatever comes back until the server closes.
import { connect, type Socket } from 'node:net';

/** Connects and writes `text`; resolves once connected. The socket is added to `opened` (destroy them after the test). */
export function openRaw(path: string, text: string, opened: Socket[]): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    opened.push(s);
    s.on('error', reject);
    s.write(text);
  });
}

/** Everything the server sends until it closes (our side ends once the server's has). */
export function readToClose(s: Socket): Promise<string> {
  return new Promise<string>((resolve) => {
    let out = '';
    s.on('data', (b: Buffer) => (out += b.toString()));
    s.on('end', () => s.end());
    s.on('close', () => resolve(out));
  });
}
