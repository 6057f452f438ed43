// Where a task store's committed bytes live: LevelDB (level-store.ts) or memory (memory-store.ts, the
// test double). CachedTaskStore puts the same transactional logic over either.
import type { ChangelogEntry, PurgeResult } from './types.ts';

/** Where committed bytes live. Keys are user keys: the backend keeps its checkpoint outside their space. */
export interface StoreBackend {
  /**
   * Whether values are frozen when put or read. The test double freezes them, so a processor that
   * mutates a value it read or put fails in its tests; LevelDB's store skips the walk in production.
   */
  readonly freezeValues: boolean;
  /**
   * The committed values of `keys`, in the same order, undefined where absent; one round trip (LevelDB
   * reads a few keys synchronously instead: see SYNC_READ_KEYS_MAX).
   */
  getMany(keys: string[]): Promise<(Buffer | undefined)[]>;
  /**
   * A key's committed value and the checkpoint stored with it, read from one state of the backend: a
   * write that lands between two separate reads cannot pair one write's value with another's checkpoint.
   */
  getWithCheckpoint(key: string): Promise<{ bytes: Buffer | undefined; checkpoint: bigint | null }>;
  /** Applies `entries` in order (null value = delete) and, unless null, the checkpoint, atomically. */
  write(entries: ChangelogEntry[], checkpoint: bigint | null): Promise<void>;
  /** Committed entries in [gte, lt), in UTF-8 key order; the view is fixed when iteration starts. */
  iterate(gte: string | undefined, lt: string | undefined): AsyncIterable<[string, Buffer]>;
  readCheckpoint(): Promise<bigint | null>;
  /** Deletes up to `limit` committed entries in [gte, lt), in key order; returns how many and the last. */
  purge(gte: string, lt: string, limit: number): Promise<PurgeResult>;
  approximateBytes(): Promise<number>;
  close(): Promise<void>;
  /** A synchronous read of a committed value: only the non-strict test double offers it. */
  readonly readSync?: (key: string) => Buffer | undefined;
}

/**
 * Freezes plain data in place, so a value shared with the cache cannot be changed behind the
 * store's back. Byte arrays cannot be frozen (serdes copy them instead); frozen objects are skipped,
 * which also ends cycles.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  return value;
}
