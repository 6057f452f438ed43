// SegmentedKeyValueStore: a key-value view with time-based retention over one task store, the way
// Kafka Streams' segmented window stores keep it. Entries are grouped by the time segment they were
// decided in (a key prefix per segment, src/stores/segment-layout.ts), so expiry drops whole segments
// with a range purge of the local store instead of one changelog tombstone per entry; the changelog
// forgets them by its own time retention (cleanup.policy=compact,delete, retention.ms >= changelogRetentionMs()).
// Pinned entries are rewritten once older than `retentionMs / 2` (with w = now; passes over them every
// retentionMs / 8), so their changelog record is always younger than the changelog's retention.
// Entries of the old layout are still found, moved on their next write, and swept (moved or dropped)
// in bounded steps until none is left.
//
// Expiry never holds the processing loop longer than its budget: each LevelDB call of a step (a purge,
// a scan) is waited for at most until the budget is spent; one still running then goes on in the
// background (LevelDB works off the main thread) and a later step takes its result. At most one such
// call is in flight per store. Why: on a loaded machine a single 1,000-entry purge or even an empty
// scan waited 20–800 ms whenever LevelDB's compaction was behind (the commit's own batch of the same
// store then took 100–800 ms too), so bounding the work a step starts could not bound its wall time.
// Nothing here knows what the values mean: `timeOf` says when an entry's retention starts (null = pinned).
import assert from 'node:assert/strict';
import type { KeyValueStore } from './types.ts';
import { ExpiryCounts, InFlight, monotonicClock, rangeEntries, type Touched, trackTouched } from './segment-expiry.ts';
import {
  lowestLiveSegment,
  maxKey,
  OLD_LAYOUT_RESUME,
  PINNED_PREFIX,
  type Pinned,
  SEGMENT_ID_MAX,
  SEGMENT_PREFIX,
  segmentKey,
  segmentOfKey,
  settlesWithin,
} from './segment-layout.ts';

export { logicalEntries, logicalRecord } from './segment-layout.ts';
export type { ExpiryStepBounds, ExpiryStepResult, PurgeableStore, SegmentedStoreOptions } from './segment-expiry.ts';

import type { ExpiryStepBounds, ExpiryStepResult, PurgeableStore, SegmentedStoreOptions } from './segment-expiry.ts';

/**
 * A lookup also names the next segment's key when the clock is this close to its start (or one
 * segment, if shorter): a batch prefetched just before a segment boundary and processed after it
 * still reads the segment it then writes to.
 */
export const SEGMENT_LOOKAHEAD_MS = 5 * 60_000;
/** How much of a step's budget is kept for the lateness of its timer (at most a quarter of the budget). */
const STEP_SLACK_MS = 5;
/** How often an expiry step also reads the store's approximate size on disk (for the metric). */
const SIZE_READ_EVERY_MS = 10_000;

type JobKind = 'purge' | 'pinned' | 'old';
const JOB_ORDER: readonly JobKind[] = ['purge', 'pinned', 'old'];

interface Job {
  kind: JobKind;
  call: InFlight<unknown>;
  /** Applies the call's result in the step that takes it (writes go into that step's transaction). */
  finish(nowMs: number, tally: { purged: number; migrated: number; refreshed: number }): void;
}

interface Found<V> {
  physicalKey: string;
  value: V;
}

export class SegmentedKeyValueStore<V> implements KeyValueStore<V> {
  readonly #inner: PurgeableStore<unknown>;
  readonly #options: SegmentedStoreOptions<V>;
  /** The largest clock value seen: time never runs back for the retention, so a purged segment never becomes live again. */
  #highWaterMs = Number.NEGATIVE_INFINITY;
  /** Segments below this id are already purged (in memory: after a restart the first purge starts at the beginning). */
  #purgedBelow = 0;
  #pinnedCursor: string | undefined;
  #oldLayoutCursor: string | undefined;
  #oldLayoutLeft: boolean;
  #oldLayoutFoundInPass = false;
  #sizeReadAtMs = Number.NEGATIVE_INFINITY;
  #size: InFlight<number> | undefined;
  #pinnedPassDueMs = Number.NEGATIVE_INFINITY;
  /** Where the next purge call starts inside the expired range (after the last key deleted), or undefined. */
  #purgeFrom: string | undefined;
  /** The LevelDB call in flight (at most one), started by an earlier step if it outlived that step's budget. */
  #job: Job | undefined;
  #lastJob: JobKind = 'old';
  /** Physical keys written through the view while a scan is in flight: its stale reads of them are skipped. */
  #touched: Touched | undefined;
  readonly #counts = new ExpiryCounts();

