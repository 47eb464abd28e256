export * from './domain/types.ts';
export * from './domain/commands.ts';
export { byDocker, byLedgernet, checkReason, describeCause, REASON_MAX } from './domain/cause.ts';
export { decide } from './domain/decide.ts';
export { evolve, fold } from './domain/evolve.ts';
export { EventLog } from './log/log.ts';
export { readLog, scanLog, baseLinesUp, LOG_FILE, LOG_START, type ScanBase, type ScanResult } from './log/read.ts';
export { readSnapshot, writeSnapshot, SNAPSHOT_FILE, type Snapshot } from './log/snapshot.ts';
export { EventStore, type EventListener, type StoreOptions } from './log/store.ts';
export { acquireLock, acquireHostGuard, hostInstance, lockHolder, isAlive, type HostInstance } from './log/lock.ts';
export { canonicalJson, eventHash } from './log/hash.ts';
export * from './domain/naming.ts';
export { openStore, loadState } from './log/open.ts';
export { networkPolicy, parseAllow, parseRate, type AllowRule, type NetworkPolicy } from './domain/options.ts';
export * from './audit/cloudevents.ts';
export { ChainVerifier, type ChainProblem } from './audit/verify-chain.ts';
export { type EventPublisher, type StreamHead, MemoryPublisher } from './audit/publisher.ts';
// The JetStream adapter (./audit/publisher-nats.ts) is imported where NATS is configured, not from here:
// importing this room must not load the NATS client.
export { Outbox, type OutboxStats } from './audit/outbox.ts';
export { LogParts } from './audit/log-parts.ts';
export { readCursor, writeCursor, CURSOR_FILE, type Cursor } from './audit/cursor.ts';
export { releaseCommand } from './domain/release.ts';
export { namesFrom } from './domain/names.ts';
export { poolUsage, type PoolUsage } from './domain/pool-usage.ts';
export { answerWithin, ClusterKv, lazyCluster, type ClusterHost, type ForgetOptions, type Forgetting, type ForgottenHost } from './cluster/kv.ts';
export { ownKeysOf, syncCluster } from './cluster/sync.ts';
export { startHeartbeat, type Heartbeat, type HeartbeatStats } from './cluster/heartbeat.ts';
export type { ClusterPort } from './domain/cluster.ts';
