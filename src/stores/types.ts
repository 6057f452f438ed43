// The contract of a task's key-value store. Processors only see `KeyValueStore` and `Serde` (the
// processor API in src/topology/types.ts re-exports them; they live here so that stores never import
// topology); the engine drives the rest of `TaskStore`: prefetch before a batch, changelog capture
// during it, and the three-phase commit (prepare → Kafka transaction commit → flush) after it.
export interface Serde<T> {
  serialize(value: T): Buffer;
  deserialize(bytes: Buffer): T;
  /**
   * Optional, for restore: a cheap check that `bytes` are in this serde's format, for values whose
   * changelog MAC verified (exactly the bytes an engine of this application serialized). It must refuse
   * (throw) bytes of another format (a value written by a version with another encoding) and bytes cut
   * short; it need not find what only a full deserialize would. Without it, restore deserializes.
   */
  check?(bytes: Buffer): void;
}

/**
 * A key-value state store as a processor sees it. Keys are strings.
 * `get` is synchronous: the engine loads every key named by `Processor.prefetch` for a whole batch
 * (one LevelDB getMany per store) before `process` runs, and keeps hot keys in a bounded cache.
 * Reading a key that was neither prefetched nor cached throws a `KeyNotLoadedError` (a programmer error).
 * Writes go to the task's write cache and to the store's changelog; they reach disk only after the
 * Kafka transaction that carries them has committed.
 */
export interface KeyValueStore<V> {
  readonly name: string;
  get(key: string): V | undefined;
  put(key: string, value: V): void;
  delete(key: string): void;
  /** Entries in key order, merging uncommitted writes over the persisted state. */
  range(options?: RangeOptions): AsyncIterable<[string, V]>;
}

export interface RangeOptions {
  gte?: string;
  lt?: string;
  limit?: number;
}

export interface PurgeResult {
  purged: number;
  lastKey: string | undefined;
}

/** One change captured for the store's changelog topic: value null is a tombstone. */
export interface ChangelogEntry {
  key: string;
  value: Buffer | null;
}

export interface StoreOptions<V> {
  /** Store name, unique within a topology; the changelog topic is `<appId>-<name>-changelog`. */
  name: string;
  valueSerde: Serde<V>;
  /** Whether writes are captured for a changelog topic (default true). */
  logged: boolean;
  /** Bound of the in-memory read cache of committed values (entries, LRU). */
  cacheEntriesMax: number;
  /** Changelog records restore skips (already expired data; see SegmentedKeyValueStore.expiredKey). */
  skipOnRestore?: (key: string) => boolean;
}

/**
 * A store as the engine drives it. Lifecycle: open → (restore*) → (prefetch → process → prepareCommit → flush | abort)* → close,
 * where the next transaction's prefetch and process may overlap the previous one's flush.
 * Fail closed: after an error in flush the store refuses every later call but close (StoreFailedError).
 */
