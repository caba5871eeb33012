/** Timings and limits of the e-mail family; tests shorten them. */
export interface EmailWorkerOptions {
  /** How often the list of active mailboxes is read and free leases are taken. */
  scanMs: number;
  /** Lease time to live; renewed every third of it. */
  leaseMs: number;
  /** Polling fallback: a sync this often even without IDLE news. */
  pollMs: number;
  /** Reconnect backoff: first delay, doubled up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** A conversation continues by subject and sender within this window. */
  threadWindowHours: number;
  /** Most mails fetched (one FETCH of a UID range) and stored (one transaction) together. */
  batchSize: number;
  /** Most bytes of mail in one batch (a large mail makes a batch of its own). */
  batchBytes: number;
  /** A mail larger than this is quarantined (`too_large`) without being fetched. */
  maxMailBytes: number;
  /** A mail that failed this many times (errors or crashes while handling it) is quarantined. */
  maxAttempts: number;
  /** Test setting: watch only these bots' mailboxes (parallel tests share one database). */
  onlyBots?: readonly string[];
  /** Test hook: called with each mail's source before it is stored; what it throws counts as a failed attempt. */
  inboundFault?: (source: Buffer) => void;
}

export const DEFAULT_EMAIL_OPTIONS: EmailWorkerOptions = {
  scanMs: 5000,
  leaseMs: 30_000,
  pollMs: 30_000,
  backoffMs: 1000,
  maxBackoffMs: 60_000,
  threadWindowHours: 72,
  batchSize: 100,
  batchBytes: 16 * 1024 * 1024,
  maxMailBytes: 50 * 1024 * 1024,
  maxAttempts: 3,
};
