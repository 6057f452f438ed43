// MemoryTaskStore: the test double of LevelTaskStore. It is the same CachedTaskStore over a Map, so
// values still go through the serde, the checkpoint follows the same rule, and a failed flush fails
// the store closed. Its committed cache is empty: with strictPrefetch (the default) a key is readable
// only when written or prefetched in the current transaction, which is what LevelTaskStore
// guarantees when its cache is cold; a processor that forgets to name a key in prefetch fails here,
// every time, instead of in production when the key falls out of the cache.
import assert from 'node:assert/strict';
import type { StoreBackend } from './backend.ts';
import { CachedTaskStore } from './cached-store.ts';
import { compareKeys, inRange } from './keys.ts';
import type { ChangelogEntry, PurgeResult, StoreOptions } from './types.ts';

/**
 * The in-memory "database" under a MemoryTaskStore. It outlives the store, so a test can close a
 * store and open another over the same committed state, as after a restart. One store at a time.
 */
export class MemoryDisk {
  readonly #rows = new Map<string, Buffer>();
  #checkpoint: bigint | null = null;
  #inUse = false;
  #writeError: Error | null = null;

  get checkpoint(): bigint | null {
    return this.#checkpoint;
  }

  /** Committed keys, in the UTF-8 order LevelDB would use. */
  keys(): string[] {
    return [...this.#rows.keys()].sort(compareKeys);
  }

  read(key: string): Buffer | undefined {
    return this.#rows.get(key);
  }

  /** Makes the next write (a flush or a restore batch) fail with `error` and change nothing. */
  failNextWrite(error: Error): void {
    this.#writeError = error;
  }

  write(entries: ChangelogEntry[], checkpoint: bigint | null): void {
    const error = this.#writeError;
    this.#writeError = null;
    if (error) throw error;
    for (const { key, value } of entries) {
      if (value === null) this.#rows.delete(key);
      else this.#rows.set(key, Buffer.from(value));
    }
    if (checkpoint !== null) this.#checkpoint = checkpoint;
  }

  /** Deletes up to `limit` rows in [gte, lt), in key order; returns how many. */
  purge(gte: string, lt: string, limit: number): PurgeResult {
    const keys = this.keys()
      .filter((key) => inRange(key, gte, lt))
      .slice(0, limit);
    for (const key of keys) this.#rows.delete(key);
    return { purged: keys.length, lastKey: keys.at(-1) };
  }

  /** Keys and values in bytes, as a stand-in for LevelDB's approximate size. */
  bytes(): number {
    let total = 0;
    for (const [key, value] of this.#rows) total += Buffer.byteLength(key, 'utf8') + value.length;
    return total;
  }

  acquire(): void {
    // LevelDB's LOCK file refuses a second open of one database; so does this double.
    assert(!this.#inUse, 'MemoryDisk is already open in another store');
    this.#inUse = true;
  }

  release(): void {
    this.#inUse = false;
  }
}

export interface MemoryTaskStoreOptions {
  /** Throw KeyNotLoadedError when a key is read that was neither written nor prefetched (default true). */
  strictPrefetch?: boolean;
  /** The committed state to open over (default: a new, empty one). */
  disk?: MemoryDisk;
}

export class MemoryTaskStore<V> extends CachedTaskStore<V> {
  readonly disk: MemoryDisk;

  constructor(options: StoreOptions<V>, memoryOptions: MemoryTaskStoreOptions = {}) {
    const disk = memoryOptions.disk ?? new MemoryDisk();
    disk.acquire();
    super(options, new MemoryBackend(disk, memoryOptions.strictPrefetch ?? true), disk.checkpoint, 0);
    this.disk = disk;
  }

  /** Makes the next flush or restoreBatch fail with `error`, to test fail-closed handling. */
  failNextWrite(error: Error): void {
    this.disk.failNextWrite(error);
  }
}

class MemoryBackend implements StoreBackend {
  /** Processors run on this double in their tests: a value they mutate after a put or read throws there. */
  readonly freezeValues = true;
  readonly #disk: MemoryDisk;
  readonly readSync?: (key: string) => Buffer | undefined;
  #closed = false;

  constructor(disk: MemoryDisk, strictPrefetch: boolean) {
    this.#disk = disk;
    if (!strictPrefetch) this.readSync = (key) => this.#read(key);
  }

  async getMany(keys: string[]): Promise<(Buffer | undefined)[]> {
    return keys.map((key) => this.#read(key));
  }

  async getWithCheckpoint(key: string): Promise<{ bytes: Buffer | undefined; checkpoint: bigint | null }> {
    return { bytes: this.#read(key), checkpoint: this.#disk.checkpoint };
  }

  async write(entries: ChangelogEntry[], checkpoint: bigint | null): Promise<void> {
    this.#assertOpen();
    this.#disk.write(entries, checkpoint);
  }

  async *iterate(gte: string | undefined, lt: string | undefined): AsyncGenerator<[string, Buffer]> {
    this.#assertOpen();
    // Copy the rows first: like a LevelDB iterator, a range reads the state of the moment it started.
    const rows: [string, Buffer][] = [];
    for (const key of this.#disk.keys()) {
      if (inRange(key, gte, lt)) rows.push([key, this.#disk.read(key) as Buffer]);
    }
    yield* rows;
  }

  async readCheckpoint(): Promise<bigint | null> {
    this.#assertOpen();
    return this.#disk.checkpoint;
  }

  async purge(gte: string, lt: string, limit: number): Promise<PurgeResult> {
    this.#assertOpen();
    return this.#disk.purge(gte, lt, limit);
  }

  async approximateBytes(): Promise<number> {
    this.#assertOpen();
    return this.#disk.bytes();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#disk.release();
  }

  #read(key: string): Buffer | undefined {
    this.#assertOpen();
    return this.#disk.read(key);
  }

  #assertOpen(): void {
    assert(!this.#closed, 'MemoryDisk: the store over it is closed');
  }
}
