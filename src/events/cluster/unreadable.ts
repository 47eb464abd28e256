// Records of the cluster's KV bucket this ledgernet skips (another format, or edited by hand) are
// said once per key, at warn, naming the key and why: read on every create, proposal, full publish
// and watch replay, they would otherwise fill the log.

/** Where a skipped record is said (the daemon's logger). */
export interface RecordLog {
  warn(obj: object, msg: string): void;
}

/** Says each key once while it holds the same unreadable value; a key read again (or gone) is said again when it turns bad. */
export class UnreadableKeys {
  private readonly said = new Map<string, string>();
  private readonly log: RecordLog | undefined;

  constructor(log?: RecordLog) {
    this.log = log;
  }

  /** `key` was skipped: `msg` says what was done with it, `why` why it cannot be read. */
  say(key: string, why: string, msg: string): void {
    if (this.said.get(key) === why) return;
    this.said.set(key, why);
    this.log?.warn({ key, why }, msg);
  }

  /** `key` was read, or is gone. */
  clear(key: string): void {
    this.said.delete(key);
  }
}
