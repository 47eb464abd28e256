import type { LineLinks } from '../batch.ts';
import type { LinkChange } from '../changes.ts';
import { linkSteps, stepLine } from './steps.ts';

const LINK_KINDS: ReadonlySet<string> = new Set(['bridge.create', 'veth.create', 'ifb.create', 'link.set', 'addr.add', 'addr.del', 'route.add', 'link.delete']);

/** A change that `applyLinks` makes (rtnetlink, or `ip -batch`). */
export function isLinkChange<T extends { readonly kind: string }>(c: T): c is T & LinkChange {
  return LINK_KINDS.has(c.kind);
}

/** The `ip -batch` lines for one change: one per request (steps.ts). */
export function ipLines(c: LinkChange): string[] {
  return linkSteps(c).map(stepLine);
}

/** The links of `ip -batch` lines (stepLine's): which one a line makes, which ones it names (batch.ts). */
export const IP_LINE_LINKS: LineLinks = {
  made: (line) => /^link add name (\S+)/.exec(line)?.[1] ?? null,
  names: (line) => [...line.matchAll(/(?:^link add name| dev| master) (\S+)/g)].map((m) => m[1] ?? ''),
};
