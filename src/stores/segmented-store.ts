// SegmentedKeyValueStore: a key-value view with time-based retention over one task store, the way
// Kafka Streams' segmented window stores keep it. Entries are grouped by the time segment they were
// decided in (a key prefix per segment), so expiry drops whole segments with a range purge of the
// local store instead of one changelog tombstone per entry; the changelog forgets them by its own
// time retention (cleanup.policy=compact,delete, retention.ms >= changelogRetentionMs()).
//
// Physical layout of the underlying store (user keys are the view's "logical" keys):
//   "\u0001" + segment id (11 base-36 digits) + key → value          (expires with its segment)
//   "\u0002" + key                                   → {w, v}        (pinned: never expires)
//   any other key                                    → value         (the layout before segments)
// Pinned entries are rewritten once older than `retentionMs / 2` (with w = now; passes over them every
// retentionMs / 8), so their changelog record is always younger than the changelog's retention. Entries of the old layout are still found, moved on
// their next write, and swept (moved or dropped) in bounded steps until none is left.
// Nothing here knows what the values mean: `timeOf` says when an entry's retention starts (null = pinned).
import assert from 'node:assert/strict';
import type { KeyValueStore } from './types.ts';

const SEGMENT_PREFIX = '\u0001';
const PINNED_PREFIX = '\u0002';
/** Old-layout keys are the ones outside [SEGMENT_PREFIX, OLD_LAYOUT_RESUME). */
const OLD_LAYOUT_RESUME = '\u0003';
const SEGMENT_ID_DIGITS = 11;
const SEGMENT_ID_PATTERN = /^[0-9a-z]{11}$/;
/** 36^11 − 1 exceeds every epoch ms Date can hold, so a segment id always fits. */
const SEGMENT_ID_MAX = 36 ** SEGMENT_ID_DIGITS - 1;
/**
 * A lookup also names the next segment's key when the clock is this close to its start (or one
 * segment, if shorter): a batch prefetched just before a segment boundary and processed after it
 * still reads the segment it then writes to.
 */
export const SEGMENT_LOOKAHEAD_MS = 5 * 60_000;

/** The store operation a range purge needs (TaskStore has it; see CachedTaskStore.purgeRange). */
export interface PurgeableStore<V> extends KeyValueStore<V> {
  purgeRange(gte: string, lt: string, limitEntries: number): Promise<{ purged: number; lastKey: string | undefined }>;
  approximateBytes?(): Promise<number>;
}

/** A purge call deletes at least this many entries, so a step always makes progress. */
const PURGE_CALL_ENTRIES_MIN = 100;
/** How often an expiry step also reads the store's approximate size on disk (for the metric). */
const SIZE_READ_EVERY_MS = 10_000;

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
  /** Stop starting new work once the step has run this long. */
  budgetMs: number;
  /** Entries one purge call deletes at most (one LevelDB batch); calls are sized to the budget left, at least 100. */
  purgeEntriesPerCallMax: number;
  /** Pinned or old-layout entries one step reads at most. */
  scannedEntriesMax: number;
}

export interface ExpiryStepResult {
  /** Entries of expired segments deleted from the local store. */
  purged: number;
  /** Old-layout entries moved into segments or deleted (expired). */
  migrated: number;
  /** Pinned entries rewritten so that their changelog record stays within the changelog's retention. */
  refreshed: number;
  durationMs: number;
  /** True when no expired segment is left to purge. */
  caughtUp: boolean;
  /** The store's approximate bytes on disk, read at most every 10 s (absent in the other steps). */
  storeBytes?: number;
}

