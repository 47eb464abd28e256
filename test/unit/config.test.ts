import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { credsProblem, DEFAULTS, describeNats, parseDuration, parseHostTimeout, parseNatsServers, parseRetention, parseSeconds, parseSize, resolveNats, SECONDS, type NatsConfig } from '../../src/config.ts';

describe('NATS config', () => {
  const base: NatsConfig = { url: 'nats://127.0.0.1:4222', token: undefined, credsFile: undefined, tlsCa: undefined, tlsCert: undefined, tlsKey: undefined };

  it('describes the servers without secrets, masked from the parsed URLs', () => {
    const d = describeNats({ ...base, url: 'nats://alice:s3cret@a:4222,tls://alice:s3cret@b:4222' });
    assert.equal(d, 'nats://***@a:4222,tls://***@b:4222 (auth user alice)');
    assert.equal(describeNats({ ...base, url: 'alice:pa@ss@h:4222, h2:4222' }), '***@h:4222,h2:4222 (auth user alice)');
    assert.equal(describeNats({ ...base, url: 'nats://tok-123@h' }), 'nats://***@h (auth token)');
    assert.equal(describeNats({ ...base, token: 'tok-123' }), 'nats://127.0.0.1:4222 (auth token)');
    assert.equal(describeNats({ ...base, credsFile: '/etc/x.creds', tlsCa: '/ca.pem' }), 'nats://127.0.0.1:4222 (auth creds, tls)');
  });

  it('parses a list of URLs: scheme-less, `@` in the password (the last `@` ends it), percent escapes, token@', () => {
    assert.deepEqual(parseNatsServers('nats://alice:s3cret@a:4222, tls://b:4222 ,c'), [
      { server: 'nats://a:4222', masked: 'nats://***@a:4222', auth: { user: 'alice', pass: 's3cret' } },
      { server: 'tls://b:4222', masked: 'tls://b:4222', auth: null },
      { server: 'c', masked: 'c', auth: null },
    ]);
    assert.deepEqual(parseNatsServers('user:pa@ss@host:4222'), [{ server: 'host:4222', masked: '***@host:4222', auth: { user: 'user', pass: 'pa@ss' } }]);
    assert.deepEqual(parseNatsServers('nats://u:a:b%2Cc%40@h')[0]?.auth, { user: 'u', pass: 'a:b,c@' });
    assert.deepEqual(parseNatsServers('nats://u:100%@h')[0]?.auth, { user: 'u', pass: '100%' }, 'a bare % is kept');
    assert.deepEqual(parseNatsServers('nats://u:@h')[0]?.auth, { user: 'u', pass: '' });
    assert.deepEqual(parseNatsServers('nats://t0ken@h')[0]?.auth, { token: 't0ken' });
    for (const bad of ['nats://alice:s3cret@', 'alice:s3cret@', '', 'a:1,,b:2', 'nats://u:s3cret@h/x']) {
      assert.throws(() => parseNatsServers(bad), (e: Error) => /must be \[nats:\/\/\]\[user:password@\]host\[:port\]/.test(e.message) && !e.message.includes('s3cret'), bad);
    }
  });

  it('refuses a list split inside userinfo (a password with an unescaped comma), naming the entry and quoting no part of it', () => {
    const cases: [string, RegExp][] = [
      ['nats://alice:s3cret,XYZ@127.0.0.1:14222', /^NATS URL 1 of 2 in --nats is not a server URL: .*escape it as %2C/],
      ['nats://alice:1234,XYZ@127.0.0.1:14222', /^NATS URL 2 of 2 in --nats has credentials and URL 1 before it has none .*escape it as %2C/],
      ['nats://al,ice:s3cret@127.0.0.1:14222', /^NATS URL 2 of 2 in --nats has credentials and URL 1 before it has none/],
      ['nats://u:p@a:4222,bob:s3c,ret@b', /^NATS URL 2 of 3 in --nats is not a server URL/],
      ['nats://alice:s3cret', /^--nats is not a server URL/],
      ['nats://h:99999', /^--nats is not a server URL/],
    ];
    for (const [url, re] of cases) {
      for (const call of [() => parseNatsServers(url), () => describeNats({ ...base, url })]) {
        assert.throws(call, (e: Error) => re.test(e.message) && !/s3c|ret|XYZ|1234|alice|al,ice/.test(e.message), url);
      }
    }
    assert.deepEqual(parseNatsServers('nats://alice:s3cret%2CXYZ@127.0.0.1:14222')[0]?.auth, { user: 'alice', pass: 's3cret,XYZ' });
    assert.deepEqual(parseNatsServers('nats://u:p@[fd00::1]:4222,h2')[0]?.server, 'nats://[fd00::1]:4222');
  });

  it('user and password of any characters (a comma as %2C) come back exactly and are never shown (property)', () => {
    const chars = fc.constantFrom('a', 'Z', '9', '@', ':', '/', ' ', '#', '?', 'é', '%40', '%2C');
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', '7', '.', '-', 'é'), minLength: 1 }), fc.string({ unit: chars }), fc.boolean(), (user, pw, scheme) => {
        const pass = `Pw${pw}`;
        const enc = pass.replaceAll('%40', '%2540').replaceAll('%2C', '%252C').replaceAll(',', '%2C');
        const url = `${scheme ? 'nats://' : ''}${user}:${enc}@127.0.0.1:4222,h2:4223`;
        const r = resolveNats({ ...base, url });
        assert.deepEqual(r.auth, { kind: 'user', user, pass });
        assert.deepEqual(r.servers.map((s) => s.server), [`${scheme ? 'nats://' : ''}127.0.0.1:4222`, 'h2:4223']);
        assert.ok(!describeNats({ ...base, url }).includes(pass));
      }),
      { numRuns: 2000 },
    );
  });

  it('takes credentials from the settings, and refuses two ways to authenticate or URLs that disagree', () => {
    assert.deepEqual(resolveNats({ ...base, user: 'alice', password: 'pw' }).auth, { kind: 'user', user: 'alice', pass: 'pw' });
    assert.deepEqual(resolveNats({ ...base, user: '', password: '', token: '' }).auth, { kind: 'none' }, 'empty (the plugin\'s unset) is unset');
    assert.deepEqual(resolveNats({ ...base, url: 'nats://alice:pw@h', user: 'alice', password: 'pw' }).auth, { kind: 'user', user: 'alice', pass: 'pw' });
    const refuses = (cfg: Partial<NatsConfig>, re: RegExp) =>
      assert.throws(() => resolveNats({ ...base, ...cfg }), (e: Error) => re.test(e.message) && !/s3cret|tok-1/.test(e.message));
    refuses({ url: 'nats://alice:s3cret@a,nats://bob:s3cret@b' }, /different credentials/);
    refuses({ url: 'nats://alice:s3cret@a', token: 'tok-1' }, /given a user and password and a token; give one way/);
    refuses({ url: 'nats://alice:s3cret@a', password: 'other', user: 'alice' }, /two different users or passwords/);
    refuses({ token: 'tok-1', credsFile: '/x.creds' }, /a token and a creds file/);
    refuses({ password: 's3cret' }, /LEDGERNET_NATS_PASSWORD needs LEDGERNET_NATS_USER/);
  });

  it('parses durations and retention', () => {
    assert.equal(parseDuration('d', '1s'), 1000);
    assert.equal(parseDuration('d', '500ms'), 500);
    assert.equal(parseDuration('d', '2m'), 120_000);
    assert.equal(parseDuration('d', '30d'), 30 * 86_400_000);
    assert.equal(parseDuration('d', '3'), 3000);
    assert.throws(() => parseDuration('nats-dup-window', 'soon'), /--nats-dup-window must be a duration/);
    assert.equal(parseRetention('interest'), 'interest');
    assert.throws(() => parseRetention('forever'), /limits, interest or workqueue/);
  });

  it('--archive-log-size: bytes, or K/M/G (binary), 0 is off; anything else refused by name', () => {
    assert.equal(parseSize('archive-log-size', '4096'), 4096);
    assert.equal(parseSize('archive-log-size', '64K'), 65_536);
    assert.equal(parseSize('archive-log-size', '256M'), 256 * 1024 * 1024);
    assert.equal(parseSize('archive-log-size', '1GiB'), 1024 ** 3);
    assert.equal(parseSize('archive-log-size', '2mb'), 2 * 1024 * 1024);
    assert.equal(parseSize('archive-log-size', '0'), 0);
    for (const bad of ['', '-1', '1.5G', '10T', 'big']) assert.throws(() => parseSize('archive-log-size', bad), /--archive-log-size must be a size like 4096, 64K, 256M or 1G, got/);
  });

  it('--cluster-host-timeout: a duration of at least 1s', () => {
    assert.equal(parseHostTimeout('30s'), 30_000);
    assert.equal(parseHostTimeout('1500ms'), 1500);
    assert.throws(() => parseHostTimeout('500ms'), /--cluster-host-timeout must be at least 1s .*got 500ms/);
    assert.throws(() => parseHostTimeout('soon'), /--cluster-host-timeout must be a duration/);
  });
});

