// `ledgernet install` / `uninstall` without a machine: the unit text, ExecStart quoting against an
// independent systemd-style parser, and the systemctl calls made when systemd runs (a fake
// systemctl) or does not (a temp --root). The real thing runs in test/e2e/install.test.ts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { SERVE_NODE_FLAGS } from '../../src/config.ts';
import { install, quoteExecArg, renderUnit, SOCKET_UNIT_FILE, stampUnit, UNIT_TEMPLATE, uninstall, type Systemctl } from '../../src/operator/install.ts';
import { environment, parseUnit, splitCommandLine, value, values } from '../helpers/systemd.ts';

let root: string;
let lines: string[];
let calls: string[][];
const say = (l: string) => void lines.push(l);

function fakeSystemctl(failOn?: string): Systemctl {
  return async (args) => {
    calls.push([...args]);
    return args.includes(failOn ?? '\0') ? { exitCode: 1, output: 'Failed to do it.' } : { exitCode: 0, output: '' };
  };
}

/** `<root>/<prefix>/bin/ledgernet`, as `npm install -g --prefix` leaves it. */
async function fakePrefix(prefix: string): Promise<void> {
  await mkdir(join(root, prefix, 'bin'), { recursive: true });
  await writeFile(join(root, prefix, 'bin', 'ledgernet'), '#!/usr/bin/env node\n', { mode: 0o755 });
}

const unitFile = () => join(root, 'etc/systemd/system/ledgernet.service');
const socketFile = () => join(root, 'etc/systemd/system/ledgernet.socket');
const BOTH = ['ledgernet.socket', 'ledgernet.service'];

