// The rule: the link name prefixes (lnb-, lnv-, lnp-, lni-, lnx-, also as a regex class such as
// `ln[bvi]-`) and the `ledgernet:` ownership tag (ifalias `ledgernet:<kind>:<id>`, rule comments
// `ledgernet:<owner>`) are spelled in code only in src/events/domain/naming.ts. Comments may show
// them as examples; string literals, template pieces and regular expressions elsewhere may not.
// Other uses of the word are not the tag: `ledgernet://` (CloudEvents source), `ledgernet: ` with
// a space (messages, object keys). iptables chain names (LEDGERNET-*) are not covered.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..', '..');
const HOME = 'src/events/domain/naming.ts';
const SPELLING = /\bln(?:[bvpix]|\[[a-z]+\])-|ledgernet:(?!\/\/| )/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Literal pieces of code (strings, template parts, regexes) that spell a prefix or the tag. */
function spellings(file: string, text: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    const literal =
      ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node) || ts.isRegularExpressionLiteral(node) ? node.getText() : null;
    if (literal !== null && SPELLING.test(literal)) found.push(literal);
    node.forEachChild(visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true));
  return found;
}

describe('naming is spelled once', () => {
  it('no code in src outside naming.ts spells a link prefix or the ledgernet: tag', () => {
    const offenders = sourceFiles(join(ROOT, 'src'))
      .map((f) => [relative(ROOT, f), spellings(f, readFileSync(f, 'utf8'))] as const)
      .filter(([f, found]) => f !== HOME && found.length > 0)
      .map(([f, found]) => `${f}: ${found.join(', ')}`);
    assert.deepEqual(offenders, []);
  });
  it('catches a prefix in a string, a template and a regex, and lets comments and messages be', () => {
    assert.equal(spellings('x.ts', "const a = 'lnv-' + x;").length, 1);
    assert.equal(spellings('x.ts', 'const a = `-m comment --comment "ledgernet:${o}"`;').length, 1);
    assert.equal(spellings('x.ts', 'const a = /^ln[bvi]-/.test(n);').length, 1);
    assert.deepEqual(spellings('x.ts', "// lnb-0123 is a bridge\nwrite(`ledgernet: oops`); const s = 'ledgernet://h';"), []);
  });
  it('naming.ts itself spells them', () => {
    assert.notDeepEqual(spellings(HOME, readFileSync(join(ROOT, HOME), 'utf8')), []);
  });
});
