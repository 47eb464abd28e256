// Folds commands into a state the way the daemon does (decide → stamp → evolve), for tests.
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { eventHash } from '../../src/events/log/hash.ts';
import { emptyState, type State, type StoredEvent } from '../../src/events/domain/types.ts';

export function given(...cmds: Command[]): State {
  let state = emptyState;
  for (const c of cmds) {
    const events = decide(c, state);
    let prev = state.hash;
    const stored = events.map((e, i) => {
      const base = { ...e, seq: state.seq + i + 1, id: 'h', host: 'h', v: 1, at: 'x', prevhash: prev };
      prev = eventHash(base as Omit<StoredEvent, 'hash'>);
      return { ...base, hash: prev } as StoredEvent;
    });
    state = fold(state, stored);
  }
  return state;
}
