// The transactional logic every task store shares, whatever keeps its bytes (backend.ts): the write
// cache of the current transaction, the values pinned by prefetch and the bounded cache of committed
// values (read-cache.ts), changelog capture, the checkpoint rule (store-checks.ts) and the fail-closed
// state. LevelTaskStore and the in-memory test double are this class over two backends, so their
// semantics cannot drift apart.
//
// Two write layers, so that the engine can process the next batch while a transaction commits:
// prepareCommit() turns the current layer into the committing one and starts an empty current layer.
// Reads see current → committing → pinned → committed cache. flush() writes only the committing
// layer (with its checkpoint); abort() drops both, since the next transaction was built on the one
// that failed.
import assert from 'node:assert/strict';
import { type StoreBackend, deepFreeze } from './backend.ts';
import { assertKey, compareKeys } from './keys.ts';
import { mergeRange } from './merge-range.ts';
import { assertOptions, checkFlushOffset, checkRestore, lastWritePerKey } from './store-checks.ts';
import { ABSENT, ReadCache } from './read-cache.ts';
import {
  type ChangelogEntry,
  type CommittedRead,
  KeyNotLoadedError,
  StoreCorruptedError,
  StoreFailedError,
  type PurgeResult,
  type RangeOptions,
  type StoreOptions,
  type TaskStore,
} from './types.ts';
import { WriteCache } from './write-cache.ts';

type StoreState = 'open' | 'failed' | 'closed';

export class CachedTaskStore<V> implements TaskStore<V> {
  readonly options: StoreOptions<V>;
  readonly #backend: StoreBackend;
  /** The current transaction's writes. */
  #writes = new WriteCache<V>();
  /** The writes of the transaction being committed (prepareCommit → flush), or null. */
  #committing: WriteCache<V> | null = null;
  /** The values pinned by prefetch and the bounded cache of committed values (read-cache.ts). */
  readonly #reads: ReadCache<V>;
  #checkpoint: bigint | null;
  #state: StoreState = 'open';
  #failure: unknown = undefined;
  /**
   * Async operations in progress. A prefetch may overlap a flush (they touch different layers), but
   * never another prefetch; a flush never overlaps a flush, a restore batch overlaps nothing.
   */
  #prefetching = false;
  #flushing = false;
  #restoring = false;

  constructor(
    options: StoreOptions<V>,
    backend: StoreBackend,
    checkpoint: bigint | null,
    cacheEntriesMax = options.cacheEntriesMax,
  ) {
    assertOptions(options);
    assert(
      checkpoint === null || (typeof checkpoint === 'bigint' && checkpoint >= 0n),
      `store ${options.name}: bad checkpoint ${checkpoint}`,
    );
    this.options = Object.freeze({ ...options });
    this.#backend = backend;
    this.#checkpoint = checkpoint;
    this.#reads = new ReadCache(cacheEntriesMax);
  }

  get name(): string {
    return this.options.name;
  }

  /** Reads the current transaction's writes, the committing ones, the pinned batch loads, then the committed cache. */
  get(key: string): V | undefined {
    this.#assertUsable('get');
    const write = this.#writes.lookup(key) ?? this.#committing?.lookup(key);
    if (write) return write.value;
    const loaded = this.#reads.get(key);
    if (loaded !== undefined) return loaded === ABSENT ? undefined : loaded;
    const readSync = this.#backend.readSync;
    if (readSync === undefined) throw new KeyNotLoadedError(this.name, key);
    const bytes = readSync(key);
    return bytes === undefined ? undefined : this.#deserialize(key, bytes);
  }

  async readCommitted(key: string): Promise<V | undefined> {
    return (await this.readCommittedAt(key)).value;
  }

