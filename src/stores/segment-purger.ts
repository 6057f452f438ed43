// SegmentPurger: deletes the expired segments of a segmented store (src/stores/segmented-store.ts)
// from the local store in the background. Nobody awaits it: an expiry step only raises its target
// (synchronously) and takes what finished since the step before, so the processing loop never waits
// for a LevelDB delete, however slow LevelDB gets. Calls run one at a time, each at most
// `purgeEntriesPerCallMax` entries (its keys and delete batch are the only main-thread work, well
// under a millisecond for 1,000 keys), and the event loop runs everything else between two calls.
//
// Crash safety: a purge deletes only entries of segments already expired, local-only (no changelog
// record, no checkpoint). Readers never name those segments (lookups, restore and the changelog's
// retention all skip them), so a process that dies with a purge started but not finished leaves
// entries nobody can see, and the first purge after the restart starts again at segment 0 and deletes
// them. Live entries are never in a purged range: a segment expires only once the clock's high-water
// mark is past it, and a write never goes into an expired segment.
import { segmentKey, segmentOfKey } from './segment-layout.ts';
import type { PurgeableStore } from './segment-expiry.ts';

/** What the purger finished since the last take(). */
export interface PurgeReport {
  /** Entries deleted. */
  purged: number;
  /** LevelDB calls that settled. */
  calls: number;
  /** Wall time of those calls (start to settle) in ms: background time, never the processing loop's. */
  backgroundMs: number;
  /** The longest of those calls, in ms. */
  callMaxMs: number;
}

export class SegmentPurger {
  readonly #inner: PurgeableStore<unknown>;
  readonly #onPurged: (count: number, lastKey: string | undefined) => void;
  /** Segments below this id are purged (in memory: after a restart the first purge starts at segment 0). */
  #purgedBelow = 0;
  #target = 0;
  #limit = 1;
  /** Where the next call starts inside the expired range (after the last key deleted), or undefined. */
  #from: string | undefined;
  #running: Promise<void> | undefined;
  #report: PurgeReport = emptyReport();
  #failed = false;
  #error: unknown;

  constructor(inner: PurgeableStore<unknown>, onPurged: (count: number, lastKey: string | undefined) => void) {
    this.#inner = inner;
    this.#onPurged = onPurged;
  }

  get purgedBelow(): number {
    return this.#purgedBelow;
  }

  /** Whether a call is running (or due to start between two calls). */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Segments below `target` are expired: the background calls go on until they are all deleted.
   * Synchronous and O(1): starts the chain if it is idle, never waits for it.
   */
  request(target: number, limitEntries: number): void {
    if (target > this.#target) this.#target = target;
    this.#limit = limitEntries;
    if (this.#running === undefined && !this.#failed && this.#purgedBelow < this.#target) this.#running = this.#run();
  }

  /** What finished since the last take; a failed call's error is thrown here (once: the next request starts again). */
  take(): PurgeReport {
    if (this.#failed) {
      this.#failed = false;
      throw this.#error;
    }
    const report = this.#report;
    this.#report = emptyReport();
    return report;
  }

  /** Settles once no call is running (tests, benchmarks; the loop never waits for it). */
  idle(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  async #run(): Promise<void> {
    try {
      // Not even the call's start (LevelDB's iterator is created on the calling thread) runs inside the step.
      await nextTurn();
      while (this.#purgedBelow < this.#target) {
        const low = this.#target;
        const limit = this.#limit;
        // From after the last key deleted: starting at the segment again would walk its tombstones each call.
        const from = this.#from ?? segmentKey(this.#purgedBelow, '');
        const started = performance.now();
        const { purged, lastKey } = await this.#inner.purgeRange(from, segmentKey(low, ''), limit);
        const ms = performance.now() - started;
        this.#report.purged += purged;
        this.#report.calls++;
        this.#report.backgroundMs += ms;
        this.#report.callMaxMs = Math.max(this.#report.callMaxMs, ms);
        this.#onPurged(purged, lastKey);
        if (purged < limit || lastKey === undefined) {
          this.#purgedBelow = low;
          this.#from = undefined;
        } else this.#from = `${lastKey}\u0000`;
        // The event loop (the processing loop among others) runs between two calls.
        await nextTurn();
      }
    } catch (error) {
      // A closed or failed store ends the chain; a step still running takes the error (take()).
      this.#failed = true;
      this.#error = error;
    } finally {
      this.#running = undefined;
    }
  }
}

/** Settles in a later turn of the event loop (after the I/O callbacks waiting now). */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

function emptyReport(): PurgeReport {
  return { purged: 0, calls: 0, backgroundMs: 0, callMaxMs: 0 };
}

/** The segment of a purge call's last key, for the entry counts (null when it deleted nothing). */
export function purgedSegment(lastKey: string | undefined): number | null {
  return lastKey === undefined ? null : segmentOfKey(lastKey);
}