/** Every file under the root with its text: what a refused install must leave as it was. */
async function tree(): Promise<Record<string, string>> {
  const files = (await readdir(root, { recursive: true, withFileTypes: true })).filter((d) => d.isFile());
  return Object.fromEntries(await Promise.all(files.map(async (d) => [join(d.parentPath, d.name), await readFile(join(d.parentPath, d.name), 'utf8')] as const)));
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ledgernet-install-unit-'));
  lines = [];
  calls = [];
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the unit file', () => {
  it('orders ledgernet before docker, is pulled in by it, restarts always, keeps state in /var/lib/ledgernet', async () => {
    const unit = parseUnit(renderUnit(await readFile(UNIT_TEMPLATE, 'utf8'), ['/usr/bin/node', '/opt/ln/dist/cli.js', 'serve']));
    assert.equal(value(unit, 'Unit', 'Before'), 'docker.service');
    assert.deepEqual(value(unit, 'Install', 'WantedBy').split(/\s+/).sort(), ['docker.service', 'multi-user.target']);
    assert.equal(value(unit, 'Service', 'Restart'), 'always');
    assert.equal(value(unit, 'Service', 'StateDirectory'), 'ledgernet');
    assert.equal(environment(unit)['LEDGERNET_STATE_DIR'], '/var/lib/ledgernet');
    assert.equal(environment(unit)['LEDGERNET_SOCKET'], '/run/docker/plugins/ledgernet.sock');
    assert.deepEqual(splitCommandLine(value(unit, 'Service', 'ExecStart')), ['/usr/bin/node', '/opt/ln/dist/cli.js', 'serve']);
    assert.equal(values(unit, 'Service', 'ExecStartPost').length, 1, 'waits for the socket before docker may start');
  });

  it('ships ledgernet.socket: systemd holds the plugin socket the service serves (socket activation)', async () => {
    const service = parseUnit(renderUnit(await readFile(UNIT_TEMPLATE, 'utf8'), ['/usr/bin/node', '/opt/ln/dist/cli.js', 'serve']));
    const socket = parseUnit(await readFile(SOCKET_UNIT_FILE, 'utf8'));
    assert.equal(value(socket, 'Socket', 'ListenStream'), environment(service)['LEDGERNET_SOCKET'], 'the socket is the one the service is told to serve');
    assert.equal(value(socket, 'Socket', 'SocketMode'), '0660');
    assert.equal(value(socket, 'Socket', 'Accept'), 'no', 'the listening socket is passed, not one connection');
    assert.equal(value(socket, 'Install', 'WantedBy'), 'sockets.target');
    assert.equal(value(service, 'Unit', 'Requires'), 'ledgernet.socket');
    assert.ok(value(service, 'Unit', 'After').split(/\s+/).includes('ledgernet.socket'));
  });

  it('quotes awkward arguments so systemd reads them back unchanged', () => {
    const argv = ['/opt/my apps/node', '/x/100%/cli.js', 'a"b', 'back\\slash', '$HOME', "it's", '', 'serve'];
    assert.deepEqual(splitCommandLine(argv.map(quoteExecArg).join(' ')), argv);
    assert.equal(quoteExecArg('/usr/bin/node'), '/usr/bin/node');
    assert.throws(() => quoteExecArg('a\nb'), /control character/);
  });

  it("the plugin's entrypoint and npm start run the supervisor with the unit's V8 flags", async () => {
    const plugin = /"entrypoint": \[([^\]]*)\]/.exec(await readFile(join(import.meta.dirname, '../../scripts/build-plugin.sh'), 'utf8'))?.[1] ?? '';
    assert.deepEqual((JSON.parse(`[${plugin}]`) as string[]).slice(0, SERVE_NODE_FLAGS.length + 2), ['/usr/bin/node', ...SERVE_NODE_FLAGS, '/app/dist/cli.js']);
    const start = (JSON.parse(await readFile(join(import.meta.dirname, '../../package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start'];
    assert.match(start ?? '', new RegExp(`node ${SERVE_NODE_FLAGS.join(' ')} dist/cli.js serve`));
  });

  it('refuses a template without the ExecStart placeholder', () => {
    assert.throws(() => renderUnit('[Service]\nExecStart=/bin/true\n', ['/x']), /ExecStart=@EXEC_START@/);
  });
});

describe('install and uninstall with systemd running (fake systemctl)', () => {
  it('writes both units, reloads, enables and starts; a second run only starts; uninstall stops, disables, removes', async () => {
    const systemctl = fakeSystemctl();
    assert.equal(await install({ root, noStart: false, systemdRunning: true, systemctl, say }), 0);
    assert.ok(existsSync(unitFile()) && existsSync(socketFile()));
    // A new socket unit: the service (which may hold a socket it bound itself) stops first.
    assert.deepEqual(calls, [['daemon-reload'], ['enable', ...BOTH], ['stop', 'ledgernet.service'], ['restart', 'ledgernet.socket'], ['start', 'ledgernet.service']]);

    calls = [];
    assert.equal(await install({ root, noStart: false, systemdRunning: true, systemctl, say }), 0);
    assert.deepEqual(calls, [['daemon-reload'], ['enable', ...BOTH], ['start', 'ledgernet.service']]);
    assert.ok(lines.some((l) => /already up to date/.test(l)));

    // Only the service changed (another prefix): it restarts, the socket (and calls waiting in it) stays.
    await fakePrefix('/opt/ledgernet');
    calls = [];
    assert.equal(await install({ root, noStart: false, prefix: '/opt/ledgernet', systemdRunning: true, systemctl, say }), 0);
    assert.deepEqual(calls, [['daemon-reload'], ['enable', ...BOTH], ['restart', 'ledgernet.service']]);

    calls = [];
    assert.equal(await uninstall({ root, systemdRunning: true, systemctl, say }), 0);
    assert.deepEqual(calls, [['disable', '--now', 'ledgernet.service', 'ledgernet.socket'], ['daemon-reload'], ['reset-failed', ...BOTH]]);
    assert.equal(existsSync(unitFile()) || existsSync(socketFile()), false);

    calls = [];
    assert.equal(await uninstall({ root, systemdRunning: true, systemctl, say }), 0);
    assert.deepEqual(calls, [], 'nothing to undo the second time');
    assert.match(lines.at(-1) ?? '', /not installed there; nothing to do/);
  });

  it('--prefix without ledgernet installed there: refused naming the missing file, nothing written', async () => {
    await assert.rejects(
      install({ root, noStart: true, prefix: '/opt/nothing-here', systemdRunning: true, systemctl: fakeSystemctl(), say }),
      (e: Error) => e.message.includes(`${join(root, 'opt/nothing-here/bin/ledgernet')} does not exist`) && /nothing was installed/.test(e.message),
    );
    // npm's bin link to a package installed without its dist/
    await mkdir(join(root, 'opt/nodist/bin'), { recursive: true });
    await symlink('../lib/node_modules/ledgernet/dist/cli.js', join(root, 'opt/nodist/bin/ledgernet'));
    await assert.rejects(install({ root, noStart: true, prefix: '/opt/nodist', systemdRunning: true, systemctl: fakeSystemctl(), say }), /is a link to a missing file \(\.\.\/lib\/node_modules\/ledgernet\/dist\/cli\.js/);
    assert.deepEqual(calls, []);
    assert.equal(existsSync(unitFile()) || existsSync(socketFile()), false);
  });

  it('--no-start enables without starting; --prefix runs <prefix>/bin/ledgernet', async () => {
    await fakePrefix('/opt/ledgernet');
    assert.equal(await install({ root, noStart: true, prefix: '/opt/ledgernet', systemdRunning: true, systemctl: fakeSystemctl(), say }), 0);
    assert.deepEqual(calls, [['daemon-reload'], ['enable', ...BOTH]]);
    const unit = parseUnit(await readFile(unitFile(), 'utf8'));
    assert.deepEqual(splitCommandLine(value(unit, 'Service', 'ExecStart')), ['/usr/bin/env', 'node', ...SERVE_NODE_FLAGS, '/opt/ledgernet/bin/ledgernet', 'serve']);
    await assert.rejects(install({ root, noStart: true, prefix: 'relative', systemdRunning: true, systemctl: fakeSystemctl(), say }), /absolute/);
  });

  it('a failing systemctl fails the command with its message', async () => {
    await assert.rejects(
      install({ root, noStart: false, systemdRunning: true, systemctl: fakeSystemctl('enable'), say }),
      /systemctl enable ledgernet.socket ledgernet.service failed \(exit 1\): Failed to do it\./,
    );
  });
});

describe('install without systemd (--root)', () => {
  it('enables offline with systemctl --root and says that nothing was started', async () => {
    assert.equal(await install({ root, noStart: false, systemdRunning: false, systemctl: fakeSystemctl(), say }), 0);
    assert.deepEqual(calls, [['--version'], ['--root', root, 'enable', ...BOTH]]);
    assert.ok(lines.some((l) => l.includes('is not the running system: nothing was loaded or started')), lines.join('\n'));
    calls = [];
    assert.equal(await uninstall({ root, systemdRunning: false, systemctl: fakeSystemctl(), say }), 0);
    assert.deepEqual(calls, [['--version'], ['--root', root, 'disable', ...BOTH]]);
    assert.equal(existsSync(unitFile()) || existsSync(socketFile()), false);
  });
});

describe("an operator's changes: refused unless --force; settings in drop-ins, which install never touches", () => {
  const edit = async (file: string, from: RegExp, to: string) => writeFile(file, (await readFile(file, 'utf8')).replace(from, to));

  it('an Environment= line added to the installed unit: install refuses naming it, writes nothing, keeps the edit', async () => {
    const systemctl = fakeSystemctl();
    assert.equal(await install({ root, noStart: false, systemdRunning: true, systemctl, say }), 0);
    await edit(unitFile(), /^Environment=LEDGERNET_SOCKET=.*$/m, '$&\nEnvironment=LEDGERNET_NATS_URL=nats://audit:4222');
    const before = await tree();
    calls = [];
    await assert.rejects(
      install({ root, noStart: false, systemdRunning: true, systemctl, say }),
      (e: Error) =>
        e.message.startsWith(`${unitFile()} was changed since \`ledgernet install\` wrote it: nothing was installed`) &&
        e.message.includes(`${unitFile()}.d/override.conf`) && e.message.includes('--force') && !e.message.includes(socketFile()),
    );
    assert.deepEqual(await tree(), before, 'no file changed, the edit kept');
    assert.deepEqual(calls, [], 'nothing reloaded or restarted');

    // The socket's group changed too: both named, still nothing written.
    await edit(socketFile(), /^SocketGroup=root$/m, 'SocketGroup=docker');
    const both = await tree();
    await assert.rejects(install({ root, noStart: false, systemdRunning: true, systemctl, say }), new RegExp(`^DriverError: ${socketFile()} and ${unitFile()} were changed`));
    assert.deepEqual(await tree(), both);
    assert.deepEqual(calls, []);
  });

  it('--force overwrites the changed units and says so', async () => {
    assert.equal(await install({ root, noStart: true, systemdRunning: false, systemctl: fakeSystemctl(), say }), 0);
    const written = await readFile(unitFile(), 'utf8');
    await edit(unitFile(), /^Environment=LEDGERNET_SOCKET=.*$/m, '$&\nEnvironment=LEDGERNET_METRICS=127.0.0.1:9654');
    lines = [];
    assert.equal(await install({ root, noStart: true, force: true, systemdRunning: false, systemctl: fakeSystemctl(), say }), 0);
    assert.equal(await readFile(unitFile(), 'utf8'), written);
    assert.ok(lines.includes(`overwrote (--force; the changes made in it are gone) ${unitFile()}`), lines.join('\n'));
    assert.ok(lines.includes(`${socketFile()} is already up to date`), lines.join('\n'));
  });

  it('a unit install wrote from an older template (unchanged since) is updated, as is an unstamped copy of the template', async () => {
    const argv = [process.execPath, ...SERVE_NODE_FLAGS, join(import.meta.dirname, '../../dist/cli.js'), 'serve'];
    const older = renderUnit(await readFile(UNIT_TEMPLATE, 'utf8'), argv).replace(/^LimitNOFILE=.*\n/m, '');
    await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
    await writeFile(unitFile(), stampUnit('ledgernet.service', older));
    // An install from before units were stamped wrote the template as it is.
    await writeFile(socketFile(), await readFile(SOCKET_UNIT_FILE, 'utf8'));
    assert.equal(await install({ root, noStart: true, systemdRunning: false, systemctl: fakeSystemctl(), say }), 0);
    assert.ok(lines.includes(`updated ${unitFile()}`) && lines.includes(`updated ${socketFile()}`), lines.join('\n'));
    assert.match(await readFile(unitFile(), 'utf8'), /^LimitNOFILE=65536$/m);
    assert.equal(await readFile(socketFile(), 'utf8'), stampUnit('ledgernet.socket', await readFile(SOCKET_UNIT_FILE, 'utf8')));
  });

  it('drop-ins (ledgernet.service.d/, ledgernet.socket.d/) are left alone by install, install --force and uninstall', async () => {
    const dropIns = { [`${unitFile()}.d/nats.conf`]: '[Service]\nEnvironment=LEDGERNET_NATS_URL=nats://audit:4222\n', [`${socketFile()}.d/group.conf`]: '[Socket]\nSocketGroup=docker\n' };
    for (const [file, text] of Object.entries(dropIns)) {
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, text);
    }
    const systemctl = fakeSystemctl();
    assert.equal(await install({ root, noStart: false, systemdRunning: true, systemctl, say }), 0);
    assert.equal(await install({ root, noStart: false, systemdRunning: true, systemctl, say }), 0, 'a drop-in is no edit of the unit');
    assert.equal(await install({ root, noStart: false, force: true, systemdRunning: true, systemctl, say }), 0);
    assert.equal(await uninstall({ root, systemdRunning: true, systemctl, say }), 0);
    assert.deepEqual(await tree(), dropIns);
    assert.ok(lines.includes(`kept ${unitFile()}.d (drop-ins: your settings); remove it yourself if you no longer need it`), lines.join('\n'));
  });
});