describe("serve's settings in seconds (flags and their environment variables)", () => {
  const { reconcileInterval, abandonedGrace, applyTimeout, workerWatchdog } = SECONDS;

  it('takes plain decimals, the default when neither is given (an empty variable is not set), the flag over the variable', () => {
    assert.equal(parseSeconds(reconcileInterval, undefined, {}), DEFAULTS.reconcileIntervalS);
    assert.equal(parseSeconds(reconcileInterval, undefined, { LEDGERNET_RECONCILE_INTERVAL: '' }), DEFAULTS.reconcileIntervalS);
    assert.equal(parseSeconds(reconcileInterval, '5', { LEDGERNET_RECONCILE_INTERVAL: '7' }), 5);
    assert.equal(parseSeconds(reconcileInterval, undefined, { LEDGERNET_RECONCILE_INTERVAL: '7' }), 7);
    assert.equal(parseSeconds(reconcileInterval, '0', {}), 0, 'documented: no background repair');
    assert.equal(parseSeconds(workerWatchdog, '0', {}), 0, 'documented: never');
    assert.equal(parseSeconds(workerWatchdog, undefined, { LEDGERNET_WORKER_WATCHDOG: '2.5' }), 2.5);
    assert.equal(parseSeconds(applyTimeout, '1', {}), 1);
    assert.equal(parseSeconds(applyTimeout, '120', {}), 120);
    assert.equal(parseSeconds(applyTimeout, undefined, {}), DEFAULTS.applyTimeoutMs / 1000);
    assert.equal(parseSeconds(abandonedGrace, '3', {}), 3);
  });

  it('refuses by name an empty flag, 0x10, 1e-3, a sign, and a value under the least (0 where it means nothing)', () => {
    const cases: [typeof reconcileInterval | typeof abandonedGrace | typeof applyTimeout | typeof workerWatchdog, string, RegExp][] = [
      [reconcileInterval, '', /^--reconcile-interval must be a number of seconds of at least 1, or 0 \(no background repair\), such as 10; got ""$/],
      [reconcileInterval, '0x10', /^--reconcile-interval must be .*; got "0x10"$/],
      [reconcileInterval, '0.5', /^--reconcile-interval must be a number of seconds of at least 1/],
      [reconcileInterval, ' 10', /^--reconcile-interval must be .*; got " 10"$/],
      [abandonedGrace, '0', /^--abandoned-grace must be a number of seconds of at least 1, such as 60; got "0"$/],
      [applyTimeout, '0', /^--apply-timeout must be a number of seconds of at least 1, such as 20; got "0"$/],
      [applyTimeout, '', /^--apply-timeout must be .*; got ""$/],
      [applyTimeout, '1e3', /^--apply-timeout must be .*; got "1e3"$/],
      [workerWatchdog, '0.001', /^--worker-watchdog must be a number of seconds of at least 2, or 0 \(never\), such as 15; got "0.001"$/],
      [workerWatchdog, '1', /^--worker-watchdog must be a number of seconds of at least 2/],
      [workerWatchdog, '-5', /^--worker-watchdog must be .*; got "-5"$/],
      [workerWatchdog, 'Infinity', /^--worker-watchdog must be .*; got "Infinity"$/],
    ];
    for (const [setting, v, re] of cases) {
      assert.throws(() => parseSeconds(setting, v, {}), (e: Error & { code?: string }) => re.test(e.message) && e.code === 'LN_ERR_CONFIG', `--${setting.flag} ${JSON.stringify(v)}`);
    }
  });

  it('refuses the same from an environment variable, naming it and its flag', () => {
    for (const [setting, v] of [[reconcileInterval, '0x10'], [reconcileInterval, '1e1'], [abandonedGrace, '0'], [workerWatchdog, '0.001'], [workerWatchdog, 'soon']] as const) {
      const env = { [setting.env]: v };
      const re = new RegExp(`^${setting.env} \\(--${setting.flag}\\) must be a number of seconds .*; got "${v}"$`);
      assert.throws(() => parseSeconds(setting, undefined, env), (e: Error) => re.test(e.message), `${setting.env}=${v}`);
    }
  });
});

