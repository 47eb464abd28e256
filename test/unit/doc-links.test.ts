// Every link in the project's documents leads somewhere: a file that exists, and a heading that
// exists in it. A section dropped by an edit (README's "Cluster networks" once was, with a link to
// it left in the CLI table) fails here instead of leaving readers at a dead anchor.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/daemon.ts';

const DOCS = ['README.md', 'RELIABILITY.md', 'BENCHMARKS.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** A document's text without code blocks and code spans (a `](#x)` there is not a link). */
function prose(file: string): string {
  return readFileSync(join(REPO_ROOT, file), 'utf8')
    .replace(/```[\s\S]*?```/g, '')
    .replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a document's headings, repeats numbered as GitHub does (`x`, `x-1`, …). */
function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const text = readFileSync(join(REPO_ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  for (const m of text.matchAll(/^#{1,6}\s+(.*)$/gm)) {
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every relative link of `file` (its text: `text`) that leads nowhere, as `target (why)`. */
function deadLinks(file: string, text = prose(file)): string[] {
  const dead: string[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const link = m[1] ?? '';
    if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
    const [path = '', anchor] = link.split('#');
    const target = path === '' ? file : normalize(join(dirname(file), path));
    if (!existsSync(join(REPO_ROOT, target))) {
      dead.push(`${link} (no file ${target})`);
      continue;
    }
    if (anchor !== undefined && target.endsWith('.md') && !anchorsOf(target).has(anchor)) dead.push(`${link} (no heading in ${target} has this anchor)`);
  }
  return dead;
}

describe('documents: links', () => {
  for (const file of DOCS) {
    it(`${file}: every relative link names a file and a heading that exist`, () => {
      assert.deepEqual(deadLinks(file), []);
    });
  }

  it('the check finds a dead anchor and a missing file (it can fail)', () => {
    const text = 'See [the CLI](#cli), [gone](#cluster-networks-multi-hosts), [events](docs/events.md#nothing-here), [old](docs/gone.md).';
    assert.deepEqual(deadLinks('README.md', text), [
      '#cluster-networks-multi-hosts (no heading in README.md has this anchor)',
      'docs/events.md#nothing-here (no heading in docs/events.md has this anchor)',
      'docs/gone.md (no file docs/gone.md)',
    ]);
    assert.equal(slug('IPAM (`--ipam-driver ledgernet`)'), 'ipam---ipam-driver-ledgernet');
    assert.equal(slug('Cluster networks (multi-host)'), 'cluster-networks-multi-host');
  });
});
