// The state stores of a task: the contract, the LevelDB store, its in-memory test double, and serdes.
export { LevelTaskStore, type LevelDatabase } from './level-store.ts';
export { LruMap } from './lru.ts';
export { MemoryDisk, MemoryTaskStore, type MemoryTaskStoreOptions } from './memory-store.ts';
export { bufferSerde, jsonSerde, stringSerde } from './serdes.ts';
export {
  type ChangelogEntry,
  InvalidChangelogOffsetError,
  KeyNotLoadedError,
  StoreCorruptedError,
  StoreFailedError,
  type StoreOptions,
  type TaskStore,
} from './types.ts';
