import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));

/** Reads `fixtures/<relPath>` from disk on every call, so no test sees another's edits. */
export function readFixture(relPath: string): string {
  return readFileSync(FIXTURES + relPath, 'utf8');
}

/** Reads a fixture of lines (e.g. an `ip -batch` input) without its final newline. */
export function readFixtureLines(relPath: string): string[] {
  return readFixture(relPath).replace(/\n$/, '').split('\n');
}