interface Pinned<V> {
  /** Epoch ms of the write: the entry is rewritten once this is older than retentionMs / 2. */
  w: number;
  v: V;
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
  #pinnedPassDueMs = Number.NEGATIVE_INFINITY;
  /** Where the next purge call starts inside the expired range (after the last key deleted), or undefined. */
  #purgeFrom: string | undefined;
  /** Moving average of a purge's cost per entry (ms), starting from what this 2-core machine measured. */
  #purgeCostMsPerEntry = 0.01;

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
    if (!physicalKey.startsWith(SEGMENT_PREFIX) || physicalKey.length < 1 + SEGMENT_ID_DIGITS) return false;
    const id = physicalKey.slice(1, 1 + SEGMENT_ID_DIGITS);
    // Only a whole base-36 id names a segment (parseInt would read "5" out of "5\u0000…" and skip a key that is none).
    if (!SEGMENT_ID_PATTERN.test(id)) return false;
    const segment = Number.parseInt(id, 36);
    return Number.isSafeInteger(segment) && segment < lowestLiveSegment(nowMs, retentionMs, segmentIntervalMs);
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
      this.#inner.put(key, value);
      return;
    }
    const previous = this.#find(key);
    const target = this.#placement(key, value, this.#now());
    if (target !== null) this.#inner.put(target.physicalKey, target.stored);
    if (previous !== undefined && previous.physicalKey !== target?.physicalKey)
      this.#inner.delete(previous.physicalKey);
  }

  delete(key: string): void {
    const previous = this.#find(key);
    if (previous !== undefined) this.#inner.delete(previous.physicalKey);
  }

  range(): AsyncIterable<[string, V]> {
    throw new Error(`segmented store ${this.name}: range is not supported (entries live in several segments)`);
  }

  /**
   * One bounded expiry step: purge expired segments (unlogged, local), then rewrite old pinned entries
   * and sweep old-layout ones (logged writes of the current transaction). Stops starting new work once
   * `budgetMs` has passed; run it often (every commit interval) so the work never piles up.
   */
  async expireStep(bounds: ExpiryStepBounds, elapsedMs: () => number = monotonicClock()): Promise<ExpiryStepResult> {
    const started = elapsedMs();
    const spent = (): number => elapsedMs() - started;
    const now = this.#now();
    const { low } = this.#window(now);
    let purged = 0;
    let caughtUp = this.#purgedBelow >= low;
    while (!caughtUp && spent() < bounds.budgetMs) {
      // From after the last key deleted: starting at the segment again would walk its tombstones each call.
      const from = this.#purgeFrom ?? segmentKey(this.#purgedBelow, '');
      // A call sized to the budget left, by the cost per entry measured so far, so one call rarely overruns it.
      const limit = this.#purgeCallSize(bounds, bounds.budgetMs - spent());
      const callStarted = elapsedMs();
      const { purged: deleted, lastKey } = await this.#inner.purgeRange(from, segmentKey(low, ''), limit);
      if (deleted > 0)
        this.#purgeCostMsPerEntry = 0.8 * this.#purgeCostMsPerEntry + (0.2 * (elapsedMs() - callStarted)) / deleted;
      purged += deleted;
      if (deleted < limit || lastKey === undefined) {
        this.#purgedBelow = low;
        this.#purgeFrom = undefined;
        caughtUp = true;
      } else this.#purgeFrom = `${lastKey}\u0000`;
    }
    // Pinned entries are read in passes every retention/8: between passes a step does no I/O for them.
    const refreshDue = this.#pinnedCursor !== undefined || now >= this.#pinnedPassDueMs;
    const refreshed =
      refreshDue && spent() < bounds.budgetMs ? await this.#refreshPinned(now, bounds.scannedEntriesMax) : 0;
    const migrated =
      this.#oldLayoutLeft && spent() < bounds.budgetMs ? await this.#sweepOldLayout(now, bounds.scannedEntriesMax) : 0;
    const result: ExpiryStepResult = { purged, migrated, refreshed, durationMs: spent(), caughtUp };
    // Outside the measured step: the size is for the metric, not part of the work the loop waits on.
    if (this.#inner.approximateBytes !== undefined && started - this.#sizeReadAtMs >= SIZE_READ_EVERY_MS) {
      this.#sizeReadAtMs = started;
      result.storeBytes = await this.#inner.approximateBytes();
    }
    return result;
  }

  #purgeCallSize(bounds: ExpiryStepBounds, budgetLeftMs: number): number {
    const fitting = Math.floor(budgetLeftMs / Math.max(this.#purgeCostMsPerEntry, 1e-6));
    return Math.min(bounds.purgeEntriesPerCallMax, Math.max(PURGE_CALL_ENTRIES_MIN, fitting));
  }

  #oldLayoutOnly(key: string): boolean {
    return this.#options.oldLayoutOnly?.(key) ?? false;
  }

  #now(): number {
    const now = this.#options.clock();
    if (now > this.#highWaterMs) this.#highWaterMs = now;
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
    if (this.#oldLayoutOnly(key)) {
      const old = this.#oldLayoutLeft ? (this.#inner.get(key) as V | undefined) : undefined;
      return old === undefined ? undefined : { physicalKey: key, value: old };
    }
    const pinnedKey = PINNED_PREFIX + key;
    const pinned = this.#inner.get(pinnedKey) as Pinned<V> | undefined;
    if (pinned !== undefined) return { physicalKey: pinnedKey, value: pinned.v };
    const { low, high } = this.#window(this.#now());
    for (let segment = high; segment >= low; segment--) {
      const found = this.#readSegment(segment, key);
      if (found !== undefined) return found;
    }
    if (!this.#oldLayoutLeft) return undefined;
    const old = this.#inner.get(key) as V | undefined;
    return old === undefined ? undefined : { physicalKey: key, value: old };
  }

  #readSegment(segment: number, key: string): Found<V> | undefined {
    const physicalKey = segmentKey(segment, key);
    const value = this.#inner.get(physicalKey) as V | undefined;
    return value === undefined ? undefined : { physicalKey, value };
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

  /** Rewrites pinned entries written more than retentionMs / 2 ago, from a cursor that wraps. */
  async #refreshPinned(nowMs: number, scannedMax: number): Promise<number> {
    const refreshBefore = nowMs - Math.floor(this.#options.retentionMs / 2);
    const stale: [string, Pinned<V>][] = [];
    let scanned = 0;
    let lastKey: string | undefined;
    for await (const [physicalKey, stored] of this.#inner.range({
      gte: this.#pinnedCursor ?? PINNED_PREFIX,
      lt: OLD_LAYOUT_RESUME,
      limit: scannedMax,
    })) {
      scanned++;
      lastKey = physicalKey;
      const pinned = stored as Pinned<V>;
      if (pinned.w < refreshBefore) stale.push([physicalKey, pinned]);
    }
    for (const [physicalKey, pinned] of stale)
      this.#inner.put(physicalKey, { w: nowMs, v: pinned.v } satisfies Pinned<V>);
    this.#pinnedCursor = scanned >= scannedMax && lastKey !== undefined ? `${lastKey}\u0000` : undefined;
    if (this.#pinnedCursor === undefined)
      this.#pinnedPassDueMs = nowMs + Math.max(1, Math.floor(this.#options.retentionMs / 8));
    return stale.length;
  }

  /** Moves old-layout entries into the segmented layout (or deletes expired ones), bounded per step. */
  async #sweepOldLayout(nowMs: number, scannedMax: number): Promise<number> {
    const entries: [string, V][] = [];
    // Old keys sit below SEGMENT_PREFIX ("\u0000…") and from OLD_LAYOUT_RESUME on.
    const before = this.#oldLayoutCursor === undefined || this.#oldLayoutCursor < SEGMENT_PREFIX;
    const gte = this.#oldLayoutCursor ?? '';
    const lt = before ? SEGMENT_PREFIX : undefined;
    for await (const entry of this.#inner.range({
      gte: before ? gte : maxKey(gte, OLD_LAYOUT_RESUME),
      lt,
      limit: scannedMax,
    }))
      entries.push(entry as [string, V]);
    for (const [key, value] of entries) {
      const target = this.#placement(key, value, nowMs);
      if (this.#oldLayoutOnly(key)) {
        if (target === null) this.#inner.delete(key);
        continue;
      }
      if (target !== null) this.#inner.put(target.physicalKey, target.stored);
      this.#inner.delete(key);
    }
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
    return entries.length;
  }
}

