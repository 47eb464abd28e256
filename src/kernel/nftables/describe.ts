// nftables JSON back to nft's own syntax, for `reconcile --dry-run` (display only: plans compare
// the JSON). Shapes it does not know (a rule added by hand) are shown as JSON.

type J = Readonly<Record<string, unknown>>;

const VERDICTS = new Set(['accept', 'drop', 'return', 'masquerade', 'continue']);
const SHORT_META = new Set(['iifname', 'oifname']);

/** One value or expression as nft writes it. */
function describeValue(v: unknown): string {
  if (v === null || typeof v !== 'object') return typeof v === 'string' && !v.startsWith('@') && /[*-]/.test(v) ? JSON.stringify(v) : String(v);
  if (Array.isArray(v)) return v.map(describeValue).join(',');
  const [key, body] = Object.entries(v as J)[0] ?? ['', null];
  const b = (body ?? {}) as J;
  // A verdict as a map's value (`"lnb-0123" : accept`).
  if (VERDICTS.has(key) && body === null) return key;
  switch (key) {
    case 'meta':
      return SHORT_META.has(String(b['key'])) ? String(b['key']) : `meta ${String(b['key'])}`;
    case 'payload':
      return `${String(b['protocol'])} ${String(b['field'])}`;
    case 'ct':
      return `ct ${typeof b['dir'] === 'string' ? `${b['dir']} ` : ''}${String(b['key'])}`;
    case 'fib':
      return `fib ${describeValue(b['flags'])} ${String(b['result'])}`;
    case 'set':
      return `{ ${(body as unknown[]).map(describeValue).join(', ')} }`;
    case 'range':
      return (body as unknown[]).map(describeValue).join('-');
    case 'prefix':
      return `${String(b['addr'])}/${String(b['len'])}`;
    case 'concat':
      return (body as unknown[]).map(describeValue).join(' . ');
    case 'map':
      return `${describeValue(b['key'])} map ${String(b['data'])}`;
    case 'jump':
    case 'goto':
      return `${key} ${String(b['target'])}`;
    default:
      return JSON.stringify(v);
  }
}

function describeStatement(s: unknown): string {
  const [key, body] = Object.entries((s ?? {}) as J)[0] ?? ['', null];
  const b = (body ?? {}) as J;
  if (VERDICTS.has(key) && body === null) return key;
  switch (key) {
    case 'match': {
      const op = b['op'] === '==' || b['op'] === 'in' ? '' : b['op'] === '!' ? '& ' : `${String(b['op'])} `;
      return `${describeValue(b['left'])} ${op}${describeValue(b['right'])}${b['op'] === '!' ? ' == 0' : ''}`;
    }
    case 'vmap':
      return `${describeValue(b['key'])} vmap ${String(b['data'])}`;
    case 'reject':
      // icmpx port-unreachable is nft's default: it prints a bare `reject`.
      return b['type'] === 'icmpx' && b['expr'] === 'port-unreachable' ? 'reject' : `reject with ${String(b['type'])} ${String(b['expr'])}`;
    case 'dnat':
    case 'snat':
      return `${key} ${String(b['family'] ?? '')} to ${describeValue(b['addr'])}${b['port'] === undefined ? '' : ` : ${describeValue(b['port'])}`}`;
    case 'jump':
    case 'goto':
      return describeValue(s);
    case 'counter':
      // An anonymous counter (nft lists its packets and bytes, which are no drift); a named one.
      return typeof body === 'string' ? `counter name ${JSON.stringify(body)}` : 'counter';
    default:
      return JSON.stringify(s);
  }
}

/** A rule (its `expr`) as nft writes it: `oifname "lnb-0123" ct state established,related accept`. */
export function describeRule(expr: readonly unknown[]): string {
  return expr.map(describeStatement).join(' ');
}

/** A set or map element: `"lnb-0123" : jump net-…-from`, `tcp . 8080 : 10.231.9.2`. */
export function describeElement(e: unknown): string {
  if (Array.isArray(e) && e.length === 2) return `${describeValue(e[0])} : ${describeValue(e[1])}`;
  return describeValue(e);
}

/** How many elements the dry-run lists of a set or map written whole; the rest are counted. */
const ELEMENTS_SHOWN = 20;

/** The `+` lines of a set or map written whole: its first elements as nft writes them, and how many more. */
export function describeElements(elements: readonly unknown[]): string[] {
  const shown = elements.slice(0, ELEMENTS_SHOWN).map((e) => `+ ${describeElement(e)}`);
  const rest = elements.length - shown.length;
  return rest > 0 ? [...shown, `+ … and ${rest} more`] : shown;
}
