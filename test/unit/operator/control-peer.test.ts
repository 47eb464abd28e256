// The control socket's door (src/operator/socket.ts controlPeerCheck): root, the daemon's user, or
// a member of the socket file's group, as its primary group or a supplementary one (how a user is
// normally in a group: only the primary gid counted, so `usermod -aG` did nothing). The peer's
// groups come from the kernel (SO_PEERGROUPS), read here from a real connection made as nobody.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { controlGroupId, controlPeerCheck, peerReader } from '../../../src/operator/socket.ts';

const NOBODY = 65534;
const socket = {} as Socket; // the fake peer below does not look at it

let dir: string;
let path: string;
/** The group of the file the check reads: this process's, as a file it makes gets. */
const fileGid = process.getegid?.() ?? 0;
const otherGid = fileGid === 12345 ? 12346 : 12345;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-control-peer-'));
  path = join(dir, 'control.sock');
  await writeFile(path, '');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const check = (peer: { gid: number; groups: readonly number[] | null }) =>
  controlPeerCheck(path, () => Promise.resolve({ pid: 4711, uid: NOBODY, ...peer }))(socket);

describe("control socket: the socket file's group", () => {
  it('lets in a peer that has the group as a supplementary group', async () => {
    assert.equal(await check({ gid: otherGid, groups: [otherGid + 1, fileGid] }), null);
  });

  it('lets in a peer whose primary group it is', async () => {
    assert.equal(await check({ gid: fileGid, groups: [] }), null);
  });

  it('refuses a peer in neither way, naming the group', async () => {
    assert.equal(await check({ gid: otherGid, groups: [otherGid + 1] }), `uid ${NOBODY} (gid ${otherGid}) may not use ${path}: only root or group ${fileGid}`);
  });

  it('refuses a peer whose groups could not be read, saying so', async () => {
    assert.match((await check({ gid: otherGid, groups: null })) ?? '', /only root or group \d+; its supplementary groups could not be read \(SO_PEERGROUPS/);
  });
});

describe('SO_PEERGROUPS from a real connection', { skip: process.getuid?.() === 0 ? false : 'needs root (setpriv)' }, () => {
  it("reads uid, primary gid and supplementary groups of a peer started as nobody with groups 4242,4343", async () => {
    await chmod(dir, 0o755);
    const sock = join(dir, 'peer.sock');
    const read = peerReader();
    let got!: Promise<Awaited<ReturnType<typeof read>>>;
    const server = createServer((s) => {
      got = read(s).finally(() => s.destroy());
    });
    server.listen(sock);
    await once(server, 'listening');
    await chmod(sock, 0o666);
    const connected = once(server, 'connection');
    const client = execa('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--groups', '4242,4343', process.execPath, '-e', `require('net').connect(${JSON.stringify(sock)}).on('close', () => process.exit(0))`], { reject: false, cwd: '/', timeout: 10_000 });
    await connected;
    const peer = await got;
    await client;
    server.close();
    assert.deepEqual({ uid: peer.uid, gid: peer.gid, groups: peer.groups }, { uid: NOBODY, gid: NOBODY, groups: [4242, 4343] });
  });
});

describe('--control-group', () => {
  it('takes a number as it is, looks a name up, refuses a name no group has', async () => {
    assert.equal(await controlGroupId('4242'), 4242);
    assert.equal(await controlGroupId(undefined), null);
    assert.equal(await controlGroupId('root'), 0);
    await assert.rejects(controlGroupId('ledgernet-no-such-group'), /--control-group ledgernet-no-such-group: no such group/);
  });
});
