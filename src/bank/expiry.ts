// Dedup expiry: a wall-clock punctuator deletes final transfer entries (completed or failed) once they
// are older than the retention. In-flight entries are never deleted: the settle or refund leg needs them.
// Each run is bounded (entries scanned, entries deleted) and resumes where the last one stopped, so a
// store of millions of entries costs a little every interval rather than a long pause once.
import { type KeyValueStore } from '../topology/types.ts';
import { type TransferEntry } from './stores.ts';

export interface DedupExpiryOptions {
  retentionMs: number;
  /** Deletions per run at most (each is a changelog tombstone in the task's transaction). */
  deletionsMax: number;
  /** Entries read per run at most. */
  scannedMax: number;
}

export class DedupExpiry {
  readonly #store: KeyValueStore<TransferEntry>;
  readonly #options: DedupExpiryOptions;
  // The first key of the next run; undefined starts again from the beginning of the store.
  #cursor: string | undefined;

  constructor(store: KeyValueStore<TransferEntry>, options: DedupExpiryOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Deletes expired entries from the cursor on; returns how many were deleted. */
  async run(nowMs: number): Promise<number> {
    const { retentionMs, deletionsMax, scannedMax } = this.#options;
    const expired: string[] = [];
    let scanned = 0;
    let lastKey: string | undefined;
    const range = this.#cursor === undefined ? { limit: scannedMax } : { gte: this.#cursor, limit: scannedMax };
    for await (const [key, entry] of this.#store.range(range)) {
      scanned += 1;
      lastKey = key;
      if (entry.status !== 'in_flight' && nowMs - entry.decidedAt >= retentionMs) {
        expired.push(key);
        if (expired.length >= deletionsMax) break;
      }
    }
    // Deleting after the scan, not during it, keeps the iteration independent of the store's write cache.
    for (const key of expired) this.#store.delete(key);
    const stoppedEarly = expired.length >= deletionsMax || scanned >= scannedMax;
    // "\u0000" appended gives the smallest key after lastKey.
    this.#cursor = stoppedEarly && lastKey !== undefined ? `${lastKey}\u0000` : undefined;
    return expired.length;
  }
}
