// Reads systemd unit files the way systemd does, for tests of `ledgernet install`: sections and
// settings (repeated keys kept in order), and command lines (ExecStart=…) split into argv with
// systemd's quoting rules. Written independently of src/operator/install.ts, so the tests check it.

export type Unit = Map<string, [key: string, value: string][]>;

/** Sections of a unit file; comments and blank lines dropped, `\` line continuations joined. */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: [string, string][] | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = [];
      unit.set(head[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !section) throw new Error(`not a unit file line: ${line}`);
    section.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** Every value of `key` in `section`, in order. */
export function values(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

/** The one value of `key` in `section`; throws when absent or repeated. */
export function value(unit: Unit, section: string, key: string): string {
  const vs = values(unit, section, key);
  if (vs.length !== 1) throw new Error(`[${section}] ${key}= appears ${vs.length} times`);
  return vs[0]!;
}

/** `Environment=A=1 "B=two words"` lines as an object. */
export function environment(unit: Unit): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values(unit, 'Service', 'Environment')) {
    for (const word of splitCommandLine(v)) {
      const eq = word.indexOf('=');
      env[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return env;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", ' ': ' ' };

/**
 * A command line as systemd splits it: words separated by blanks, single or double quotes
 * grouping, C escapes, `%%` → `%`, `$$` → `$`. `$VAR`/`${VAR}` and other specifiers are refused:
 * the tests expect none in ledgernet's ExecStart.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    let word = '';
    let quote: string | null = null;
    if (line[i] === '"' || line[i] === "'") quote = line[i++]!;
    for (; i < line.length; i++) {
      const ch = line[i]!;
      if (quote !== null && ch === quote) {
        i++;
        break;
      }
      if (quote === null && /\s/.test(ch)) break;
      if (ch === '\\') {
        const next = line[++i] ?? '';
        const e = ESCAPES[next];
        if (e === undefined) throw new Error(`unsupported escape \\${next} in: ${line}`);
        word += e;
      } else if (ch === '%' || ch === '$') {
        if (line[i + 1] !== ch) throw new Error(`unexpected ${ch}${line[i + 1] ?? ''} (a specifier or variable) in: ${line}`);
        word += ch;
        i++;
      } else {
        word += ch;
      }
    }
    words.push(word);
  }
  return words;
}
