// LevelTaskStore: a task's store in a LevelDB database of its own (classic-level). User keys live
// under the prefix "d:" and store metadata under "m:": a range over user keys can never meet the
// checkpoint, yet data and checkpoint still reach disk in one atomic batch.
import assert from 'node:assert/strict';
import { type BatchOperation, ClassicLevel, type DatabaseOptions } from 'classic-level';
import type { StoreBackend } from './backend.ts';
import { CachedTaskStore } from './cached-store.ts';
import { type ChangelogEntry, type PurgeResult, StoreCorruptedError, type StoreOptions } from './types.ts';

const DATA_PREFIX = 'd:';
/** ';' is the byte after ':', so [DATA_PREFIX, DATA_END) holds exactly the user keys. */
const DATA_END = 'd;';
const CHECKPOINT_KEY = 'm:changelog-offset';
/** Entries fetched from LevelDB per iterator round trip during a range. */
const RANGE_BATCH_ENTRIES = 256;
/** A Kafka offset is a signed 64-bit integer: at most 19 decimal digits. */
const OFFSET_PATTERN = /^(0|[1-9][0-9]{0,18})$/;

/** Every option explicit: an instance holds one database per task and store. */
const DATABASE_OPTIONS: DatabaseOptions<string, Buffer> = {
  keyEncoding: 'utf8',
  valueEncoding: 'buffer',
  createIfMissing: true,
  errorIfExists: false,
  compression: true,
  // 12 tasks × 3 stores at LevelDB's default of 1000 files each would outrun a 1024-descriptor limit.
  maxOpenFiles: 64,
  // Hot values live in the store's own cache; LevelDB's block cache only softens prefetch misses.
  cacheSize: 4 * 1024 * 1024,
  writeBufferSize: 4 * 1024 * 1024,
  blockSize: 4096,
};

/**
 * A read of at most this many keys (a prefetch's missing keys, an interactive read's one key) is made
 * synchronously (`getSync`, on the engine's thread) instead of with one `getMany` on LevelDB's worker threads. A `getMany` costs ~35–40 µs of CPU
 * however few its keys (the hand-off to a worker thread and back), a `getSync` ~1.5 µs for an absent key
 * and ~5 µs for a present one: a live load brings a few records per task and round, so every round paid
 * that hand-off once per store and task. A large prefetch (a backlog's batch) stays on the worker threads,
 * where the stores' and tasks' reads run in parallel and the loop does not block. Kafka Streams reads
 * RocksDB synchronously on its stream thread for the same reason.
 */
export const SYNC_READ_KEYS_MAX = 16;

/** The encodings every call passes, so a database opened by someone else is read the same way. */
const ENCODINGS = { keyEncoding: 'utf8', valueEncoding: 'buffer' } as const;
/** Reads of the processing loop and the API fill LevelDB's block cache (scans do not: see iterate). */
const READ_OPTIONS = { ...ENCODINGS, fillCache: true } as const;
/** The checkpoint is read at open and by committed reads: not worth a place in the block cache. */
const METADATA_READ = { ...ENCODINGS, fillCache: false } as const;

export type LevelDatabase = ClassicLevel<string, Buffer>;

/** LevelDB sizes a caller may set instead of the defaults above (the benchmarks compare them). */
export type LevelTuning = Partial<
  Pick<DatabaseOptions<string, Buffer>, 'writeBufferSize' | 'maxFileSize' | 'blockSize'>
>;

export class LevelTaskStore<V> extends CachedTaskStore<V> {
  /** Opens (creating if needed) the database of one task's store at directory `dir`. */
  static async open<V>(dir: string, options: StoreOptions<V>, tuning: LevelTuning = {}): Promise<LevelTaskStore<V>> {
    assert(
      typeof dir === 'string' && dir.length > 0,
      `store ${options.name}: database directory must be a non-empty path`,
    );
    return LevelTaskStore.fromDatabase(
      new ClassicLevel<string, Buffer>(dir, { ...DATABASE_OPTIONS, ...tuning }),
      options,
    );
  }

  /** Takes ownership of `db` (closing the store closes it): for callers that open it themselves, and tests that break it. */
  static async fromDatabase<V>(
    db: LevelDatabase,
    options: StoreOptions<V>,
    reads: { syncReadKeysMax?: number } = {},
  ): Promise<LevelTaskStore<V>> {
    const syncReadKeysMax = reads.syncReadKeysMax ?? SYNC_READ_KEYS_MAX;
    assert(
      Number.isSafeInteger(syncReadKeysMax) && syncReadKeysMax >= 0,
      `store ${options.name}: syncReadKeysMax must be a non-negative integer`,
    );
    await db.open();
    const backend = new LevelBackend(db, options.name, syncReadKeysMax);
    try {
      return new LevelTaskStore(options, backend, await backend.readCheckpoint());
    } catch (error) {
      await db.close();
      throw error;
    }
  }
}

