// Drift made by hand for the e2e firewall test, per backend: what is deleted or changed, and the
// `reconcile --dry-run` lines that must then show it.
import assert from 'node:assert/strict';
import { execa } from 'execa';

/** iptables drift by hand: rules deleted or changed, hooks deleted or moved; the dry-run lines expected. */
export async function iptablesDrift(): Promise<RegExp[]> {
  const ipt = (...args: string[]) => execa('iptables', args);
  await ipt('-D', 'LEDGERNET-FORWARD', '1');
  await ipt('-D', 'LEDGERNET-INPUT', '1');
  await ipt('-t', 'nat', '-D', 'LEDGERNET-DNAT', '1');
  await ipt('-t', 'nat', '-R', 'LEDGERNET-POSTROUTING', '1', '-s', '10.231.114.0/24', '-j', 'ACCEPT');
  await ipt('-t', 'nat', '-D', 'PREROUTING', '!', '-d', '127.0.0.0/8', '-m', 'addrtype', '--dst-type', 'LOCAL', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-DNAT');
  await ipt('-D', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD');
  // Moved to the end, behind Docker's own accepts (a fixed position can land right after a second
  // `-j DOCKER-USER`, which some dockerd restarts leave behind, and be well placed there).
  await ipt('-A', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD');
  return [
    /~ chain\.write filter\/LEDGERNET-FORWARD \(drifted/,
    /~ chain\.write filter\/LEDGERNET-INPUT \(drifted/,
    /~ chain\.write nat\/LEDGERNET-DNAT \(drifted/,
    /~ chain\.write nat\/LEDGERNET-POSTROUTING \(drifted/,
    /- -s 10\.231\.114\.0\/24 -j ACCEPT/,
    /\+ hook\.add nat\/PREROUTING .*LEDGERNET-DNAT \(missing\)/,
    /- hook\.delete filter\/FORWARD .*\(drifted: not right after DOCKER-USER\)/,
  ];
}

/** nftables drift by hand: an element, a rule, a chain, and the iptables accept's hook; the dry-run lines expected. */
export async function nftablesDrift(n: { id: string; bridge: string }): Promise<RegExp[]> {
  const nft = (...args: string[]) => execa('nft', args);
  await nft('delete', 'element', 'inet', 'ledgernet', 'dnat_addr', '{ tcp . 18280 }');
  await nft('delete', 'rule', 'inet', 'ledgernet', 'forward', 'handle', await ruleHandle('forward', 'oifname vmap @to'));
  await nft('delete', 'element', 'inet', 'ledgernet', 'to', `{ "${n.bridge}" }`);
  await nft('delete', 'chain', 'inet', 'ledgernet', `net-${n.id}-to`);
  await execa('iptables', ['-D', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD']);
  return [
    /\+ nft\.element\.add inet ledgernet\/dnat_addr tcp \. 18280 : 10\.231\.114\.\d+ \(missing\)/,
    /~ nft\.chain\.write inet ledgernet\/forward \(drifted: 2 rules expected, 1 found/,
    /\+ oifname vmap @to/,
    new RegExp(`\\+ nft\\.chain\\.write inet ledgernet/net-${n.id}-to \\(missing\\)`),
    new RegExp(`\\+ nft\\.element\\.add inet ledgernet/to "${n.bridge}" : jump net-${n.id}-to \\(missing\\)`),
    /\+ hook\.add filter\/FORWARD .*LEDGERNET-FORWARD \(missing\)/,
  ];
}

/** The handle of the rule of our table's `chain` that reads `text` (`nft -a list`). */
async function ruleHandle(chain: string, text: string): Promise<string> {
  const out = (await execa('nft', ['-a', 'list', 'chain', 'inet', 'ledgernet', chain])).stdout;
  const line = out.split('\n').find((l) => l.includes(text));
  const handle = /# handle (\d+)/.exec(line ?? '')?.[1];
  assert.ok(handle, `no rule "${text}" in ${chain}:\n${out}`);
  return handle;
}