  /**
   * The committed cache and the position move together (in a write's continuation), so a cached value
   * is at the current position; a backend read takes the checkpoint stored with the value instead.
   */
  async readCommittedAt(key: string): Promise<CommittedRead<V>> {
    this.#assertUsable('readCommitted');
    assertKey(this.name, key);
    const cached = this.#reads.committed(key);
    if (cached !== undefined) return { value: cached === ABSENT ? undefined : cached, position: this.#checkpoint };
    const { bytes, checkpoint } = await this.#backend.getWithCheckpoint(key);
    return { value: bytes === undefined ? undefined : this.#deserialize(key, bytes), position: checkpoint };
  }

  position(): bigint | null {
    return this.#checkpoint;
  }

  /**
   * Values must not be changed once put or read: a processor that mutates one would change the cache,
   * not the store. The test double freezes them to catch that (see StoreBackend.freezeValues).
   */
  put(key: string, value: V): void {
    this.#assertWritable('put');
    assertKey(this.name, key);
    if (value === undefined)
      assert.fail(`store ${this.name}: put of undefined at key ${JSON.stringify(key)}; use delete`);
    const bytes = this.options.valueSerde.serialize(value);
    if (!Buffer.isBuffer(bytes)) assert.fail(`store ${this.name}: the value serde returned no Buffer`);
    this.#writes.put(key, this.#backend.freezeValues ? deepFreeze(value) : value, bytes);
  }

  delete(key: string): void {
    this.#assertWritable('delete');
    assertKey(this.name, key);
    this.#writes.delete(key);
  }

  range(options: RangeOptions = {}): AsyncIterable<[string, V]> {
    this.#assertUsable('range');
    const { gte, lt, limit } = options;
    if (gte !== undefined) assertKey(this.name, gte);
    if (lt !== undefined) assertKey(this.name, lt);
    assert(
      limit === undefined || (Number.isSafeInteger(limit) && limit >= 0),
      `store ${this.name}: range limit must be a non-negative integer`,
    );
    return this.#merge(gte, lt, limit ?? Number.POSITIVE_INFINITY);
  }

  /** Loads, in one backend round trip, the keys not already in memory, and pins them until flush or abort. */
  async prefetch(keys: Iterable<string>): Promise<void> {
    this.#assertUsable('prefetch');
    assert(
      !this.#prefetching && !this.#restoring,
      `store ${this.name}: prefetch while ${this.#prefetching ? 'prefetch' : 'restoreBatch'} is in progress`,
    );
    const missing = this.#reads.pinKnown(this.name, keys, this.#writes, this.#committing);
    if (missing.length === 0) return;
    this.#prefetching = true;
    try {
      // A key a flush in progress writes is in the committing layer, so pinKnown never asks for it:
      // the keys read here are not changed by that flush.
      const values = await this.#backend.getMany(missing);
      assert(
        values.length === missing.length,
        `store ${this.name}: getMany returned ${values.length} values for ${missing.length} keys`,
      );
      this.#assertUsable('prefetch');
      this.#pinLoaded(missing, values);
    } finally {
      this.#prefetching = false;
    }
  }

  pendingChangelog(): ChangelogEntry[] {
    this.#assertUsable('pendingChangelog');
    return this.#writes.changelog();
  }

  prepareCommit(): ChangelogEntry[] {
    this.#assertUsable('prepareCommit');
    assert(this.#committing === null, `store ${this.name}: prepareCommit while another commit is in progress`);
    this.#committing = this.#writes;
    this.#writes = new WriteCache<V>();
    this.#reads.startCommit();
    return this.#committing.changelog();
  }

  savepoint(): void {
    this.#writes.mark();
  }

  /** Only the current layer: a record's writes never reach the committing one (prepareCommit runs between records). */
  rollbackToSavepoint(): void {
    this.#assertUsable('rollbackToSavepoint');
    this.#writes.rollbackToMark();
  }

  commitInProgress(): boolean {
    return this.#committing !== null;
  }

  commitNeeded(): boolean {
    this.#assertUsable('commitNeeded');
    return this.#writes.size > 0;
  }

  /**
   * Post-commit phase: 1. check the offset, 2. write data and checkpoint in one batch,
   * 3. move the written values into the committed cache. Any error fails the store closed.
   */
  async flush(changelogOffset: bigint | null): Promise<void> {
    this.#assertUsable('flush');
    assert(
      !this.#flushing && !this.#restoring,
      `store ${this.name}: flush while ${this.#flushing ? 'flush' : 'restoreBatch'} is in progress`,
    );
    // Without prepareCommit (one transaction at a time), the current writes are the ones to flush.
    if (this.#committing === null) this.prepareCommit();
    const committing = this.#committing as WriteCache<V>;
    this.#flushing = true;
    try {
      checkFlushOffset(this.options, committing.size, this.#checkpoint, changelogOffset);
      // Nothing written and no offset to move: there is nothing to make durable.
      if (committing.size > 0 || changelogOffset !== null)
        await this.#backend.write(committing.changelog(), changelogOffset);
    } catch (error) {
      this.#fail(error);
      throw error;
    } finally {
      this.#flushing = false;
    }
    if (this.#state !== 'open') return; // Closed while the batch was in flight: nothing to cache.
    if (changelogOffset !== null) this.#checkpoint = changelogOffset;
    this.#reads.flushed(committing);
    this.#committing = null;
  }

  /** Drops the current writes and the committing ones: the current transaction was built on the committing one. */
  abort(): void {
    this.#assertUsable('abort');
    assert(
      !this.#flushing && !this.#restoring,
      `store ${this.name}: abort while ${this.#flushing ? 'flush' : 'restoreBatch'} is in progress`,
    );
    this.#writes.clear();
    const hadCommitting = this.#committing !== null;
    this.#committing = null;
    this.#reads.aborted(this.#writes, hadCommitting);
  }

  async checkpoint(): Promise<bigint | null> {
    this.#assertUsable('checkpoint');
    this.#assertIdle('checkpoint');
    const stored = await this.#backend.readCheckpoint();
    assert(
      stored === this.#checkpoint,
      `store ${this.name}: stored checkpoint ${stored} differs from the one written, ${this.#checkpoint}`,
    );
    return stored;
  }

  /** Applies committed changelog records with the offset after them, in one batch; fails closed on error. */
  async restoreBatch(entries: ChangelogEntry[], nextOffset: bigint, authenticated = false): Promise<void> {
    this.#assertUsable('restoreBatch');
    this.#assertIdle('restoreBatch');
    // Restore runs between transactions: uncommitted writes would hide restored values.
    assert(
      this.#writes.size === 0 && this.#committing === null,
      `store ${this.name}: restoreBatch with uncommitted writes`,
    );
    this.#restoring = true;
    try {
      const formatCheck = authenticated ? this.options.valueSerde.check : undefined;
      // Only what the batch leaves behind is checked and written: the last record of each key (an
      // uncompacted changelog repeats a balance once per commit that changed it) that the store keeps.
      const written = lastWritePerKey(entries, this.options.skipOnRestore);
      checkRestore(
        this.options,
        this.#checkpoint,
        written,
        nextOffset,
        formatCheck === undefined
          ? (key, bytes) => this.#deserialize(key, bytes)
          : (key, bytes) => this.#checkFormat(formatCheck, key, bytes),
      );
      await this.#backend.write(written, nextOffset);
    } catch (error) {
      this.#fail(error);
      throw error;
    } finally {
      this.#restoring = false;
    }
    for (const { key } of entries) this.#reads.forget(key);
    this.#checkpoint = nextOffset;
  }

  /**
   * Local-only deletion of committed entries no reader asks for again (TaskStore.purgeRange). The
   * read cache may keep some of their values until evicted: harmless, since nobody reads those keys.
   */
  async purgeRange(gte: string, lt: string, limitEntries: number): Promise<PurgeResult> {
    this.#assertUsable('purgeRange');
    assertKey(this.name, gte);
    assertKey(this.name, lt);
    assert(
      Number.isSafeInteger(limitEntries) && limitEntries > 0,
      `store ${this.name}: purge limit must be a positive integer`,
    );
    if (this.#restoring) assert.fail(`store ${this.name}: purgeRange while restoreBatch is in progress`);
    if (compareKeys(gte, lt) >= 0) return { purged: 0, lastKey: undefined };
    return this.#backend.purge(gte, lt, limitEntries);
  }

  approximateBytes(): Promise<number> {
    this.#assertUsable('approximateBytes');
    return this.#backend.approximateBytes();
  }

  /** Drops uncommitted writes (a dirty close) and releases the backend; allowed in every state. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearMemory();
    await this.#backend.close();
  }

  #assertUsable(operation: string): void {
    if (this.#state === 'open') return;
    if (this.#state === 'failed') throw new StoreFailedError(this.name, operation, this.#failure);
    assert.fail(`store ${this.name} is ${this.#state} and refuses ${operation}`);
  }

  #assertIdle(operation: string): void {
    const busy = this.#prefetching ? 'prefetch' : this.#flushing ? 'flush' : this.#restoring ? 'restoreBatch' : null;
    assert(busy === null, `store ${this.name}: ${operation} while ${busy} is in progress`);
  }

  /**
   * Writes may overlap a prefetch (the write cache wins over loads) and a flush (which writes the
   * committing layer, not the current one), but not a restore batch.
   */
  #assertWritable(operation: string): void {
    this.#assertUsable(operation);
    if (this.#restoring) assert.fail(`store ${this.name}: ${operation} while restoreBatch is in progress`);
  }

  #fail(error: unknown): void {
    this.#state = 'failed';
    this.#failure = error;
    this.#clearMemory();
  }

  #clearMemory(): void {
    this.#writes.clear();
    this.#committing = null;
    this.#reads.clear();
  }

  #pinLoaded(keys: string[], values: (Buffer | undefined)[]): void {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const bytes = values[i];
      this.#reads.pin(key, bytes === undefined ? ABSENT : this.#deserialize(key, bytes));
    }
  }

  #checkFormat(check: (bytes: Buffer) => void, key: string, bytes: Buffer): void {
    try {
      check(bytes);
    } catch (error) {
      throw new StoreCorruptedError(
        this.name,
        `value of key ${JSON.stringify(key)} is not in the store's format`,
        error,
      );
    }
  }

  #deserialize(key: string, bytes: Buffer): V {
    let value: V;
    try {
      value = this.options.valueSerde.deserialize(bytes);
    } catch (error) {
      throw new StoreCorruptedError(this.name, `value of key ${JSON.stringify(key)} does not deserialize`, error);
    }
    if (value === undefined)
      assert.fail(`store ${this.name}: the value serde returned undefined for key ${JSON.stringify(key)}`);
    return this.#backend.freezeValues ? deepFreeze(value) : value;
  }

  /** Committed entries merged with a snapshot of the write layers: writes override, deletes hide. */
  async *#merge(gte: string | undefined, lt: string | undefined, limit: number): AsyncGenerator<[string, V]> {
    if (limit === 0) return;
    // Both views are taken in the same synchronous step, so they describe one moment. A committing
    // layer flushed while the range runs holds what the store then gets, so it still shadows rightly.
    const writes = WriteCache.snapshotLayers([this.#committing, this.#writes], gte, lt);
    const committed = this.#backend.iterate(gte, lt)[Symbol.asyncIterator]();
    yield* mergeRange(committed, writes, limit, (key, bytes) => this.#deserialize(key, bytes));
  }
}