class LevelBackend implements StoreBackend {
  /** Freezing every value put or read cost ~3 % of the engine's CPU; the test double keeps the check. */
  readonly freezeValues = false;
  readonly #db: LevelDatabase;
  readonly #store: string;

  readonly #syncReadKeysMax: number;

  constructor(db: LevelDatabase, store: string, syncReadKeysMax: number) {
    this.#db = db;
    this.#store = store;
    this.#syncReadKeysMax = syncReadKeysMax;
  }

  async getMany(keys: string[]): Promise<(Buffer | undefined)[]> {
    if (keys.length > this.#syncReadKeysMax) return this.#db.getMany(keys.map(dataKey), READ_OPTIONS);
    const values = new Array<Buffer | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++) values[i] = this.#db.getSync(dataKey(keys[i] as string), READ_OPTIONS);
    return values;
  }

  /**
   * Synchronous like a small getMany, in an explicit snapshot: LevelDB applies a batch on a worker thread,
   * which could land between two plain reads on this one.
   */
  async getWithCheckpoint(key: string): Promise<{ bytes: Buffer | undefined; checkpoint: bigint | null }> {
    const snapshot = this.#db.snapshot();
    try {
      const bytes = this.#db.getSync(dataKey(key), { ...READ_OPTIONS, snapshot });
      return {
        bytes,
        checkpoint: this.#parseCheckpoint(this.#db.getSync(CHECKPOINT_KEY, { ...METADATA_READ, snapshot })),
      };
    } finally {
      await snapshot.close();
    }
  }

  /**
   * One batch, not synced: a process crash loses nothing (the OS holds LevelDB's log), and a machine
   * crash loses at most the unsynced tail of whole batches, which leaves the store behind its
   * changelog, never ahead: restore replays the rest from the checkpoint that survived.
   */
  async write(entries: ChangelogEntry[], checkpoint: bigint | null): Promise<void> {
    const operations = entries.map(
      ({ key, value }): BatchOperation<LevelDatabase, string, Buffer> =>
        value === null ? { type: 'del', key: dataKey(key) } : { type: 'put', key: dataKey(key), value },
    );
    if (checkpoint !== null)
      operations.push({ type: 'put', key: CHECKPOINT_KEY, value: Buffer.from(checkpoint.toString(), 'utf8') });
    await this.#db.batch(operations, { ...ENCODINGS, sync: false });
  }

  async *iterate(gte: string | undefined, lt: string | undefined): AsyncGenerator<[string, Buffer]> {
    // fillCache false: a scan should not push the hot blocks out of LevelDB's cache.
    const iterator = this.#db.iterator({
      ...ENCODINGS,
      gte: dataKey(gte ?? ''),
      lt: lt === undefined ? DATA_END : dataKey(lt),
      fillCache: false,
    });
    try {
      for (
        let entries = await iterator.nextv(RANGE_BATCH_ENTRIES);
        entries.length > 0;
        entries = await iterator.nextv(RANGE_BATCH_ENTRIES)
      ) {
        for (const [key, value] of entries) {
          assert(key.startsWith(DATA_PREFIX), `store ${this.#store}: range met a non-data key ${JSON.stringify(key)}`);
          yield [key.slice(DATA_PREFIX.length), value];
        }
      }
    } finally {
      await iterator.close();
    }
  }

  async readCheckpoint(): Promise<bigint | null> {
    return this.#parseCheckpoint(await this.#db.get(CHECKPOINT_KEY, METADATA_READ));
  }

  #parseCheckpoint(bytes: Buffer | undefined): bigint | null {
    if (bytes === undefined) return null;
    const text = bytes.toString('utf8');
    if (!OFFSET_PATTERN.test(text))
      throw new StoreCorruptedError(this.#store, `checkpoint ${JSON.stringify(text)} is not an offset`);
    return BigInt(text);
  }

  async purge(gte: string, lt: string, limit: number): Promise<PurgeResult> {
    // Keys first (bounded), then one batch: the count is exact and the batch never exceeds `limit`.
    const keys = await this.#db
      .keys({ keyEncoding: 'utf8', gte: dataKey(gte), lt: dataKey(lt), limit, fillCache: false })
      .all();
    if (keys.length === 0) return { purged: 0, lastKey: undefined };
    await this.#db.batch(
      keys.map((key) => ({ type: 'del' as const, key })),
      { ...ENCODINGS, sync: false },
    );
    return { purged: keys.length, lastKey: (keys.at(-1) as string).slice(DATA_PREFIX.length) };
  }

  approximateBytes(): Promise<number> {
    return this.#db.approximateSize(DATA_PREFIX, DATA_END, { keyEncoding: 'utf8' });
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

function dataKey(key: string): string {
  return DATA_PREFIX + key;
}
