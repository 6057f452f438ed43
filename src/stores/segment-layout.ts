// The physical key layout of a segmented store (src/stores/segmented-store.ts), and the pure helpers
// that read it: which segment a key belongs to, whether it is expired, and the logical view of
// physical records for readers of the changelog (reconcile, tests, reports).
//   "\u0001" + segment id (11 base-36 digits) + key → value          (expires with its segment)
//   "\u0002" + key                                   → {w, v}        (pinned: never expires)
//   any other key                                    → value         (the layout before segments)

export const SEGMENT_PREFIX = '\u0001';
export const PINNED_PREFIX = '\u0002';
/** Old-layout keys are the ones outside [SEGMENT_PREFIX, OLD_LAYOUT_RESUME). */
export const OLD_LAYOUT_RESUME = '\u0003';
export const SEGMENT_ID_DIGITS = 11;
const SEGMENT_ID_PATTERN = /^[0-9a-z]{11}$/;
/** 36^11 − 1 exceeds every epoch ms Date can hold, so a segment id always fits. */
export const SEGMENT_ID_MAX = 36 ** SEGMENT_ID_DIGITS - 1;

/** A pinned entry as stored: `w` = epoch ms of the write (it is rewritten once older than retentionMs / 2). */
export interface Pinned<V> {
  w: number;
  v: V;
}

export function lowestLiveSegment(nowMs: number, retentionMs: number, segmentIntervalMs: number): number {
  // Segment s holds times [s·I, (s+1)·I); it expires once its newest time is retentionMs old.
  return Math.max(0, Math.floor((nowMs - retentionMs) / segmentIntervalMs));
}

export function segmentKey(segment: number, key: string): string {
  return segmentPrefix(segment) + key;
}

/** The prefixes of the last few segments asked for: every lookup names the same four or five. */
const PREFIXES = new Map<number, string>();
const PREFIXES_CACHED_MAX = 64;

function segmentPrefix(segment: number): string {
  let prefix = PREFIXES.get(segment);
  if (prefix === undefined) {
    if (PREFIXES.size >= PREFIXES_CACHED_MAX) PREFIXES.clear();
    prefix = SEGMENT_PREFIX + segment.toString(36).padStart(SEGMENT_ID_DIGITS, '0');
    PREFIXES.set(segment, prefix);
  }
  return prefix;
}

export function maxKey(a: string, b: string): string {
  return a > b ? a : b;
}

/** The segment a physical key belongs to, or null (pinned, old layout, or not a whole base-36 id). */
export function segmentOfKey(physicalKey: string): number | null {
  if (!physicalKey.startsWith(SEGMENT_PREFIX) || physicalKey.length < 1 + SEGMENT_ID_DIGITS) return null;
  const id = physicalKey.slice(1, 1 + SEGMENT_ID_DIGITS);
  // Only a whole base-36 id names a segment (parseInt would read "5" out of "5\u0000…" and skip a key that is none).
  if (!SEGMENT_ID_PATTERN.test(id)) return null;
  const segment = Number.parseInt(id, 36);
  return Number.isSafeInteger(segment) ? segment : null;
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

/**
 * Whether `work` settles within `ms` (true) or is still running when they have passed (false). The
 * work goes on either way: a caller that gets false picks its result up later. Never rejects.
 */
export function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms), false);
  });
  return Promise.race([
    work.then(
      () => true,
      () => true,
    ),
    deadline,
  ]).finally(() => clearTimeout(timer));
}
