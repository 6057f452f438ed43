// The types and small parts of a segmented store's expiry (src/stores/segmented-store.ts): the bounds
// of a step and what it reports, a LevelDB call that outlives the step that started it, the scans it
// runs, and the entry count it keeps for the metrics.
import type { KeyValueStore } from './types.ts';

/** The store operations a segmented store needs besides get/put/delete (TaskStore has them; see CachedTaskStore.purgeRange). */
export interface PurgeableStore<V> extends KeyValueStore<V> {
  purgeRange(gte: string, lt: string, limitEntries: number): Promise<{ purged: number; lastKey: string | undefined }>;
  approximateBytes?(): Promise<number>;
}

export interface SegmentedStoreOptions<V> {
  /** An entry is found for at least this long after its time, and at most one segment longer. */
  retentionMs: number;
  /** Width of one segment; `retentionMs / segmentIntervalMs + 2` segments are live at once. */
  segmentIntervalMs: number;
  /** When the entry's retention starts (epoch ms), or null: pinned, never expires. */
  timeOf(value: V): number | null;
  /** The task's clock (wall-clock, injectable for tests and benchmarks). */
  clock(): number;
  /** Whether the store may hold entries of the layout before segments (found, moved, swept). */
  oldLayout: boolean;
  /**
   * Keys that only ever live in the old layout (read and written in place, never moved, deleted by
   * the sweep once expired): for keys of an older key format nobody creates any more.
   */
  oldLayoutOnly?: (key: string) => boolean;
}

export interface ExpiryStepBounds {
  /**
   * How long a step applies the writes of a scan that came back (ms; checked every 64 entries, the
   * rest waits for the next step). A step never waits for LevelDB: this bounds its CPU work.
   */
  budgetMs: number;
  /** Entries one background purge call deletes (one LevelDB batch; one call at a time per store). */
  purgeEntriesPerCallMax: number;
  /** Pinned or old-layout entries one scan reads at most (and so a step applies at most). */
  scannedEntriesMax: number;
}

export interface ExpiryStepResult {
  /** Entries of expired segments deleted from the local store (by background calls that finished since the last step). */
  purged: number;
  /** Old-layout entries moved into segments or deleted (expired). */
  migrated: number;
  /** Pinned entries rewritten so that their changelog record stays within the changelog's retention. */
  refreshed: number;
  /** How long the step held the processing loop (its own CPU work: it never waits for LevelDB). */
  durationMs: number;
  /**
   * CPU time the step's thread used meanwhile (ms): durationMs minus this is time the OS did not run
   * the process (a loaded machine) or the thread waited for GC.
   */
  cpuMs: number;
  /** True when no expired segment is left to purge. */
  caughtUp: boolean;
  /** True when a LevelDB call of expiry (a purge, a scan) goes on in the background after the step. */
  inFlight: boolean;
  /** Background LevelDB calls (purges, scans) that came back since the last step. */
  backgroundCalls: number;
  /** Their wall time in ms, start to settle, summed: what LevelDB took, in the background, not the loop. */
  backgroundMs: number;
  /** The longest of them, in ms. */
  backgroundCallMaxMs: number;
  /**
   * Entries in the store: counted from the writes and purges since the task opened, plus the pinned
   * ones of the last full pass; a lower bound until the segments present at open are purged.
   */
  storeEntries?: number;
  /** Whether storeEntries is exact (every segment present when the task opened is purged). */
  storeEntriesExact?: boolean;
  /** The store's approximate bytes on disk, read in the background at most every 10 s. */
  storeBytes?: number;
}

/** Keys written through the view while a scan was in flight (its reads of them may be stale). */
export interface Touched {
  keys: Set<string>;
  /** Too many to remember: the scan's result is dropped. */
  overflowed: boolean;
}

/** A call that may outlive the step that started it: its outcome is kept until a step takes it. */
export class InFlight<T> {
  done = false;
  readonly startedAtMs = performance.now();
  settledAtMs = Number.NaN;
  value: T | undefined;
  #failed = false;
  #error: unknown;
  /** Settles when the call does; never rejects (the error is rethrown by take()). */
  readonly settled: Promise<void>;

  constructor(call: Promise<T>) {
    this.settled = call.then(
      (value) => {
        this.value = value;
        this.#settle();
      },
      (error: unknown) => {
        this.#failed = true;
        this.#error = error;
        this.#settle();
      },
    );
  }

  #settle(): void {
    this.done = true;
    this.settledAtMs = performance.now();
  }

  /** The result of a settled call; a failed call's error is thrown here, in the step that takes it. */
  take(): T {
    if (!this.done) throw new Error('expiry: took the result of a call still in flight');
    if (this.#failed) throw this.#error;
    return this.value as T;
  }
}

/** Scan results a step applies between two looks at its clock (its budget is checked that often). */
const APPLY_ENTRIES_BETWEEN_CHECKS = 64;

export type JobKind = 'pinned' | 'old';
export const JOB_ORDER: readonly JobKind[] = ['pinned', 'old'];

export type Tally = { purged: number; migrated: number; refreshed: number };

