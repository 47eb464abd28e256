/** A listener while it runs: how many connections or flows it carries, and how to stop it. */
export interface Running {
  connections(): number;
  /** Stops listening and closes every connection (or flow) it carries. */
  close(): Promise<void>;
}

/** What the proxy logs through (the daemon's pino child). */
export interface ProxyLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
