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
// An expiry step is synchronous: it never awaits LevelDB, so the processing loop's pause for it is its
// own bounded CPU work, never I/O. Purges of expired segments run in the background (segment-purger.ts:
// chunked, one call at a time, never awaited; the step only raises their target and takes what
// finished). Scans of pinned and old-layout entries are started by one step and taken by a later one
// once they came back; their writes (logged, in the step's transaction) are applied at most while the
// step's budget lasts, the rest by the next steps. Why: on a loaded machine a single 1,000-entry purge
// or even an empty scan took 20–800 ms whenever LevelDB's compaction was behind, and a step that
// waited for one (even only up to its budget, with a timer) held the loop for the timer's lateness too.
// Nothing here knows what the values mean: `timeOf` says when an entry's retention starts (null = pinned).
import assert from 'node:assert/strict';
import type { KeyValueStore } from './types.ts';
import {
  applyScan,
  ExpiryCounts,
  InFlight,
  JOB_ORDER,
  type Job,
  type JobKind,
  monotonicClock,
  rangeEntries,
  type Tally,
  threadCpuMs,
  type Touched,
  trackTouched,
} from './segment-expiry.ts';
import { purgedSegment, SegmentPurger } from './segment-purger.ts';
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
/** How often an expiry step also reads the store's approximate size on disk (for the metric). */
const SIZE_READ_EVERY_MS = 10_000;

interface Found<V> {
  physicalKey: string;
  value: V;
}

