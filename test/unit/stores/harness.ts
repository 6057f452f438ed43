// The two ways to open a task store under test. The contract suite and the model test run against
// both, so LevelTaskStore and its test double are held to one behaviour.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { LevelTaskStore } from '../../../src/stores/level-store.ts';
import { MemoryDisk, MemoryTaskStore } from '../../../src/stores/memory-store.ts';
import { jsonSerde } from '../../../src/stores/serdes.ts';
import type { StoreOptions, TaskStore } from '../../../src/stores/types.ts';

/** Where a store's committed state lives: it survives close, so a store can be reopened over it. */
export type Location = { kind: 'level'; dir: string } | { kind: 'memory'; disk: MemoryDisk };

export interface StoreHarness {
  readonly label: string;
  /** Whether committed values stay readable without prefetch while they fit in the bounded cache. */
  readonly cachesCommitted: boolean;
  /** Whether values are frozen when put or read (the test double does it; LevelDB's store does not, for speed). */
  readonly freezesValues: boolean;
  location(): Promise<Location>;
  open<V>(location: Location, options?: Partial<StoreOptions<V>>): Promise<TaskStore<V>>;
  /** Makes the store's next write fail at the storage layer. */
  breakWrites(store: TaskStore<unknown>): Promise<void>;
  /** Removes every location created (temporary directories). */
  cleanup(): Promise<void>;
}

export function storeOptions<V>(options: Partial<StoreOptions<V>> = {}): StoreOptions<V> {
  return { name: 'accounts', valueSerde: jsonSerde<V>(), logged: true, cacheEntriesMax: 100, ...options };
}

export function levelHarness(): StoreHarness {
  const dirs: string[] = [];
  const databases = new WeakMap<object, ClassicLevel<string, Buffer>>();
  return {
    label: 'LevelTaskStore',
    cachesCommitted: true,
    freezesValues: false,
    async location() {
      const dir = await mkdtemp(join(tmpdir(), 'bankstream-store-'));
      dirs.push(dir);
      return { kind: 'level', dir };
    },
    async open<V>(location: Location, options: Partial<StoreOptions<V>> = {}) {
      if (location.kind !== 'level') throw new Error('not a level location');
      const db = new ClassicLevel<string, Buffer>(location.dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
      const store = await LevelTaskStore.fromDatabase(db, storeOptions(options));
      databases.set(store, db);
      return store;
    },
    async breakWrites(store) {
      // Closing the database underneath the store: its next batch is refused by classic-level.
      await databases.get(store)?.close();
    },
    async cleanup() {
      for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
    },
  };
}

export function memoryHarness(): StoreHarness {
  return {
    label: 'MemoryTaskStore',
    cachesCommitted: false,
    freezesValues: true,
    async location() {
      return { kind: 'memory', disk: new MemoryDisk() };
    },
    async open<V>(location: Location, options: Partial<StoreOptions<V>> = {}) {
      if (location.kind !== 'memory') throw new Error('not a memory location');
      return new MemoryTaskStore(storeOptions(options), { disk: location.disk });
    },
    async breakWrites(store) {
      (store as MemoryTaskStore<unknown>).failNextWrite(new Error('simulated disk failure'));
    },
    async cleanup() {},
  };
}

/** Collects a range into an array. */
export async function collect<V>(iterable: AsyncIterable<[string, V]>): Promise<[string, V][]> {
  const entries: [string, V][] = [];
  for await (const entry of iterable) entries.push(entry);
  return entries;
}