  constructor(inner: PurgeableStore<unknown>, options: SegmentedStoreOptions<V>) {
    assert(
      Number.isSafeInteger(options.retentionMs) && options.retentionMs > 0,
      'segmented store: retentionMs must be a positive integer',
    );
    assert(
      Number.isSafeInteger(options.segmentIntervalMs) && options.segmentIntervalMs > 0,
      'segmented store: segmentIntervalMs must be a positive integer',
    );
    this.#inner = inner;
    this.#options = options;
    this.#oldLayoutLeft = options.oldLayout;
  }

  get name(): string {
    return this.#inner.name;
  }

  /** How long the changelog must keep a record: retention, plus one segment, plus the pinned refresh period. */
  static changelogRetentionMs(retentionMs: number, segmentIntervalMs: number): number {
    return retentionMs + segmentIntervalMs + Math.ceil(retentionMs / 2);
  }

  /**
   * Whether a physical key (as in the changelog) belongs to a segment already expired at `nowMs`:
   * restore skips those records.
   */
  static expiredKey(physicalKey: string, nowMs: number, retentionMs: number, segmentIntervalMs: number): boolean {
    const segment = segmentOfKey(physicalKey);
    return segment !== null && segment < lowestLiveSegment(nowMs, retentionMs, segmentIntervalMs);
  }

  /** Whether old-layout entries may still be in the store (lookups then read their keys too). */
  get oldLayoutLeft(): boolean {
    return this.#oldLayoutLeft;
  }