export class SegmentedKeyValueStore<V> implements KeyValueStore<V> {
  readonly #inner: PurgeableStore<unknown>;
  readonly #options: SegmentedStoreOptions<V>;
  /** The largest clock value seen: time never runs back for the retention, so a purged segment never becomes live again. */
  #highWaterMs = Number.NEGATIVE_INFINITY;
  #pinnedCursor: string | undefined;
  #oldLayoutCursor: string | undefined;
  #oldLayoutLeft: boolean;
  #oldLayoutFoundInPass = false;
  #sizeReadAtMs = Number.NEGATIVE_INFINITY;
  #size: InFlight<number> | undefined;
  #pinnedPassDueMs = Number.NEGATIVE_INFINITY;
  /** The scan in flight or being applied (at most one), started by an earlier step. */
  #job: Job | undefined;
  #lastJob: JobKind = 'old';
  /** Physical keys written through the view while a scan is in flight: its stale reads of them are skipped. */
  #touched: Touched | undefined;
  readonly #counts = new ExpiryCounts();
  readonly #purger: SegmentPurger;

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
    this.#purger = new SegmentPurger(inner, (count, lastKey) => this.#counts.purged(count, purgedSegment(lastKey)));
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
   * One bounded expiry step, synchronous (it never waits for LevelDB): raises the background purge's
   * target to the expired segments and takes what it deleted; takes the scan that came back (pinned
   * refresh, old-layout sweep, in turns) and applies its writes into the current transaction while
   * `budgetMs` lasts (the rest at the next steps), then starts the next scan due. Its pause of the
   * processing loop is this CPU work only: at most `scannedEntriesMax` entries, and never much past
   * the budget (the clock is checked every 64 entries). Run it often (every commit interval).
   */
  expireStep(bounds: ExpiryStepBounds, elapsedMs: () => number = monotonicClock()): ExpiryStepResult {
    const started = elapsedMs();
    const cpuStarted = threadCpuMs();
    const withinBudget = (): boolean => elapsedMs() - started < bounds.budgetMs;
    const now = this.#now();
    const low = this.#window(now).low;
    const purge = this.#purger.take();
    const tally: Tally = { purged: purge.purged, migrated: 0, refreshed: 0 };
    let backgroundCalls = purge.calls;
    let backgroundMs = purge.backgroundMs;
    let backgroundCallMaxMs = purge.callMaxMs;
    this.#purger.request(low, bounds.purgeEntriesPerCallMax);
    for (let turns = 0; turns <= JOB_ORDER.length; turns++) {
      const job = this.#job ?? this.#startJob(now, bounds);
      if (job === undefined || !job.call.done) break;
      if (job.applied === 0) {
        backgroundCalls++;
        const callMs = job.call.settledAtMs - job.call.startedAtMs;
        backgroundMs += callMs;
        backgroundCallMaxMs = Math.max(backgroundCallMaxMs, callMs);
      }
      if (!applyScan(job, this.#now(), tally, withinBudget)) break;
      this.#job = undefined;
      this.#touched = undefined;
    }
    const result: ExpiryStepResult = {
      ...tally,
      durationMs: elapsedMs() - started,
      cpuMs: threadCpuMs() - cpuStarted,
      caughtUp: this.#purger.purgedBelow >= low,
      inFlight: this.#purger.running || this.#job !== undefined,
      backgroundCalls,
      backgroundMs,
      backgroundCallMaxMs,
    };
    this.#counts.purgedBelow(this.#purger.purgedBelow);
    result.storeEntries = this.#counts.entries();
    result.storeEntriesExact = this.#counts.exact;
    this.#readSize(started, result);
    return result;
  }

  /** Settles once no expiry call of this store is running (tests, benchmarks; the loop never waits for it). */
  async expiryIdle(): Promise<void> {
    await Promise.all([this.#purger.idle(), this.#job?.call.settled, this.#size?.settled]);
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

  /** The next scan to start, the kinds taking turns (pinned refresh, old-layout sweep), or none due. */
  #startJob(nowMs: number, bounds: ExpiryStepBounds): Job | undefined {
    const first = JOB_ORDER.indexOf(this.#lastJob) + 1;
    for (let i = 0; i < JOB_ORDER.length; i++) {
      const kind = JOB_ORDER[(first + i) % JOB_ORDER.length] as JobKind;
      const job =
        kind === 'pinned'
          ? this.#pinnedJob(nowMs, bounds.scannedEntriesMax)
          : this.#oldLayoutJob(bounds.scannedEntriesMax);
      if (job === undefined) continue;
      this.#lastJob = kind;
      this.#job = job;
      return job;
    }
    return undefined;
  }

  /** Pinned entries are read in passes every retention/8: between passes a step does no I/O for them. */
  #pinnedJob(nowMs: number, scannedMax: number): Job | undefined {
    if (this.#pinnedCursor === undefined && nowMs < this.#pinnedPassDueMs) return undefined;
    const gte = this.#pinnedCursor ?? PINNED_PREFIX;
    const touched = this.#startTracking();
    return {
      kind: 'pinned',
      call: new InFlight(rangeEntries(this.#inner, gte, OLD_LAYOUT_RESUME, scannedMax)),
      touched,
      applied: 0,
      apply: (now, [physicalKey, stored], tally) => {
        const pinned = stored as Pinned<V>;
        if (pinned.w < now - Math.floor(this.#options.retentionMs / 2) && !touched.keys.has(physicalKey)) {
          this.#inner.put(physicalKey, { w: now, v: pinned.v } satisfies Pinned<V>);
          tally.refreshed++;
        }
      },
      complete: (now, entries, _tally, dropped) => {
        if (dropped) return;
        this.#counts.pinnedSeen(entries.length, gte === PINNED_PREFIX, entries.length < scannedMax);
        const last = entries.at(-1)?.[0];
        this.#pinnedCursor = entries.length >= scannedMax && last !== undefined ? `${last}\u0000` : undefined;
        if (this.#pinnedCursor === undefined)
          this.#pinnedPassDueMs = now + Math.max(1, Math.floor(this.#options.retentionMs / 8));
      },
    };
  }

  /** Moves old-layout entries into the segmented layout (or deletes expired ones), bounded per scan. */
  #oldLayoutJob(scannedMax: number): Job | undefined {
    if (!this.#oldLayoutLeft) return undefined;
    // Old keys sit below SEGMENT_PREFIX ("\u0000…") and from OLD_LAYOUT_RESUME on.
    const before = this.#oldLayoutCursor === undefined || this.#oldLayoutCursor < SEGMENT_PREFIX;
    const cursor = this.#oldLayoutCursor ?? '';
    const gte = before ? cursor : maxKey(cursor, OLD_LAYOUT_RESUME);
    const touched = this.#startTracking();
    return {
      kind: 'old',
      call: new InFlight(rangeEntries(this.#inner, gte, before ? SEGMENT_PREFIX : undefined, scannedMax)),
      touched,
      applied: 0,
      apply: (now, [key, stored], tally) => {
        tally.migrated++;
        // Written through the view meanwhile: put() already moved it (or wrote it in place).
        if (touched.keys.has(key)) return;
        const value = stored as V;
        const target = this.#placement(key, value, now);
        if (!this.#oldLayoutOnly(key) && target !== null) this.#write(target.physicalKey, target.stored);
        if (!this.#oldLayoutOnly(key) || target === null) this.#remove(key);
      },
      complete: (_now, entries, _tally, dropped) => {
        if (dropped) return;
        if (entries.length > 0) this.#oldLayoutFoundInPass = true;
        if (entries.length >= scannedMax) this.#oldLayoutCursor = `${(entries.at(-1) as [string, unknown])[0]}\u0000`;
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
