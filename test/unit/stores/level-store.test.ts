import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LevelTaskStore, SYNC_READ_KEYS_MAX } from '../../../src/stores/level-store.ts';
import { KeyNotLoadedError, StoreCorruptedError } from '../../../src/stores/types.ts';
import { describeStoreContract } from './contract.ts';
import { collect, levelHarness, storeOptions } from './harness.ts';
import { describeStoreModel } from './model.ts';

describeStoreContract(levelHarness());
describeStoreModel(levelHarness(), 100);

describe('LevelTaskStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bankstream-level-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function database(): ClassicLevel<string, Buffer> {
    return new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  }

  it('should load only unknown keys with one getMany when a batch is prefetched', async () => {
    const db = database();
    const store = await LevelTaskStore.fromDatabase(db, storeOptions<string>(), { syncReadKeysMax: 0 });
    store.put('cached', 'c');
    await store.flush(1n);
    store.put('written', 'w');
    const getMany = vi.spyOn(db, 'getMany');
    await store.prefetch(['cached', 'written', 'x', 'y', 'x']);
    await store.prefetch(['x', 'y', 'cached']);
    expect(getMany).toHaveBeenCalledTimes(1);
    expect(getMany.mock.calls[0]?.[0]).toEqual(['d:x', 'd:y']);
    await store.close();
  });

  it('should read a few missing keys synchronously and more than SYNC_READ_KEYS_MAX with one getMany', async () => {
    const db = database();
    const store = await LevelTaskStore.fromDatabase(db, storeOptions<string>({ cacheEntriesMax: 0 }));
    const keys = Array.from({ length: SYNC_READ_KEYS_MAX + 1 }, (_, i) => `k${i}`);
    for (const key of keys) store.put(key, `v-${key}`);
    await store.flush(1n);
    const getMany = vi.spyOn(db, 'getMany');
    const getSync = vi.spyOn(db, 'getSync');
    await store.prefetch([...keys.slice(0, SYNC_READ_KEYS_MAX - 1), 'absent']);
    expect(getMany).not.toHaveBeenCalled();
    expect(getSync).toHaveBeenCalledTimes(SYNC_READ_KEYS_MAX);
    expect(store.get('k0')).toBe('v-k0');
    expect(store.get('absent')).toBeUndefined();
    store.abort();
    getSync.mockClear();
    await store.prefetch([...keys, 'absent']);
    expect(getMany).toHaveBeenCalledTimes(1);
    expect(getSync).not.toHaveBeenCalled();
    expect(keys.map((k) => store.get(k))).toEqual(keys.map((k) => `v-${k}`));
    await store.close();
  });

  it('should read the same values synchronously as with getMany, whatever the keys and the threshold', async () => {
    const db = database();
    const store = await LevelTaskStore.fromDatabase(db, storeOptions<string>({ cacheEntriesMax: 0 }));
    // Committed: k0..k29 with values; keys with UTF-8 beyond ASCII too (the sync path writes the key
    // into a shared buffer of its own).
    const committed = new Map<string, string>();
    for (let i = 0; i < 30; i++) committed.set(i % 3 === 0 ? `ké-${i}-€😀` : `k${i}`, `v${i}`);
    for (const [k, v] of committed) store.put(k, v);
    await store.flush(1n);
    await store.close();
    const universe = [...committed.keys(), 'absent', 'x'.repeat(300), 'ké-absent-€', 'k3\u0000'];
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.constantFrom(...universe), { maxLength: universe.length }),
        fc.nat({ max: 40 }),
        async (keys, syncReadKeysMax) => {
          const reopened = await LevelTaskStore.fromDatabase(database(), storeOptions<string>({ cacheEntriesMax: 0 }), {
            syncReadKeysMax,
          });
          try {
            await reopened.prefetch(keys);
            expect(keys.map((k) => reopened.get(k))).toEqual(keys.map((k) => committed.get(k)));
          } finally {
            await reopened.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  // LevelDB applies a batch on a worker thread before the engine's thread runs its callback, where the
  // store's position moves: a synchronous read in between saw the new value under the old position (a
  // scale-out CI run served a balance newer than the position it reported).
  it('should report the position a committed read belongs to when a flush has landed in LevelDB but not in the store', async () => {
    const store = await LevelTaskStore.fromDatabase(database(), storeOptions<string>({ cacheEntriesMax: 0 }));
    store.put('k', 'v1');
    await store.flush(1n);
    store.put('k', 'v2');
    const flushed = store.flush(2n);
    blockThread(100); // LevelDB's worker applies the batch; its callback waits for this thread.
    const read = await store.readCommittedAt('k');
    expect([read.value, read.position]).toEqual(['v2', 2n]);
    await flushed;
    await store.close();
  });

  it('should pair every committed read with the position of its value, whatever flushes and restores overlap it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ restore: fc.boolean(), blockMs: fc.constantFrom(0, 0, 1, 3), reads: fc.nat({ max: 3 }) }),
          { minLength: 1, maxLength: 12 },
        ),
        async (steps) => {
          const runDir = await mkdtemp(join(tmpdir(), 'bankstream-level-pairs-'));
          const store = await LevelTaskStore.fromDatabase(
            new ClassicLevel<string, Buffer>(runDir, { keyEncoding: 'utf8', valueEncoding: 'buffer' }),
            storeOptions<string>({ cacheEntriesMax: 0 }),
          );
          // The value of k at each position; the store starts empty at position null.
          const history = new Map<bigint | null, string | undefined>([[null, undefined]]);
          const reads: Array<Promise<{ value: string | undefined; position: bigint | null }>> = [];
          try {
            for (const [i, step] of steps.entries()) {
              const position = BigInt(i + 1);
              const value = `v${position}`;
              history.set(position, value);
              let landed: Promise<void>;
              if (step.restore) {
                landed = store.restoreBatch([{ key: 'k', value: Buffer.from(JSON.stringify(value)) }], position);
              } else {
                store.put('k', value);
                landed = store.flush(position);
              }
              for (let r = 0; r < step.reads; r++) {
                reads.push(store.readCommittedAt('k'));
                if (step.blockMs > 0) blockThread(step.blockMs);
              }
              await landed;
            }
            for (const { value, position } of await Promise.all(reads)) {
              expect(history.has(position)).toBe(true);
              expect(value).toBe(history.get(position));
            }
          } finally {
            await store.close();
            await rm(runDir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('should evict the least recently used committed values when the cache is full', async () => {
    const store = await LevelTaskStore.open<string>(dir, storeOptions<string>({ cacheEntriesMax: 3 }));
    for (const key of ['k1', 'k2', 'k3']) store.put(key, key);
    await store.flush(3n);
    expect(store.get('k1')).toBe('k1'); // k1 becomes the most recently used, k2 the least.
    store.put('k4', 'k4');
    await store.flush(4n);
    expect(() => store.get('k2')).toThrow(KeyNotLoadedError);
    expect([store.get('k1'), store.get('k3'), store.get('k4')]).toEqual(['k1', 'k3', 'k4']);
    await store.close();
  });

  it('should cache absent keys when a prefetch found nothing', async () => {
    const db = database();
    const store = await LevelTaskStore.fromDatabase(db, storeOptions<string>());
    await store.prefetch(['ghost']);
    store.abort();
    const getMany = vi.spyOn(db, 'getMany');
    await store.prefetch(['ghost']);
    expect(getMany).not.toHaveBeenCalled();
    expect(store.get('ghost')).toBeUndefined();
    await store.close();
  });

  it('should throw StoreCorruptedError when the stored checkpoint is not an offset', async () => {
    const db = database();
    await db.put('m:changelog-offset', Buffer.from('-1'));
    await expect(LevelTaskStore.fromDatabase(db, storeOptions())).rejects.toThrow(StoreCorruptedError);
    expect(db.status).toBe('closed');
  });

  it('should throw StoreCorruptedError when a stored value does not deserialize', async () => {
    const db = database();
    await db.put('d:a', Buffer.from('{broken'));
    const store = await LevelTaskStore.fromDatabase(db, storeOptions());
    await expect(store.prefetch(['a'])).rejects.toThrow(StoreCorruptedError);
    await expect(collect(store.range())).rejects.toThrow(StoreCorruptedError);
    await store.close();
  });

  it('should write data and checkpoint in one batch when flushed', async () => {
    const db = database();
    const store = await LevelTaskStore.fromDatabase(db, storeOptions<string>());
    const batch = vi.spyOn(db, 'batch');
    store.put('a', 'x');
    store.delete('b');
    await store.flush(2n);
    expect(batch).toHaveBeenCalledTimes(1);
    expect((batch.mock.calls[0] as unknown[] | undefined)?.[0]).toEqual([
      { type: 'put', key: 'd:a', value: Buffer.from('"x"') },
      { type: 'del', key: 'd:b' },
      { type: 'put', key: 'm:changelog-offset', value: Buffer.from('2') },
    ]);
    await store.close();
  });
});

/** Blocks this thread (not the event loop's worker threads) for `ms` milliseconds. */
function blockThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
