// The plain-text tables of `ledgernet status`: columns padded to their widest cell.

export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt), ...(rows.length === 0 ? ['(none)'] : [])].join('\n') + '\n';
}