/** A scan: read in the background, applied by the steps that take it (writes go into their transactions). */
export interface Job {
  kind: JobKind;
  call: InFlight<[string, unknown][]>;
  touched: Touched;
  /** How many of the call's entries are applied (a step stops once its budget is spent). */
  applied: number;
  /** Applies one entry read by the scan. */
  apply(nowMs: number, entry: [string, unknown], tally: Tally): void;
  /** After the last entry: moves the cursor on (`dropped`: too many writes meanwhile, the range is read again). */
  complete(nowMs: number, entries: [string, unknown][], tally: Tally, dropped: boolean): void;
}

/** Applies a scan that came back while the budget lasts; true when it is all applied (and completed). */
export function applyScan(job: Job, nowMs: number, tally: Tally, withinBudget: () => boolean): boolean {
  const entries = job.call.take();
  // Too many writes while it ran to tell which reads are stale: read the same range again.
  const dropped = job.touched.overflowed;
  if (!dropped) {
    while (job.applied < entries.length) {
      if (!withinBudget()) return false;
      const end = Math.min(entries.length, job.applied + APPLY_ENTRIES_BETWEEN_CHECKS);
      for (; job.applied < end; job.applied++) job.apply(nowMs, entries[job.applied]!, tally);
    }
  }
  job.complete(nowMs, entries, tally, dropped);
  return true;
}

/**
 * At most `limit` entries of [gte, lt) of the store (read-only: a scan's writes are made when a step
 * takes it). Starts in a later turn of the event loop: the iterator LevelDB creates on the calling
 * thread is not created inside the step that asks for the scan.
 */
export async function rangeEntries(
  store: KeyValueStore<unknown>,
  gte: string,
  lt: string | undefined,
  limit: number,
): Promise<[string, unknown][]> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  const entries: [string, unknown][] = [];
  for await (const entry of store.range(lt === undefined ? { gte, limit } : { gte, lt, limit })) entries.push(entry);
  return entries;
}

/**
 * The store's entries by segment, from the writes through the view and the purges since the task
 * opened. Segments below the first one written after open may hold entries from before it, which
 * nobody counted: the count is exact once they are purged. Pinned entries are counted by the
 * refresh passes (the count of the last full pass plus the changes since).
 */
export class ExpiryCounts {
  readonly #bySegment = new Map<number, number>();
  #firstCountedSegment: number | undefined;
  #purgedBelow = 0;
  #pinnedLastPass = 0;
  #pinnedChanges = 0;
  #pinnedInPass = 0;

  /** The task's clock moved to `nowMs`: segments from the next one on hold only entries counted here. */
  observe(nowMs: number, segmentIntervalMs: number): void {
    this.#firstCountedSegment ??= Math.floor(nowMs / segmentIntervalMs) + 1;
  }

  added(segment: number | null, pinned: boolean): void {
    if (segment !== null) this.#bySegment.set(segment, (this.#bySegment.get(segment) ?? 0) + 1);
    else if (pinned) this.#pinnedChanges++;
  }

  removed(segment: number | null, pinned: boolean): void {
    if (segment !== null) this.#bySegment.set(segment, (this.#bySegment.get(segment) ?? 0) - 1);
    else if (pinned) this.#pinnedChanges--;
  }

  /**
   * A purge call deleted `count` entries, the last of them in `segment` (all are counted there: a
   * call spanning two segments is off by its share of the first until that one's count goes).
   */
  purged(count: number, segment: number | null): void {
    if (segment === null) return;
    const left = this.#bySegment.get(segment);
    if (left !== undefined) this.#bySegment.set(segment, Math.max(0, left - count));
  }

  /** Segments below `segment` are purged: their counts go. */
  purgedBelow(segment: number): void {
    if (segment <= this.#purgedBelow) return;
    this.#purgedBelow = segment;
    for (const s of this.#bySegment.keys()) if (s < segment) this.#bySegment.delete(s);
  }

  /** A pinned scan read `count` entries; `first` / `last` = it began / ended a full pass. */
  pinnedSeen(count: number, first: boolean, last: boolean): void {
    if (first) this.#pinnedInPass = 0;
    this.#pinnedInPass += count;
    if (!last) return;
    this.#pinnedLastPass = this.#pinnedInPass;
    this.#pinnedChanges = 0;
  }

  get exact(): boolean {
    return this.#firstCountedSegment !== undefined && this.#purgedBelow >= this.#firstCountedSegment;
  }

  entries(): number {
    let total = Math.max(0, this.#pinnedLastPass + this.#pinnedChanges);
    for (const count of this.#bySegment.values()) total += count;
    return Math.max(0, total);
  }
}

/** Keys remembered while one scan is in flight; beyond this its result is dropped and the range read again. */
const TOUCHED_KEYS_MAX = 100_000;

export function trackTouched(touched: Touched | undefined, physicalKey: string): void {
  if (touched === undefined || touched.overflowed) return;
  touched.keys.add(physicalKey);
  if (touched.keys.size > TOUCHED_KEYS_MAX) {
    touched.overflowed = true;
    touched.keys.clear();
  }
}

/** CPU time of the calling thread (user + system), in ms. */
export function threadCpuMs(): number {
  const { user, system } = process.threadCpuUsage();
  return (user + system) / 1000;
}

export function monotonicClock(): () => number {
  return () => performance.now();
}
