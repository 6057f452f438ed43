// Dedup expiry: a bounded step, run by a wall-clock punctuator about once per commit interval.
// The transfers store is segmented by decision time (src/stores/segmented-store.ts): expiry drops whole
// expired segments from the local store (no changelog tombstone per id: the changelog's time retention
// forgets them), rewrites in-flight entries whose changelog record is getting old, and moves entries of
// the layout before segments. A step never waits for LevelDB: purges run in the background and scans
// are taken by a later step once they came back, so the processing loop's pause for expiry is the
// step's own CPU work (at most a budget's worth of writes), however far behind expiry is or however
// slow LevelDB gets.
import type { ExpiryStepBounds, ExpiryStepResult, SegmentedKeyValueStore } from '../stores/segmented-store.ts';
import type { TransferEntry } from './stores.ts';

/**
 * Defaults: a step applies scan results at most 20 ms per task (EXPIRY_STEP_BUDGET_MS), 1,000 entries
 * per background LevelDB purge batch (one at a time per store), 1,000 entries read per scan. A purge
 * call's keys and delete batch are built on the main thread between loop turns (never inside a step):
 * 1,000 keys keep each such piece well under a millisecond.
 */
export const DEFAULT_EXPIRY_BOUNDS: ExpiryStepBounds = Object.freeze({
  budgetMs: 20,
  purgeEntriesPerCallMax: 1_000,
  scannedEntriesMax: 1_000,
});

export class DedupExpiry {
  readonly #store: SegmentedKeyValueStore<TransferEntry>;
  readonly #bounds: ExpiryStepBounds;

  constructor(store: SegmentedKeyValueStore<TransferEntry>, bounds: ExpiryStepBounds) {
    for (const [name, value] of Object.entries(bounds)) {
      if (!Number.isSafeInteger(value) || value < 1)
        throw new RangeError(`dedup expiry: ${name} must be a positive integer, got ${value}`);
    }
    this.#store = store;
    this.#bounds = bounds;
  }

  /** Synchronous: the loop's pause for expiry is this call. */
  step(): ExpiryStepResult {
    return this.#store.expireStep(this.#bounds);
  }
}
