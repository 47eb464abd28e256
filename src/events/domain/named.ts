// Long lists of named objects (a pass's actions and failures) cut for a log line, a recorded
// `reconcile.applied` event or Docker's answer: the first ones named, the rest counted by kind in
// one last item, which `countNamed` reads back.

/**
 * How many actions or failures a log line, a recorded `reconcile.applied` event or Docker's answer
 * names one by one. A pass's lists grow with the ports published (a range of 2,000 ports on an
 * `--ipv6` network, tcp and udp, is 8,000 reservations and, with nftables, 16,000 map elements:
 * one event of 2.5 MB, over NATS's 1 MiB max_payload, which stopped the audit stream for good);
 * the rest are counted by kind.
 */
const NAMED_AT_MOST = 100;

/**
 * `items` (each starting with its action's kind, as the reconciler's `describeAction` writes them) cut to the first
 * `limit`, plus one item counting the rest by kind: `… and 15,900 more: 12,000
 * nft.element.add, 3,900 port.reserve`. Unchanged when there are no more than `limit`.
 */
export function namedAtMost(items: readonly string[], limit = NAMED_AT_MOST): string[] {
  if (items.length <= limit) return [...items];
  const rest = new Map<string, number>();
  for (const item of items.slice(limit)) {
    const kind = item.split(' ', 1)[0] ?? item;
    rest.set(kind, (rest.get(kind) ?? 0) + 1);
  }
  const kinds = [...rest].sort(([ka, a], [kb, b]) => b - a || ka.localeCompare(kb)).map(([kind, n]) => `${n.toLocaleString('en-US')} ${kind}`);
  return [...items.slice(0, limit), `… and ${(items.length - limit).toLocaleString('en-US')} more: ${kinds.join(', ')}`];
}

const MORE = /^… and ([\d,]+) more: /;

/** How many items `namedAtMost` was given: the named ones plus the count its last item holds. */
export function countNamed(items: readonly string[]): number {
  const more = MORE.exec(items.at(-1) ?? '');
  return more ? items.length - 1 + Number((more[1] ?? '0').replaceAll(',', '')) : items.length;
}