  /** The physical keys a lookup of `key` reads: name them all in Processor.prefetch. */
  keysFor(key: string): string[] {
    if (this.#oldLayoutOnly(key)) return this.#oldLayoutLeft ? [key] : [];
    const now = this.#now();
    const { low, high } = this.#window(now);
    const keys = [PINNED_PREFIX + key];
    // The segment a put goes to if the clock crosses into it before the batch is processed.
    const next = high + 1;
    const lookaheadMs = Math.min(SEGMENT_LOOKAHEAD_MS, this.#options.segmentIntervalMs);
    if (next * this.#options.segmentIntervalMs - now <= lookaheadMs) keys.push(segmentKey(next, key));
    for (let segment = high; segment >= low; segment--) keys.push(segmentKey(segment, key));
    if (this.#oldLayoutLeft) keys.push(key);
    return keys;
  }

  get(key: string): V | undefined {
    return this.#find(key)?.value;
  }

  put(key: string, value: V): void {
    if (this.#oldLayoutOnly(key)) {
      this.#write(key, value);
      return;
    }
    const previous = this.#find(key);
    const target = this.#placement(key, value, this.#now());
    if (target !== null) this.#write(target.physicalKey, target.stored, previous?.physicalKey !== target.physicalKey);
    if (previous !== undefined && previous.physicalKey !== target?.physicalKey) this.#remove(previous.physicalKey);
  }

  delete(key: string): void {
    const previous = this.#find(key);
    if (previous !== undefined) this.#remove(previous.physicalKey);
  }

  range(): AsyncIterable<[string, V]> {
    throw new Error(`segmented store ${this.name}: range is not supported (entries live in several segments)`);
  }

  /**
   * One bounded expiry step: purge expired segments (unlogged, local), rewrite old pinned entries and
   * sweep old-layout ones (logged writes of the current transaction), one kind after the other so none
   * starves. Waits for LevelDB at most `budgetMs` in all; run it often (every commit interval).
   */
  async expireStep(bounds: ExpiryStepBounds, elapsedMs: () => number = monotonicClock()): Promise<ExpiryStepResult> {
    const started = elapsedMs();
    // The timer and the main thread's other work (a call's own continuation, GC) come back a few ms late:
    // stop waiting early by that much, so the step ends inside its budget rather than just past it.
    const slackMs = Math.min(STEP_SLACK_MS, bounds.budgetMs / 4);
    const left = (): number => bounds.budgetMs - slackMs - (elapsedMs() - started);
    const now = this.#now();
    const tally = { purged: 0, migrated: 0, refreshed: 0 };
    let inFlight = false;
    for (let calls = 0; left() > 0 && calls < JOB_ORDER.length * 16; calls++) {
      const job = this.#job ?? this.#startJob(now, bounds);
      if (job === undefined) break;
      this.#job = job;
      if (!job.call.done && !(await settlesWithin(job.call.settled, left()))) {
        inFlight = true;
        break;
      }
      this.#job = undefined;
      if (job.kind !== 'purge') this.#touched = undefined;
      job.finish(this.#now(), tally);
    }
    const low = this.#window(this.#now()).low;
    const result: ExpiryStepResult = {
      ...tally,
      durationMs: elapsedMs() - started,
      caughtUp: this.#purgedBelow >= low,
      inFlight,
    };
    this.#counts.purgedBelow(this.#purgedBelow);
    result.storeEntries = this.#counts.entries();
    result.storeEntriesExact = this.#counts.exact;
    this.#readSize(started, result);
    return result;
  }

  /** The size for the metric, read in the background at most every 10 s and reported when it has come back. */
  #readSize(startedMs: number, result: ExpiryStepResult): void {
    if (this.#size?.done === true) {
      if (this.#size.value !== undefined) result.storeBytes = this.#size.value;
      this.#size = undefined;
    }
    const read = this.#inner.approximateBytes;
    if (read === undefined || this.#size !== undefined || startedMs - this.#sizeReadAtMs < SIZE_READ_EVERY_MS) return;
    this.#sizeReadAtMs = startedMs;
    this.#size = new InFlight(read.call(this.#inner));
  }

  /** The next call to start, the kinds taking turns (purge, pinned refresh, old-layout sweep), or none due. */
  #startJob(nowMs: number, bounds: ExpiryStepBounds): Job | undefined {
    const first = JOB_ORDER.indexOf(this.#lastJob) + 1;
    for (let i = 0; i < JOB_ORDER.length; i++) {
      const kind = JOB_ORDER[(first + i) % JOB_ORDER.length] as JobKind;
      const job =
        kind === 'purge'
          ? this.#purgeJob(nowMs, bounds.purgeEntriesPerCallMax)
          : kind === 'pinned'
            ? this.#pinnedJob(nowMs, bounds.scannedEntriesMax)
            : this.#oldLayoutJob(bounds.scannedEntriesMax);
      if (job === undefined) continue;
      this.#lastJob = kind;
      return job;
    }
    return undefined;
  }

  #purgeJob(nowMs: number, limit: number): Job | undefined {
    const { low } = this.#window(nowMs);
    if (this.#purgedBelow >= low) return undefined;
    // From after the last key deleted: starting at the segment again would walk its tombstones each call.
    const from = this.#purgeFrom ?? segmentKey(this.#purgedBelow, '');
    // Not sized to the budget left: a call outliving it goes on in the background (sizing by measured
    // cost shrank calls to 100 entries under load, and expiry fell behind).
    const call = new InFlight(this.#inner.purgeRange(from, segmentKey(low, ''), limit));
    return {
      kind: 'purge',
      call,
      finish: (_now, tally) => {
        const { purged: deleted, lastKey } = call.take();
        tally.purged += deleted;
        this.#counts.purged(deleted, lastKey === undefined ? null : segmentOfKey(lastKey));
        if (deleted < limit || lastKey === undefined) {
          this.#purgedBelow = low;
          this.#purgeFrom = undefined;
        } else this.#purgeFrom = `${lastKey}\u0000`;
      },
    };
  }

  /** Pinned entries are read in passes every retention/8: between passes a step does no I/O for them. */
  #pinnedJob(nowMs: number, scannedMax: number): Job | undefined {
    if (this.#pinnedCursor === undefined && nowMs < this.#pinnedPassDueMs) return undefined;
    const gte = this.#pinnedCursor ?? PINNED_PREFIX;
    const touched = this.#startTracking();
    const call = new InFlight(rangeEntries(this.#inner, gte, OLD_LAYOUT_RESUME, scannedMax));
    return {
      kind: 'pinned',
      call,
      finish: (now, tally) => {
        const entries = call.take();
        // Too many writes while it ran to tell which reads are stale: read the same range again.
        if (touched.overflowed) return;
        const refreshBefore = now - Math.floor(this.#options.retentionMs / 2);
        for (const [physicalKey, stored] of entries) {
          const pinned = stored as Pinned<V>;
          if (pinned.w < refreshBefore && !touched.keys.has(physicalKey)) {
            this.#inner.put(physicalKey, { w: now, v: pinned.v } satisfies Pinned<V>);
            tally.refreshed++;
          }
        }
        this.#counts.pinnedSeen(entries.length, gte === PINNED_PREFIX, entries.length < scannedMax);
        const last = entries.at(-1)?.[0];
        this.#pinnedCursor = entries.length >= scannedMax && last !== undefined ? `${last}\u0000` : undefined;
        if (this.#pinnedCursor === undefined)
          this.#pinnedPassDueMs = now + Math.max(1, Math.floor(this.#options.retentionMs / 8));
      },
    };
  }

  /** Moves old-layout entries into the segmented layout (or deletes expired ones), bounded per call. */
  #oldLayoutJob(scannedMax: number): Job | undefined {
    if (!this.#oldLayoutLeft) return undefined;
    // Old keys sit below SEGMENT_PREFIX ("\u0000…") and from OLD_LAYOUT_RESUME on.
    const before = this.#oldLayoutCursor === undefined || this.#oldLayoutCursor < SEGMENT_PREFIX;
    const cursor = this.#oldLayoutCursor ?? '';
    const gte = before ? cursor : maxKey(cursor, OLD_LAYOUT_RESUME);
    const touched = this.#startTracking();
    const call = new InFlight(rangeEntries(this.#inner, gte, before ? SEGMENT_PREFIX : undefined, scannedMax));
    return {
      kind: 'old',
      call,
      finish: (now, tally) => {
        const entries = call.take() as [string, V][];
        if (touched.overflowed) return;
        for (const [key, value] of entries) {
          // Written through the view meanwhile: put() already moved it (or wrote it in place).
          if (touched.keys.has(key)) continue;
          const target = this.#placement(key, value, now);
          if (!this.#oldLayoutOnly(key) && target !== null) this.#write(target.physicalKey, target.stored);
          if (!this.#oldLayoutOnly(key) || target === null) this.#remove(key);
        }
        tally.migrated += entries.length;
        if (entries.length > 0) this.#oldLayoutFoundInPass = true;
        if (entries.length >= scannedMax) this.#oldLayoutCursor = `${(entries.at(-1) as [string, V])[0]}\u0000`;
        else if (before) this.#oldLayoutCursor = OLD_LAYOUT_RESUME;
        else {
          this.#oldLayoutCursor = undefined;
          // New writes never use the old layout, so a whole pass that found nothing means nothing is left.
          // (A pass that moved entries is not proof: its transaction might still abort.)
          if (!this.#oldLayoutFoundInPass) this.#oldLayoutLeft = false;
          this.#oldLayoutFoundInPass = false;
        }
      },
    };
  }

  #startTracking(): Touched {
    this.#touched = { keys: new Set(), overflowed: false };
    return this.#touched;
  }

  /** A logged write through the view; `added` when it creates a logical entry (for the entries count). */
  #write(physicalKey: string, stored: unknown, added = true): void {
    trackTouched(this.#touched, physicalKey);
    this.#inner.put(physicalKey, stored);
    if (added) this.#counts.added(segmentOfKey(physicalKey), physicalKey.startsWith(PINNED_PREFIX));
  }

  #remove(physicalKey: string): void {
    trackTouched(this.#touched, physicalKey);
    this.#inner.delete(physicalKey);
    this.#counts.removed(segmentOfKey(physicalKey), physicalKey.startsWith(PINNED_PREFIX));
  }

  #oldLayoutOnly(key: string): boolean {
    return this.#options.oldLayoutOnly?.(key) ?? false;
  }

  #now(): number {
    const now = this.#options.clock();
    if (now > this.#highWaterMs) {
      this.#highWaterMs = now;
      this.#counts.observe(now, this.#options.segmentIntervalMs);
    }
    return this.#highWaterMs;
  }

  #window(nowMs: number): { low: number; high: number } {
    return {
      low: lowestLiveSegment(nowMs, this.#options.retentionMs, this.#options.segmentIntervalMs),
      high: this.#segmentOf(nowMs),
    };
  }

  #segmentOf(timeMs: number): number {
    return Math.min(SEGMENT_ID_MAX, Math.max(0, Math.floor(timeMs / this.#options.segmentIntervalMs)));
  }

  /** The newest copy of `key`: pinned, then the segments newest first, then the old layout. */
  #find(key: string): Found<V> | undefined {
    if (!this.#oldLayoutOnly(key)) {
      const pinnedKey = PINNED_PREFIX + key;
      const pinned = this.#inner.get(pinnedKey) as Pinned<V> | undefined;
      if (pinned !== undefined) return { physicalKey: pinnedKey, value: pinned.v };
      const { low, high } = this.#window(this.#now());
      for (let segment = high; segment >= low; segment--) {
        const physicalKey = segmentKey(segment, key);
        const value = this.#inner.get(physicalKey) as V | undefined;
        if (value !== undefined) return { physicalKey, value };
      }
    }
    if (!this.#oldLayoutLeft) return undefined;
    const old = this.#inner.get(key) as V | undefined;
    return old === undefined ? undefined : { physicalKey: key, value: old };
  }

  /** Where `value` goes: pinned, the segment of its time (never beyond the current one), or nowhere (already expired). */
  #placement(key: string, value: V, nowMs: number): { physicalKey: string; stored: unknown } | null {
    const timeMs = this.#options.timeOf(value);
    if (timeMs === null)
      return { physicalKey: PINNED_PREFIX + key, stored: { w: nowMs, v: value } satisfies Pinned<V> };
    const { low, high } = this.#window(nowMs);
    const segment = Math.min(this.#segmentOf(timeMs), high);
    return segment < low ? null : { physicalKey: segmentKey(segment, key), stored: value };
  }
}