export interface TaskStore<V> extends KeyValueStore<V> {
  readonly options: StoreOptions<V>;
  /**
   * Reads a key's committed value for interactive queries, outside any transaction: never the
   * uncommitted writes (they may still be aborted), and without pinning anything.
   */
  readCommitted(key: string): Promise<V | undefined>;
  /**
   * readCommitted with the position its value belongs to: the value is the key's committed state at that
   * changelog offset. An answer that reports a position takes it from here, not from `position()`: a
   * flush lands in the backend before the store's position moves, so a read between the two would
   * pair the new value with the old position.
   */
  readCommittedAt(key: string): Promise<CommittedRead<V>>;
  /** The changelog offset the committed state has reached (in memory; see `checkpoint` for the stored one). */
  position(): bigint | null;
  /** Loads the committed values of keys not already in memory, in one multi-get. */
  prefetch(keys: Iterable<string>): Promise<void>;
  /** Changes since the last commit or abort, last write per key, in first-write order. */
  pendingChangelog(): ChangelogEntry[];
  /**
   * Starts a commit: the current writes become the committing layer and new writes go to an empty
   * current layer; returns the committing writes as changelog entries (last write per key, in
   * first-write order). Reads see the current layer, then the committing one, then committed state.
   * At most one commit in progress: it ends with flush (committed) or abort (both layers dropped).
   */
  prepareCommit(): ChangelogEntry[];
  /**
   * A savepoint in the current transaction's writes (the engine sets one before each record). Cheap: it
   * resets an undo log, which every put and delete appends to.
   */
  savepoint(): void;
  /** Undoes every put and delete since the last savepoint (a record whose processing threw). */
  rollbackToSavepoint(): void;
  /** True between prepareCommit and the end of its flush or abort. */
  commitInProgress(): boolean;
  /** True when there are uncommitted writes in the current layer. */
  commitNeeded(): boolean;
  /**
   * Persists the committing layer (or, with no commit prepared, the current writes) and the changelog
   * offset it reaches in ONE atomic batch. Called only after the Kafka transaction carrying the
   * changelog records has committed. Writes and prefetches may run meanwhile (they use the current
   * layer). `changelogOffset` is the next offset to read from the changelog on restore; it never goes backwards.
   */
  flush(changelogOffset: bigint | null): Promise<void>;
  /** Drops every uncommitted write, the committing layer's too (transaction aborted); the read cache keeps only committed values. */
  abort(): void;
  /** The changelog offset persisted with the data (next offset to restore from), or null if never written. */
  checkpoint(): Promise<bigint | null>;
  /**
   * Applies committed changelog records during restore, with the offset after the last one, in one batch
   * of the last record of each key (what applying them in order leaves). Every value written is checked
   * first: deserialized, or — `authenticated` (every record's changelog MAC verified, which the caller
   * does for every record, superseded or not) and the serde has one — given to the serde's cheaper format
   * check (Serde.check). A value a later record of its key replaces is neither checked nor written.
   */
  restoreBatch(entries: ChangelogEntry[], nextOffset: bigint, authenticated?: boolean): Promise<void>;
  /**
   * Deletes up to `limitEntries` committed entries in [gte, lt) from local storage only: no changelog
   * record, outside any transaction. Only for data no reader will ask for again (expired segments,
   * see segmented-store.ts); the changelog forgets it by its own time retention. Returns how many, and
   * the last key deleted: the next call starts after it, not over the deleted keys' tombstones again.
   */
  purgeRange(gte: string, lt: string, limitEntries: number): Promise<PurgeResult>;
  /** The bytes the store takes on disk (LevelDB approximateSize; the test double: its value bytes). */
  approximateBytes(): Promise<number>;
  close(): Promise<void>;
}

/** A committed value and the changelog offset of the state it was read in (see TaskStore.readCommittedAt). */
export interface CommittedRead<V> {
  value: V | undefined;
  position: bigint | null;
}

export class KeyNotLoadedError extends Error {
  readonly code = 'store_key_not_loaded';
  constructor(store: string, key: string) {
    super(`store ${store}: key ${JSON.stringify(key)} was read but not prefetched; name it in Processor.prefetch`);
    this.name = 'KeyNotLoadedError';
  }
}

export class StoreFailedError extends Error {
  readonly code = 'store_failed';
  constructor(store: string, operation: string, cause?: unknown) {
    super(`store ${store} has failed and refuses ${operation}`, { cause });
    this.name = 'StoreFailedError';
  }
}

export class InvalidChangelogOffsetError extends Error {
  readonly code = 'store_invalid_changelog_offset';
  constructor(store: string, previous: bigint, next: bigint) {
    super(`store ${store}: changelog offset may not go backwards (${previous} → ${next})`);
    this.name = 'InvalidChangelogOffsetError';
  }
}

/**
 * Persisted state does not read back (bad checkpoint, undeserializable value): wipe the store and
 * restore it from its changelog. Added by the stores owner.
 */
export class StoreCorruptedError extends Error {
  readonly code = 'store_corrupted';
  constructor(store: string, detail: string, cause?: unknown) {
    super(`store ${store} is corrupted: ${detail}`, { cause });
    this.name = 'StoreCorruptedError';
  }
}