describe('credsProblem', () => {
  const jwt = `${Buffer.from('{"typ":"JWT","alg":"ed25519-nkey"}').toString('base64url')}.e30.c2ln`;
  const seed = `SU${'A'.repeat(56)}`;
  const creds = (j: string, s?: string) =>
    `-----BEGIN NATS USER JWT-----\n${j}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\n` +
    (s === undefined ? '' : `\n-----BEGIN USER NKEY SEED-----\n${s}\n------END USER NKEY SEED------\n`);
  const where = 'the NATS creds file /etc/x.creds (--nats-creds, LEDGERNET_NATS_CREDS)';

  it('takes a creds file as nsc writes it', () => {
    assert.equal(credsProblem(creds(jwt, seed), '/etc/x.creds'), null);
  });

  it('names the file and what is wrong, never quoting it', () => {
    assert.equal(credsProblem('', '/etc/x.creds'), `${where} is empty`);
    assert.match(credsProblem('hello', '/etc/x.creds') ?? '', /^the NATS creds file \/etc\/x\.creds .* is not a creds file: it has no -----BEGIN NATS USER JWT----- block/);
    assert.equal(credsProblem(creds('abc', seed), '/etc/x.creds'), `${where} is malformed: its first block is not a JWT (three base64url parts with a JSON header)`);
    assert.equal(credsProblem(creds(jwt), '/etc/x.creds'), `${where} is malformed: it has a JWT but no -----BEGIN USER NKEY SEED----- block after it`);
    const bad = credsProblem(creds(jwt, 'SOMESEEDTHATISWRONG'), '/etc/x.creds') ?? '';
    assert.equal(bad, `${where} is malformed: its second block is not a user nkey seed (58 characters starting with SU)`);
    assert.ok(!bad.includes('SOMESEED'));
  });
});
