import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseIptablesSave, parseIptablesSaveAll } from '../../../../src/kernel/iptables/parse.ts';
import { readFixture } from '../../../helpers/fixtures.ts';

const PARSE_ERROR = { name: 'DriverError', code: 'LN_ERR_KERNEL_PARSE' };

describe('parseIptablesSave', () => {
  it('reads built-in and user chains with their rules in order', () => {
    const table = parseIptablesSave(readFixture('iptables/filter.ledgernet.txt'), 'filter');
    assert.equal(table.name, 'filter');
    assert.deepEqual(Object.keys(table.chains), ['INPUT', 'FORWARD', 'OUTPUT', 'LEDGERNET-FORWARD']);
    assert.deepEqual(table.chains['INPUT'], { name: 'INPUT', policy: 'ACCEPT', rules: [] });
    assert.deepEqual(table.chains['FORWARD'], {
      name: 'FORWARD',
      policy: 'DROP',
      rules: [
        '-s 192.0.2.0/24 -m comment --comment "operator: keep me" -j DROP',
        '-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD',
      ],
    });
    const ours = table.chains['LEDGERNET-FORWARD'];
    assert.equal(ours?.policy, null);
    assert.deepEqual(ours?.rules, [
      '-i lnb-0123456789a -o lnb-0123456789a -m comment --comment "ledgernet:net:0123456789ab:icc" -j ACCEPT',
      '-o lnb-0123456789a -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ledgernet:net:0123456789ab:established" -j ACCEPT',
      '-i lnb-0123456789a ! -o lnb-0123456789a -m comment --comment "ledgernet:net:0123456789ab:egress" -j ACCEPT',
    ]);
  });

  it('reads the built-in chains of a fresh namespace', () => {
    const table = parseIptablesSave(readFixture('iptables/filter.empty.txt'), 'filter');
    assert.deepEqual(table.chains, {
      INPUT: { name: 'INPUT', policy: 'ACCEPT', rules: [] },
      FORWARD: { name: 'FORWARD', policy: 'ACCEPT', rules: [] },
      OUTPUT: { name: 'OUTPUT', policy: 'ACCEPT', rules: [] },
    });
  });

  it('keeps rules exactly as iptables-save normalized them', () => {
    // Input was restore-input.normalized.txt: see how iptables rewrote each rule.
    const table = parseIptablesSave(readFixture('iptables/filter.normalized.txt'), 'filter');
    assert.deepEqual(table.chains['LNTEST-NORM']?.rules, [
      '-s 10.0.0.1/32 -p tcp -m comment --comment "ledgernet:x" -m tcp --dport 80 -j ACCEPT',
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      String.raw`-m comment --comment "it\'s \"quoted\"" -j RETURN`,
    ]);
    assert.deepEqual(table.chains['AAA-USER'], { name: 'AAA-USER', policy: null, rules: [] });
  });

  it('drops the counters that iptables-save -c prints before each rule', () => {
    const plain = parseIptablesSave(readFixture('iptables/filter.normalized.txt'), 'filter');
    const counted = parseIptablesSave(readFixture('iptables/filter.counters.txt'), 'filter');
    assert.deepEqual(counted, plain);
  });

  it('gives no chains for empty output (no table loaded)', () => {
    assert.deepEqual(parseIptablesSave('', 'filter'), { name: 'filter', chains: {} });
    assert.deepEqual(parseIptablesSave('\n', 'nat'), { name: 'nat', chains: {} });
  });

  it('reads only the requested table', () => {
    const text = `*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n${readFixture('iptables/filter.empty.txt')}`;
    assert.deepEqual(Object.keys(parseIptablesSave(text, 'nat').chains), ['POSTROUTING']);
    assert.deepEqual(Object.keys(parseIptablesSave(text, 'filter').chains), ['INPUT', 'FORWARD', 'OUTPUT']);
    assert.deepEqual(parseIptablesSave(text, 'mangle').chains, {});
  });

  it('keeps a chain named __proto__ as a plain entry', () => {
    const table = parseIptablesSave('*filter\n:__proto__ - [0:0]\n-A __proto__ -j RETURN\nCOMMIT\n', 'filter');
    assert.deepEqual(Object.keys(table.chains), ['__proto__']);
    assert.deepEqual(table.chains['__proto__']?.rules, ['-j RETURN']);
  });

  const declared = '*filter\n:FORWARD ACCEPT [0:0]\n';
  for (const [label, text] of [
    ['a rule for an undeclared chain', `${declared}-A NOPE -j ACCEPT\nCOMMIT\n`],
    ['a line that is not iptables-save syntax', `${declared}iptables: Permission denied\nCOMMIT\n`],
    ['a rule outside a table', '-A FORWARD -j ACCEPT\n'],
    ['a table without COMMIT', declared],
    ['a table opened inside another', `${declared}*nat\nCOMMIT\n`],
    ['a chain declared twice', `${declared}:FORWARD DROP [0:0]\nCOMMIT\n`],
    ['a chain line without policy', '*filter\n:FORWARD\nCOMMIT\n'],
    ['a rule with no body', `${declared}-A FORWARD\nCOMMIT\n`],
  ] as const) {
    it(`rejects ${label} with LN_ERR_KERNEL_PARSE`, () => {
      assert.throws(() => parseIptablesSave(text, 'filter'), PARSE_ERROR);
    });
  }
});

describe('parseIptablesSaveAll', () => {
  const all = () => readFixture('iptables/all.filter-nat-raw.txt');

  it('reads every table asked for from one iptables-save, as iptables-save -t reads each', () => {
    const tables = parseIptablesSaveAll(all(), ['filter', 'nat']);
    assert.deepEqual(tables.filter, parseIptablesSave(all(), 'filter'));
    assert.deepEqual(tables.nat, parseIptablesSave(all(), 'nat'));
    assert.deepEqual(tables.nat.chains['POSTROUTING']?.rules, ['-s 10.231.7.0/24 ! -o lnb-0123456789a -m comment --comment "ledgernet:net:0123456789ab:masquerade" -j MASQUERADE']);
  });

  it('gives a table iptables-save did not print (never used here) its built-in chains, as -t prints them', () => {
    const { mangle, filter } = parseIptablesSaveAll(all(), ['mangle', 'filter']);
    assert.deepEqual(Object.keys(mangle.chains), ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
    assert.deepEqual(mangle.chains['FORWARD'], { name: 'FORWARD', policy: 'ACCEPT', rules: [] });
    assert.equal(filter.chains['FORWARD']?.rules.length, 1);
    // A fresh namespace: iptables-save prints nothing, iptables-save -t filter the built-in chains.
    assert.deepEqual(parseIptablesSaveAll('', ['filter']).filter, parseIptablesSave(readFixture('iptables/filter.empty.txt'), 'filter'));
  });

  it('skips the sections of other tables unread, and rejects a bad line in a table it reads', () => {
    const odd = `*raw\nnot iptables-save syntax\nCOMMIT\n${readFixture('iptables/filter.empty.txt')}`;
    assert.deepEqual(Object.keys(parseIptablesSaveAll(odd, ['filter']).filter.chains), ['INPUT', 'FORWARD', 'OUTPUT']);
    assert.throws(() => parseIptablesSaveAll(odd, ['raw']), PARSE_ERROR);
    assert.throws(() => parseIptablesSaveAll('*filter\n:FORWARD ACCEPT [0:0]\n', ['nat']), PARSE_ERROR, 'a table without COMMIT, whatever its name');
  });
});