function lowestLiveSegment(nowMs: number, retentionMs: number, segmentIntervalMs: number): number {
  // Segment s holds times [s·I, (s+1)·I); it expires once its newest time is retentionMs old.
  return Math.max(0, Math.floor((nowMs - retentionMs) / segmentIntervalMs));
}

function segmentKey(segment: number, key: string): string {
  return SEGMENT_PREFIX + segment.toString(36).padStart(SEGMENT_ID_DIGITS, '0') + key;
}

function maxKey(a: string, b: string): string {
  return a > b ? a : b;
}

function monotonicClock(): () => number {
  return () => performance.now();
}

/**
 * One physical record (as in the changelog) as the view sees it: its logical key and value, pinned
 * values unwrapped (null stays null: a tombstone). For readers of the changelog (reconcile).
 */
export function logicalRecord(physicalKey: string, stored: unknown): { key: string; value: unknown } {
  if (physicalKey.startsWith(PINNED_PREFIX)) {
    const pinned = stored as Pinned<unknown> | null;
    return { key: physicalKey.slice(1), value: pinned === null ? null : (pinned?.v ?? null) };
  }
  if (physicalKey.startsWith(SEGMENT_PREFIX)) return { key: physicalKey.slice(1 + SEGMENT_ID_DIGITS), value: stored };
  return { key: physicalKey, value: stored };
}

/** The logical view of physical entries (tests, reports): newest copy per key, pinned values unwrapped. */
export function logicalEntries<V>(physical: Iterable<[string, unknown]>): Map<string, V> {
  const out = new Map<string, V>();
  const rank = new Map<string, number>();
  for (const [physicalKey, stored] of physical) {
    let key = physicalKey;
    let value = stored as V;
    let order = -1;
    if (physicalKey.startsWith(PINNED_PREFIX)) {
      key = physicalKey.slice(1);
      value = (stored as Pinned<V>).v;
      order = Number.MAX_SAFE_INTEGER;
    } else if (physicalKey.startsWith(SEGMENT_PREFIX)) {
      key = physicalKey.slice(1 + SEGMENT_ID_DIGITS);
      order = Number.parseInt(physicalKey.slice(1, 1 + SEGMENT_ID_DIGITS), 36);
    }
    if ((rank.get(key) ?? Number.NEGATIVE_INFINITY) < order) {
      rank.set(key, order);
      out.set(key, value);
    }
  }
  return out;
}
