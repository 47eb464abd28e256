export * from './types.ts';
export * from './commands.ts';
export { decide, short } from './decide.ts';
export { evolve, fold } from './evolve.ts';
export { EventLog, readLog, scanLog, LOG_FILE, type ScanResult } from './log.ts';
export { EventStore, type EventListener } from './store.ts';
export { acquireLock, lockHolder, isAlive } from './lock.ts';
export { canonicalJson, eventHash } from './hash.ts';
export * from './names.ts';
